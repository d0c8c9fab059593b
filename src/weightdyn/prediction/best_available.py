"""The best predictor of each family available by time τ, chosen by nested cross-validation
(docs/methods.md §3 "Fair comparisons").

Best available by time τ (never chosen on the folds that score it). For each family F of
:data:`BEST_FAMILIES` and each τ in the sorted union of prediction times and t* + L·η, the
candidates are F's sets at the latest prediction time whose available time is ≤ τ (a set known
at t = 0 at the first prediction time). The best is chosen by nested CV
(:func:`.nested.nested_best`): inner stratified ``folds``-fold CV on each outer training
fold picks the set with the highest inner AUC; it is fitted on the outer training fold and
scores the outer test fold. The pseudo-predictor's out-of-fold scores are summarised like a
set's (:func:`.statistics.summarise_scores`); ``chosen`` names the most frequent choice
(set@prediction time, folds in which it was chosen). All families at one τ are scored on the
same runs U_τ (those with finite values of every candidate at τ), so each family of
:data:`INDICATOR_FAMILIES` is compared with the baseline family's best by the paired DeLong
test, repeat by repeat (:func:`.statistics.delong_paired_repeats`: Δ = difference of the two
auc_mean, its 95 % CI from the mean paired variance, two-sided p). The family ``all`` (best of
every candidate) gives the E_high probabilities that early stopping uses. The nested part uses
the same ``repeats`` outer repeats as the set-level CV.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..outcomes import TIME_DECIMALS
from .features import FeatureSet, too_few_runs
from .nested import nested_best_many
from .statistics import FPR_GRID, delong_paired_repeats, summarise_scores

__all__ = ["BEST_FAMILIES", "BEST_VARIABLES", "INDICATOR_FAMILIES", "BestAvailable",
           "best_available"]

#: families whose nested best is reported by availability time ("all" = best of all of them)
BEST_FAMILIES = ("baseline", "FTLE", "CLV", "combined", "all")
#: families compared with the baseline family's best (paired DeLong test)
INDICATOR_FAMILIES = ("FTLE", "CLV", "combined")
#: result key -> name of the (event, best_family, tau) array in :attr:`BestAvailable.arrays`
BEST_VARIABLES = (("auc_mean", "best_auc_mean"), ("auc_std", "best_auc_std"),
                  ("auc_ci_low", "best_auc_ci_low"), ("auc_ci_high", "best_auc_ci_high"),
                  ("chosen_fraction", "best_chosen_fraction"), ("delta", "best_delta"),
                  ("delta_ci_low", "best_delta_ci_low"),
                  ("delta_ci_high", "best_delta_ci_high"), ("p", "best_p"),
                  ("n_positive", "best_n_positive"), ("n_negative", "best_n_negative"),
                  ("n_dropped", "best_n_dropped"))


@dataclass(frozen=True)
class BestAvailable:
    """Nested best of each family of BEST_FAMILIES at each availability time of ``taus``.

    ``arrays``: {name of BEST_VARIABLES: (event, best_family, tau)} (NaN: not computable);
    ``chosen`` (event, best_family, tau) str; ``roc_tpr`` (…, FPR_GRID); ``results``: one
    (event, family, τ, result dict) per event, τ and family, in reporting order (the dict has
    the keys of BEST_VARIABLES that apply, ``computable``, ``reason`` and ``chosen``);
    ``stop_scores`` {τ: (P(E_high) of every run, runs without a prediction, chosen)} of the
    family 'all' where it is computable.
    """

    taus: list
    arrays: dict
    chosen: np.ndarray
    roc_tpr: np.ndarray
    results: list
    stop_scores: dict


def _label(name, t):
    return f"{name}@{0.0 if name == 'theta0' else t:g}"


def _candidates(sets, feats, times, avail, tau: float):
    """(family, set name, prediction time used) of every set of BEST_FAMILIES available by τ
    (at the latest prediction time whose available time is ≤ τ)."""
    cands = []
    for n, fs in sets.items():
        if fs.family not in BEST_FAMILIES or any(m not in feats[times[0]] for m in fs.members):
            continue
        ok = [t for t in times if avail[n][t] <= tau + 1e-12]
        if ok:
            cands.append((fs.family, n, times[0] if fs.timing == "zero" else max(ok)))
    return cands


def _family_result(nb, fam, groups, cands, y, head, tau, folds):
    """Summary of family ``fam``'s nested best (a dict of AUC statistics, or a reason)."""
    res = dict(head, computable=False, reason="")
    if not groups[fam]:
        res["reason"] = f"no {fam} set available by {tau:g}"
    elif nb is None:
        res["reason"] = too_few_runs(head["n_positive"], head["n_negative"], folds)
    elif (nb.choice[fam] < 0).any():
        res["reason"] = f"no {fam} candidate could be fitted in some fold"
    else:
        oof = nb.oof[fam]
        sm = summarise_scores(oof, y)
        counts = Counter(int(c) for c in nb.choice[fam].ravel())
        top, n_top = counts.most_common(1)[0]
        _, cname, ct = cands[groups[fam][top]]
        res.update(computable=True, auc_mean=sm.auc_mean, auc_std=sm.auc_std,
                   auc_ci_low=sm.auc_ci_low, auc_ci_high=sm.auc_ci_high,
                   tpr=sm.mean_tpr, oof=oof, score=oof.mean(axis=0),
                   chosen=f"{_label(cname, ct)} ({n_top}/{nb.choice[fam].size} folds)",
                   chosen_fraction=n_top / nb.choice[fam].size)
    return res


def best_available(sets: Mapping[str, FeatureSet], feats: Mapping[float, Mapping],
                   times: Sequence[float], avail: Mapping[str, Mapping[float, float]],
                   lagged: Mapping[float, float], events: Sequence[str],
                   ev: Mapping[str, np.ndarray], folds: int, repeats: int,
                   seed: int) -> BestAvailable:
    """Nested best of each family available by each τ (module docstring) for ``events``.

    ``sets`` as :func:`.features.feature_sets`; ``feats[t]`` as :func:`.features.features_at`
    at prediction time t of the sorted ``times``; ``avail[name][t]`` the set's available time;
    ``lagged[t]`` the available time of the fixed-lag features; ``ev[event]`` the bool labels
    of every run; CV with ``folds`` folds, ``repeats`` repeats and random_state seed + r.
    """
    from scipy.special import expit

    n_runs = ev[events[0]].size
    taus = sorted({round(t, TIME_DECIMALS) for t in times}
                  | {round(v, TIME_DECIMALS) for v in lagged.values()})
    E, B, U = len(events), len(BEST_FAMILIES), len(taus)
    arrays = {dst: np.full((E, B, U), np.nan) for _, dst in BEST_VARIABLES}
    chosen = np.full((E, B, U), "", dtype=object)
    roc = np.full((E, B, U, FPR_GRID.size), np.nan)
    results, stop_scores = [], {}
    problems = [_problem(sets, feats, times, avail, tau, n_runs) for tau in taus]
    nested = _nested(problems, feats, events, ev, folds, repeats, seed)
    for u, tau in enumerate(taus):
        cands, used, groups = problems[u].cands, problems[u].used, problems[u].groups
        for e, event in enumerate(events):
            y = ev[event][used]
            n_pos, n_neg = int(y.sum()), int((~y).sum())
            head = dict(n_positive=n_pos, n_negative=n_neg, n_dropped=int((~used).sum()))
            nb = nested.get((u, event))
            fam_res = {fam: _family_result(nb, fam, groups, cands, y, head, tau, folds)
                       for fam in BEST_FAMILIES}
            base = fam_res["baseline"]
            for fam in INDICATOR_FAMILIES:
                res = fam_res[fam]
                if res["computable"] and base["computable"]:
                    pd_ = delong_paired_repeats(res["oof"], base["oof"], y)
                    res.update(delta=pd_.delta, delta_ci_low=pd_.ci_low,
                               delta_ci_high=pd_.ci_high, p=pd_.p_value)
            if event == "high" and fam_res["all"]["computable"]:
                p = np.ones(n_runs)
                p[used] = expit(fam_res["all"]["score"])
                stop_scores[tau] = (p, ~used, fam_res["all"]["chosen"])
            for b, fam in enumerate(BEST_FAMILIES):
                res = fam_res[fam]
                for src, dst in BEST_VARIABLES:
                    if res.get(src) is not None:
                        arrays[dst][e, b, u] = res[src]
                chosen[e, b, u] = res.get("chosen", "")
                if res.get("tpr") is not None:
                    roc[e, b, u] = res["tpr"]
                results.append((event, fam, tau, res))
    return BestAvailable(taus, arrays, chosen, roc, results, stop_scores)


class _Problem(NamedTuple):
    """The candidates available by one τ: ``cands`` (:func:`_candidates`), their features
    ``cols`` ((name, prediction time), in order), the runs ``used`` with all of them finite,
    the membership matrix ``M`` (len(cols) × len(cands)) and the candidate indices of each
    family, ``groups`` ('all': every candidate)."""

    cands: list
    cols: list
    used: np.ndarray
    M: np.ndarray
    groups: dict


def _problem(sets, feats, times, avail, tau: float, n_runs: int) -> _Problem:
    cands = _candidates(sets, feats, times, avail, tau)
    cols = list(dict.fromkeys((m, t) for _, n, t in cands for m in sets[n].members))
    used = np.ones(n_runs, dtype=bool) if cols else np.zeros(n_runs, dtype=bool)
    for m, t in cols:
        used &= np.isfinite(feats[t][m])
    M = np.zeros((len(cols), len(cands)))
    for c, (_, n, t) in enumerate(cands):
        M[[cols.index((m, t)) for m in sets[n].members], c] = 1.0
    groups = {f: [c for c, cand in enumerate(cands) if cand[0] == f]
              for f in BEST_FAMILIES if f != "all"}
    groups["all"] = list(range(len(cands)))
    return _Problem(cands, cols, used, M, groups)


def _nested(problems, feats, events, ev, folds: int, repeats: int, seed: int) -> dict:
    """{(τ index, event): nested best of every family} where the classes have at least
    ``folds`` runs; the τ with the same runs are scored together (nested_best_many)."""
    batches: dict[tuple, list[int]] = {}
    for u, pr in enumerate(problems):
        for event in events:
            y = ev[event][pr.used]
            if pr.cols and min(int(y.sum()), int((~y).sum())) >= folds:
                batches.setdefault((pr.used.tobytes(), event), []).append(u)
    out = {}
    for (_, event), us in batches.items():
        used = problems[us[0]].used
        # one column per distinct feature vector (θ_0 is the same at every prediction time)
        columns: dict[bytes, int] = {}
        index = {}
        for m, t in dict.fromkeys(c for u in us for c in problems[u].cols):
            index[m, t] = columns.setdefault(feats[t][m][used].tobytes(), len(columns))
        X = np.column_stack([np.frombuffer(b) for b in columns])
        specs = [([index[c] for c in problems[u].cols], problems[u].M,
                  {f: g for f, g in problems[u].groups.items() if g}) for u in us]
        for u, res in zip(us, nested_best_many(X, ev[event][used], specs, folds, repeats,
                                               seed)):
            out[u, event] = res
    return out

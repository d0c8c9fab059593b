"""Nested selection: the best of a group of candidate feature sets, chosen without the runs
that score it (docs/methods.md §3 "Fair comparisons").

Outer CV: ``repeats`` × stratified ``folds`` (random_state = seed + r). In each outer training
fold an inner stratified ``folds``-fold CV (one repeat, random_state = ``inner_seed``, default
``seed``) gives every candidate set its pooled inner out-of-fold AUC; per group the candidate
with the highest inner AUC is chosen (a candidate with a member constant in an inner or outer
training fold is not eligible), fitted on the whole outer training fold (Gaussian naive Bayes,
:mod:`.classifier`) and used to score the outer test fold. The outer test fold is never seen
by the choice.

:func:`nested_best_many` runs several such problems on the same runs and labels (the candidates
available by each time τ) and fits each fold once for all of their features: a feature's
naive Bayes numbers depend on its own column only (:class:`.classifier.FoldFit`), so every
problem gets exactly the scores of :func:`nested_best` on its own columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classifier import fold_fit, stratified_splits
from .statistics import auc

__all__ = ["NestedResult", "nested_best", "nested_best_many"]


@dataclass
class NestedResult:
    """Nested "best of a group of candidate sets" pseudo-predictors.

    ``oof[g]`` (R, n): out-of-fold log-odds of group g's pseudo-predictor; ``choice[g]`` (R,
    folds): index (into the candidate list) of the set chosen in each outer fold, −1 if no
    candidate of the group could be fitted there; ``splits[r]`` the outer (train, test) splits.
    """

    oof: dict
    choice: dict
    splits: list


def nested_best(X, y, membership, groups: dict, folds: int, repeats: int, seed: int,
                inner_seed: int | None = None) -> NestedResult:
    """Nested cross-validated choice (module docstring) of the best candidate set within each
    group ``{name: candidate indices}``; the candidates are the columns of the 0/1
    ``membership`` matrix (p × s) over the features X (n × p), y the binary labels."""
    M = np.asarray(membership, dtype=float)
    return nested_best_many(X, y, [(slice(None), M, groups)], folds, repeats, seed,
                            inner_seed)[0]


def nested_best_many(X, y, problems, folds: int, repeats: int, seed: int,
                     inner_seed: int | None = None) -> list[NestedResult]:
    """:func:`nested_best` of every problem ``(cols, membership, groups)`` of ``problems`` on
    the features ``X[:, cols]`` (``cols``: column indices or a slice; ``membership``
    len(cols) × s), on the same runs and labels y: one result per problem, equal to
    ``nested_best(X[:, cols], y, membership, groups, …)``."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(bool)
    problems = [(cols, np.asarray(M, dtype=float), groups) for cols, M, groups in problems]
    inner_seed = seed if inner_seed is None else inner_seed
    n = X.shape[0]
    results = [NestedResult({g: np.full((repeats, n), np.nan) for g in groups},
                            {g: np.full((repeats, folds), -1, dtype=int) for g in groups}, [])
               for _, _, groups in problems]
    for r in range(repeats):
        splits = stratified_splits(y, folds, seed + r)
        for res in results:
            res.splits.append(splits)
        for k, (train, test) in enumerate(splits):
            inner = _inner_aucs(X[train], y[train], problems, folds, inner_seed)
            outer = _fold_scores(X, y, train, test, problems)
            for res, (_, M, groups), inner_auc, (scores, constant) in zip(
                    results, problems, inner, outer):
                eligible = np.isfinite(inner_auc) & ~(M[constant] > 0).any(axis=0)
                for g, members in groups.items():
                    members = np.asarray(members, dtype=int)
                    ok = members[eligible[members]]
                    if ok.size == 0:
                        continue
                    best = int(ok[np.argmax(inner_auc[ok])])
                    res.choice[g][r, k] = int(np.flatnonzero(members == best)[0])
                    res.oof[g][r, test] = scores[:, best]
    return results


def _fold_scores(X, y, train, test, problems):
    """(log-odds of every candidate on ``test``, its features constant on ``train``) of every
    problem, from one fit of all columns of X on ``train``; a single-feature problem (or a
    single-column X) is fitted on its own columns (NumPy sums a single column differently)."""
    fit = None
    out = []
    for cols, M, _ in problems:
        if M.shape[0] > 1 and X.shape[1] > 1:
            if fit is None:
                fit = fold_fit(X[train], y[train], X[test])
            out.append(fit.scores(M, cols))
        else:
            Xp = X[:, cols].reshape(X.shape[0], -1)
            out.append(fold_fit(Xp[train], y[train], Xp[test]).scores(M))
    return out


def _inner_aucs(X, y, problems, folds, seed):
    """Pooled inner out-of-fold AUC of every candidate of every problem (NaN where a member is
    constant in an inner training fold or a class has fewer than ``folds`` runs)."""
    if min(int(y.sum()), int((~y).sum())) < folds:
        return [np.full(M.shape[1], np.nan) for _, M, _ in problems]
    scores = [np.empty((X.shape[0], M.shape[1])) for _, M, _ in problems]
    invalid = [np.zeros(M.shape[1], dtype=bool) for _, M, _ in problems]
    for train, test in stratified_splits(y, folds, seed):
        for p, (s, constant) in enumerate(_fold_scores(X, y, train, test, problems)):
            scores[p][test] = s
            invalid[p] |= (problems[p][1][constant] > 0).any(axis=0)
    out = []
    for s, bad in zip(scores, invalid):
        a = np.asarray(auc(s, y), dtype=float)
        a[bad] = np.nan
        out.append(a)
    return out

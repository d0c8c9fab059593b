"""Conditioning of the reported Lyapunov exponents: how many digits of each are meaningful.

The study reports frame-invariant exponents (:func:`weightdyn.lyapunov.singular_value_ftle`):
the whole-run exponents Λ_i = (1/T) ln σ_i(M(T, 0)) and the early-time FTLE features
Λ_i(t*) = (1/t*) ln σ_i(M(t*, 0)), σ descending, M(t, 0) the cumulative tangent propagator.
For a few low-loss (c_f < 4) and high-loss (c_f > 100) runs of every (activation,
initialisation) of the default protocol (config.yaml) this script

1. integrates the runs with θ recorded at every step and propagators stored in float64 and in
   float32 (:func:`weightdyn.engine.integrate`, the compiled engine of the study);
2. recomputes every per-step tangent map J_n = I − η H(θ_n) from the stored θ_n with the
   plain-NumPy reference :func:`weightdyn.dynamics.loss_gradient_hessian` and takes
   ``singular_value_ftle`` of the per-step maps (dt = η): the reference Λ_i(T) and Λ_i(t*);
3. whole run: repeats step 2 with every J_n replaced by J_n + E_n, E_n random symmetric with
   ‖E_n‖₂ = ε ‖J_n‖₂ (ε = 1e-16, 1e-14, 1e-12, several draws; two correct float64
   implementations of H differ by ≈ 3e-15 in J), compares the engine's own per-step J
   (jacobian_stride 1) and the study's stride-5 propagators stored in float64 and float32 with
   the reference;
4. early FTLEs at t* ∈ {0.015, 0.1, 0.5}: perturbs every STORED float64 stride propagator M_k
   by a random matrix with ‖E_k‖_F = ε ‖M_k‖_F (ε = 1e-16, 1e-15: the rounding of the stored
   data itself, which no float64 algorithm can avoid), and compares the stride-5 float64
   values with the per-step reference;
5. the former definition, Benettin's whole-run means from a random frame Q_0 (per-step float64
   QR): their spread over other random frames, and float32 against float64 storage — the
   reason the study switched to the frame-invariant definition.

It prints per-run summaries and the tables, and writes them to docs/conditioning.md.

    python benchmarks/conditioning.py            # about 20 s on 2 cores
    python benchmarks/conditioning.py --quick    # fewer runs and draws
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # batched 9 × 9 work: threads only contend
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from weightdyn import activations, dynamics, engine, lyapunov  # noqa: E402
from weightdyn.initialization import initial_parameters  # noqa: E402
from weightdyn.network import Architecture  # noqa: E402
from weightdyn.task import teacher_task  # noqa: E402

LEVELS = (1e-16, 1e-14, 1e-12)  # whole run: ‖E_n‖₂ / ‖J_n‖₂ of the per-step perturbations
M_LEVELS = (1e-16, 1e-15)       # early FTLEs: ‖E_k‖_F / ‖M_k‖_F of the stored propagators
TIMES = (0.015, 0.1, 0.5)       # prediction times of the early-FTLE table
ROUNDING = 2.0 ** -53           # unit roundoff of float64


def select_runs(cfg, arch, act_name, init, per_class, scan):
    """Indices of the first ``per_class`` low- and high-loss (finite) runs among 0 … scan−1."""
    act = activations.get(act_name)
    task = teacher_task(arch, act_name, cfg["task"])
    train = cfg["training"]
    index = np.arange(scan)
    theta0 = initial_parameters(arch, cfg["seed"], act_name, init, index)
    out = engine.integrate(theta0, arch, act, task, train["learning_rate"], train["steps"],
                           train["steps"], cfg["recording"]["jacobian_stride"],
                           train["divergence_bound"], "float64")
    cf, low, high = out.final_loss, cfg["classes"]["low"], cfg["classes"]["high"]
    finite = out.divergence_step < 0
    return {"low": index[(cf < low) & finite][:per_class],
            "high": index[(cf > high) & finite][:per_class]}


def tangent_maps(theta, arch, act, task, eta, steps):
    """J_n = I − η H(θ_n) for n = 0 … T−1 from the stored θ (S, T+1, d): (S, T, d, d)."""
    S, _, d = theta.shape
    J = np.empty((S, steps, d, d))
    for n in range(steps):
        J[:, n] = np.eye(d) - eta * dynamics.loss_gradient_hessian(theta[:, n], arch, act, task)[2]
    return J


def perturbed_maps(J, norm_J, eps, rng):
    """J_n + E_n, E_n random symmetric with ‖E_n‖₂ = ε ‖J_n‖₂ (norm_J = ‖J_n‖₂, (S, T))."""
    E = rng.standard_normal(J.shape)
    E = E + E.swapaxes(-1, -2)
    norm_E = np.abs(np.linalg.eigvalsh(E)).max(axis=-1)
    return J + (eps * norm_J / norm_E)[..., None, None] * E


def rounded_propagators(M, rng):
    """M_k with every entry given a relative error of at most u = 2^-53 (uniform in [−u, u]):
    the entrywise rounding of storing M_k in float64 (exact zeros stay zero)."""
    return M * (1.0 + ROUNDING * rng.uniform(-1.0, 1.0, M.shape))


def perturbed_propagators(M, eps, rng):
    """M_k + E_k, E_k a random (Gaussian) matrix with ‖E_k‖_F = ε ‖M_k‖_F."""
    E = rng.standard_normal(M.shape)
    scale = eps * np.linalg.norm(M, axis=(-2, -1)) / np.linalg.norm(E, axis=(-2, -1))
    return M + scale[..., None, None] * E


def per_step_exponents(J, eta, frame):
    """Benettin's whole-run exponents Σ_n ln R_ii(n)/(Tη) of a float64 QR at every step from
    Q_0 = ``frame`` (the study's former definition; column order, not sorted)."""
    S, T, d, _ = J.shape
    Q = np.broadcast_to(frame, (S, d, d)).copy()
    logs = np.zeros((S, d))
    for n in range(T):
        q, r = np.linalg.qr(J[:, n] @ Q)
        diag = np.diagonal(r, axis1=1, axis2=2)
        Q = q * np.where(diag < 0, -1.0, 1.0)[:, None, :]
        logs += np.log(np.abs(diag))
    return logs / (T * eta)


def study(cfg, act_name, init, per_class, scan, draws):
    """All comparisons for one (activation, initialisation): dict class → dict name → array.

    Whole-run quantities are (S, d), early-FTLE quantities ("early …") (S, len(TIMES), d),
    Benettin quantities ("benettin …") (S, d).
    """
    arch = Architecture.from_config(cfg)
    act = activations.get(act_name)
    task = teacher_task(arch, act_name, cfg["task"])
    train, seed = cfg["training"], cfg["seed"]
    eta, steps, s = train["learning_rate"], train["steps"], cfg["recording"]["jacobian_stride"]
    K = steps // s
    step_counts = [int(round(t / eta)) for t in TIMES] + [steps]        # 15, 100, 500, T
    stride_counts = [int(round(t / (s * eta))) for t in TIMES] + [K]    # 3, 20, 100, K
    runs = select_runs(cfg, arch, act_name, init, per_class, scan)
    index = np.concatenate([runs["low"], runs["high"]])
    theta0 = initial_parameters(arch, seed, act_name, init, index)
    out = {dt: engine.integrate(theta0, arch, act, task, eta, steps, 1, s,
                                train["divergence_bound"], dt) for dt in ("float64", "float32")}
    J = tangent_maps(out["float64"].theta, arch, act, task, eta, steps)
    eig = np.linalg.eigvalsh(J)  # (S, T, d)
    norm_J = np.abs(eig).max(axis=-1)
    svf = lyapunov.singular_value_ftle

    # 1. whole-run frame-invariant exponents
    ref_all = svf(J, eta, step_counts)
    ref, ref_early = ref_all[:, -1], ref_all[:, :-1]
    res = {"reference": ref, "early reference": ref_early}
    for eps in LEVELS:
        spread = np.zeros_like(ref_all)
        for k in range(draws):
            pert = svf(perturbed_maps(J, norm_J, eps, np.random.default_rng([seed, k])), eta,
                       step_counts)
            spread = np.maximum(spread, np.abs(pert - ref_all))
        res[f"perturb {eps:.0e}"] = spread[:, -1]
        res[f"early perturb J {eps:.0e}"] = spread[:, :-1]
    # the engine's own per-step J (jacobian_stride = 1): a second float64 implementation of J
    own = engine.integrate(theta0, arch, act, task, eta, steps, steps, 1,
                           train["divergence_bound"], "float64")
    res["engine J per step"] = np.abs(svf(own.propagator, eta, [steps])[:, 0] - ref)
    sv = {dt: svf(out[dt].propagator, s * eta, stride_counts) for dt in ("float64", "float32")}
    for dt in ("float64", "float32"):
        res[f"stride-{s} {dt}"] = np.abs(sv[dt][:, -1] - ref)
    res["float32 - float64"] = np.abs(sv["float32"][:, -1] - sv["float64"][:, -1])
    res["float32 value"] = sv["float32"][:, -1]
    # the entrywise rounding of the stored stride propagators (what no algorithm on them avoids)
    spread = np.zeros_like(sv["float64"])
    for k in range(draws):
        pert = svf(rounded_propagators(out["float64"].propagator,
                                       np.random.default_rng([seed, 200 + k])), s * eta,
                   stride_counts)
        spread = np.maximum(spread, np.abs(pert - sv["float64"]))
    res["stored M rounding"] = spread[:, -1]
    res["early stored M rounding"] = spread[:, :-1]

    # 2. early FTLE features: rounding of the stored M_k, and stride-5 vs per-step
    M = out["float64"].propagator[:, :max(stride_counts[:-1])]
    base = sv["float64"][:, :-1]
    for eps in M_LEVELS:
        spread = np.zeros_like(base)
        for k in range(draws):
            pert = svf(perturbed_propagators(M, eps, np.random.default_rng([seed, 100 + k])),
                       s * eta, stride_counts[:-1])
            spread = np.maximum(spread, np.abs(pert - base))
        res[f"early perturb M {eps:.0e}"] = spread
    res[f"early stride-{s} float64"] = np.abs(base - ref_early)

    # 3. the former definition: Benettin whole-run means from a random frame
    frame = lyapunov.random_orthogonal(arch.dim, seed)
    ben = per_step_exponents(J, eta, frame)
    frames = np.zeros_like(ben)
    for k in range(1, draws + 1):
        frames = np.maximum(frames, np.abs(
            per_step_exponents(J, eta, lyapunov.random_orthogonal(arch.dim, seed + k)) - ben))
    res["benettin reference"] = ben
    res["benettin other frame"] = frames
    lam = {dt: lyapunov.analyse(out[dt].propagator, s * eta, seed=seed).lyapunov_exponent
           for dt in ("float64", "float32")}
    res["benettin float64"] = lam["float64"]
    res["benettin float32"] = lam["float32"]

    res["early excursion"] = np.stack([eig[:, :n].min(axis=(1, 2)) < -1.0
                                       for n in step_counts[:-1]], axis=1)
    res["eig"] = np.stack([np.abs(eig).min(axis=(1, 2)), np.abs(eig).max(axis=(1, 2))], axis=1)
    res["eig_min_signed"] = eig.min(axis=(1, 2))
    res["final_loss"] = out["float64"].final_loss
    n_low = runs["low"].size
    split = {"low": slice(0, n_low), "high": slice(n_low, None)}
    return {cls: {"index": runs[cls], **{k: v[sl] for k, v in res.items()}}
            for cls, sl in split.items()}


def ordered(groups):
    """Groups in a reading order: tanh first, then low before high, no excursion first."""
    return sorted(groups.items(), key=lambda kv: (kv[0][0] != "tanh", kv[0][0],
                                                  kv[0][1] != "low", kv[0][2:]))


def fmt(x):
    if not np.isfinite(x):
        return "–"
    if x == 0:
        return "0"
    return f"{x:.1e}" if abs(x) < 0.01 or abs(x) >= 1000 else f"{x:.3g}"


def decimals(delta):
    """Decimals of Λ that an uncertainty ``delta`` leaves meaningful (−1: not even the units)."""
    if delta <= 0:
        return 15
    return int(np.floor(-np.log10(2.0 * delta)))


def dec_cells(dec):
    return " | ".join(str(max(x, -1)) if x < 15 else "all" for x in dec)


# whole-run table: rows and the rows whose maximum is the uncertainty Δ
ROWS = ("typical abs(Λ_i) (median)", "perturb 1e-16", "perturb 1e-14",
        "perturb 1e-14 (median run)", "perturb 1e-12", "stored M rounding", "engine J per step",
        "stride-5 float64", "stride-5 float32", "float32 - float64")
DELTA_ROWS = ("perturb 1e-14", "engine J per step", "stride-5 float64")
# early-FTLE table
EARLY_ROWS = ("typical abs(Λ_i(t*)) (median)", "perturb J 1e-16", "perturb J 1e-14",
              "perturb M 1e-16", "perturb M 1e-15", "stored M rounding", "stride-5 float64")
EARLY_DELTA_ROWS = ("perturb J 1e-14", "stored M rounding", "stride-5 float64")


def run_label(index):
    return ", ".join(f"{init}:{','.join(map(str, idx))}" for init, idx in index)


def table(groups, d):
    """Markdown table: per (activation, class, excursion) the rows above, columns Λ_1 … Λ_d."""
    head = "| activation | class | excursion | runs | quantity | " + " | ".join(
        f"Λ_{i}" for i in range(1, d + 1)) + " |"
    lines = [head, "|" + "---|" * (d + 5)]
    digits = {}
    for (act, cls, exc), g in ordered(groups):
        for row in ROWS:
            if row.startswith("typical"):
                vals = np.median(np.abs(g["reference"]), axis=0)
            elif row.endswith("(median run)"):
                vals = np.median(g[row.split(" (")[0]], axis=0)
            else:
                vals = g[row].max(axis=0)
            cells = " | ".join(fmt(v) for v in vals)
            lines.append(f"| {act} | {cls} | {exc} | "
                         f"{run_label(g['index']) if row == ROWS[0] else ''} | {row} | {cells} |")
        delta = np.max([g[k].max(axis=0) for k in DELTA_ROWS], axis=0)
        dec = [decimals(x) for x in delta]
        digits[(act, cls, exc)] = dec
        lines.append(f"| {act} | {cls} | {exc} | | **meaningful decimals** | {dec_cells(dec)} |")
    return "\n".join(lines), digits


def early_table(groups, d):
    """Markdown table: per (activation, class) and t* the early-FTLE rows, columns Λ_1 … Λ_d."""
    head = "| activation | class | t* | excursion by t* | quantity | " + " | ".join(
        f"Λ_{i}(t*)" for i in range(1, d + 1)) + " |"
    lines = [head, "|" + "---|" * (d + 5)]
    digits, digits_median = {}, {}
    for (act, cls), g in ordered(groups):
        for b, t in enumerate(TIMES):
            exc = g["early excursion"][:, b]
            label = f"{int(exc.sum())} of {exc.size} runs"
            for row in EARLY_ROWS:
                if row.startswith("typical"):
                    vals = np.median(np.abs(g["early reference"][:, b]), axis=0)
                else:
                    vals = g[f"early {row}"][:, b].max(axis=0)
                lines.append(f"| {act} | {cls} | {t:g} | {label if row == EARLY_ROWS[0] else ''} "
                             f"| {row} | " + " | ".join(fmt(v) for v in vals) + " |")
            per_run = np.max([g[f"early {k}"][:, b] for k in EARLY_DELTA_ROWS], axis=0)  # (S, d)
            dec = [decimals(x) for x in per_run.max(axis=0)]
            dec_median = [decimals(x) for x in np.median(per_run, axis=0)]
            digits[(act, cls, t)] = dec
            digits_median[(act, cls, t)] = dec_median
            lines.append(f"| {act} | {cls} | {t:g} | | **meaningful decimals** | "
                         f"{dec_cells(dec)} |")
            lines.append(f"| {act} | {cls} | {t:g} | | meaningful decimals, median run | "
                         f"{dec_cells(dec_median)} |")
    return "\n".join(lines), digits, digits_median


def benettin_table(groups):
    """Compact table of the former (Benettin, random frame) whole-run exponents."""
    lines = ["| activation | class | excursion | runs | Benettin Λ_1 (range) "
             "| other frame: max abs ΔΛ_1 | other frame: max_i abs ΔΛ_i "
             "| float32 − float64: max abs ΔΛ_1 "
             "| float32 flips the sign of Λ_1 | frame-invariant Λ_1 (range) "
             "| max abs(Benettin − frame-invariant) Λ_1 | opposite signs |",
             "|" + "---|" * 12]
    for (act, cls, exc), g in ordered(groups):
        ben, f32, f64 = g["benettin reference"], g["benettin float32"], g["benettin float64"]
        flips = int(np.sum(np.sign(f32[:, 0]) != np.sign(f64[:, 0])))
        lines.append(
            f"| {act} | {cls} | {exc} | {len(ben)} | {ben[:, 0].min():.2f} … {ben[:, 0].max():.2f} "
            f"| {fmt(g['benettin other frame'][:, 0].max())} "
            f"| {fmt(g['benettin other frame'].max())} "
            f"| {fmt(np.abs(f32[:, 0] - f64[:, 0]).max())} | {flips} of {len(ben)} "
            f"| {g['reference'][:, 0].min():.2f} … {g['reference'][:, 0].max():.2f} "
            f"| {fmt(np.abs(ben[:, 0] - g['reference'][:, 0]).max())} "
            f"| {int(np.sum(ben[:, 0] * g['reference'][:, 0] < 0))} of {len(ben)} |")
    return "\n".join(lines)


NEUTRAL = 1e-10  # |Λ_1| and Δ_1 below this: an exactly neutral direction (dead ReLU unit)


def sign_statement(values, delta):
    """Runs whose Λ_1 is (positive, negative, neutral = 0 to ≤ NEUTRAL, undetermined in sign)."""
    neutral = (np.abs(values) <= NEUTRAL) & (delta <= NEUTRAL)
    undecided = (np.abs(values) <= delta) & ~neutral
    decided = ~neutral & ~undecided
    return (int((decided & (values > 0)).sum()), int((decided & (values < 0)).sum()),
            int(neutral.sum()), int(undecided.sum()))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(ROOT / "config.yaml"))
    p.add_argument("--per-class", type=int, default=3, help="runs per class and initialisation")
    p.add_argument("--scan", type=int, default=200, help="networks scanned for the classes")
    p.add_argument("--draws", type=int, default=5, help="perturbation draws (and other frames)")
    p.add_argument("--quick", action="store_true", help="2 runs per class, 2 draws")
    p.add_argument("--output", default=str(ROOT / "docs" / "conditioning.md"))
    args = p.parse_args(argv)
    if args.quick:
        args.per_class, args.draws = 2, 2
    cfg = yaml.safe_load(open(args.config))
    np.set_printoptions(precision=3, suppress=True, linewidth=160)
    start = time.perf_counter()
    per_run = []  # (activation, class, init, index, {quantity: array or scalar})
    for act in cfg["activations"]:
        for init in cfg["initializations"]:
            t0 = time.perf_counter()
            res = study(cfg, act, init, args.per_class, args.scan, args.draws)
            print(f"{act}/{init}: {time.perf_counter() - t0:.1f} s", flush=True)
            for cls, r in res.items():
                for j, idx in enumerate(r.pop("index").tolist()):
                    per_run.append((act, cls, init, idx, {k: v[j] for k, v in r.items()}))
                    q = per_run[-1][4]
                    print(f"  {cls:4s} {init}:{idx:<4d} c_f={q['final_loss']:9.3g} "
                          f"|eig J| in [{q['eig'][0]:.2g}, {q['eig'][1]:.3g}]  "
                          f"Λ_1 {q['reference'][0]:7.3f} "
                          f"(Benettin {q['benettin reference'][0]:7.3f})"
                          f", |Δ| perturb 1e-14 {q['perturb 1e-14'][0]:.3g}, engine J "
                          f"{q['engine J per step'][0]:.3g}, float64 {q['stride-5 float64'][0]:.3g}"
                          f", float32 {q['stride-5 float32'][0]:.3g};  Λ_1(0.015) "
                          f"{q['early reference'][0, 0]:7.3f} ± "
                          f"{q['early perturb M 1e-15'][0, 0]:.2g}"
                          f", Λ_9(0.015) {q['early reference'][0, -1]:8.1f} ± "
                          f"{q['early perturb M 1e-15'][0, -1]:.2g}")
    # groups: activation × class × whether the run has an excursion past η λ_max(H) = 2
    # (an eigenvalue of J below −1): those are the poorly conditioned runs
    groups, early_groups = {}, {}
    for act, cls, init, idx, q in per_run:
        for grp, key in ((groups, (act, cls, "yes" if q["eig_min_signed"] < -1.0 else "no")),
                         (early_groups, (act, cls))):
            g = grp.setdefault(key, {"index": {}})
            g["index"].setdefault(init, []).append(idx)
            for k, v in q.items():
                g.setdefault(k, []).append(v)
    for g in list(groups.values()) + list(early_groups.values()):
        g["index"] = list(g["index"].items())
        for k in list(g):
            if k != "index":
                g[k] = np.array(g[k])
    d = next(iter(groups.values()))["reference"].shape[1]
    md, digits = table(groups, d)
    md_early, digits_early, digits_early_median = early_table(early_groups, d)
    md_ben = benettin_table(groups)
    elapsed = time.perf_counter() - start
    print(md, md_early, md_ben, sep="\n\n")
    eig_lines = []
    for (act, cls, exc), g in ordered(groups):
        eig_lines.append(f"* {act}, {cls}, excursion {exc} ({len(g['eig'])} runs): per-step "
                         f"|eig J| from {g['eig'][:, 0].min():.2g} to {g['eig'][:, 1].max():.3g} "
                         f"(over the "
                         f"runs; per run the largest ranges {g['eig'][:, 1].min():.3g}–"
                         f"{g['eig'][:, 1].max():.3g})")
    print("\n".join(eig_lines))
    cmd = "python benchmarks/conditioning.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    text = render(cmd, elapsed, md, md_early, md_ben, eig_lines, digits, digits_early,
                  digits_early_median, groups, early_groups, args)
    Path(args.output).write_text(text)
    print(f"wrote {args.output} ({elapsed:.0f} s)")


def sign_lines(groups, early_groups):
    """Table: per group the runs whose Λ_1 (whole run, each t*) is > 0, < 0, neutral, or
    undetermined in sign (|Λ_1| ≤ that run's own Δ_1)."""
    out = ["| activation | class | excursion (whole run) | runs | whole run | "
           + " | ".join(f"t* = {t:g}" for t in TIMES) + " |", "|" + "---|" * (5 + len(TIMES))]

    def cell(values, delta):
        pos, neg, zero, und = sign_statement(values, delta)
        return f"{pos} / {neg} / {zero} / **{und}**"

    for (act, cls), ge in ordered(early_groups):
        early = [np.max([ge[f"early {k}"][:, b, 0] for k in EARLY_DELTA_ROWS], axis=0)
                 for b in range(len(TIMES))]
        for exc in ("no", "yes"):
            g = groups.get((act, cls, exc))
            if g is None:
                continue
            # the runs of this excursion group inside the (activation, class) group
            members = [(init, i) for init, idx in g["index"] for i in idx]
            flat = [(init, i) for init, idx in ge["index"] for i in idx]
            rows = np.array([flat.index(m) for m in members])
            delta = np.max([g[k][:, 0] for k in DELTA_ROWS], axis=0)
            cells = [cell(g["reference"][:, 0], delta)] + [
                cell(ge["early reference"][rows, b, 0], early[b][rows]) for b in range(len(TIMES))]
            out.append(f"| {act} | {cls} | {exc} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def render(cmd, elapsed, md, md_early, md_ben, eig_lines, digits, digits_early,
           digits_early_median, groups, early_groups, args):
    d = len(next(iter(digits.values())))
    names = " | ".join(f"Λ_{i}" for i in range(1, d + 1))

    def dc(x):
        return "none" if x < 0 else ("all" if x >= 15 else str(x))

    per_group = "\n".join(
        [f"| activation | class | excursion | {names} |", "|" + "---|" * (d + 3)]
        + [f"| {act} | {cls} | {exc} | " + " | ".join(dc(x) for x in digits[(act, cls, exc)])
           + " |" for (act, cls, exc), _ in ordered(groups)])
    per_group_early = "\n".join(
        [f"| activation | class | t* | {names} |", "|" + "---|" * (d + 3)]
        + [f"| {act} | {cls} | {t:g} | " + " | ".join(
            f"{dc(w)} ({dc(m)})" for w, m in zip(digits_early[(act, cls, t)],
                                                  digits_early_median[(act, cls, t)])) + " |"
           for (act, cls), _ in ordered(early_groups) for t in TIMES])
    return f"""# Conditioning of the reported Lyapunov exponents

Generated by `{cmd}` on {datetime.date.today().isoformat()} ({elapsed:.0f} s; numpy
{np.__version__}). Do not edit by hand: rerun the command.

The study reports frame-invariant exponents (`lyapunov.singular_value_ftle`, docs/methods.md §3):
the whole-run exponents `lyapunov_exponent` Λ_i = (1/T) ln σ_i(M(T, 0)), and the FTLE time
series `ftle` and predictor features `ftle_at` Λ_i(t*) = (1/t*) ln σ_i(M(t*, 0)), σ_1 ≥ … ≥ σ_9
the singular values of the cumulative tangent propagator. This page measures how many digits
of them are meaningful. (The per-stride `local_exponent` and the windowed FTLE are still
Benettin's, from the frame F; they are not covered here.)

Runs: the first {args.per_class} low-loss (c_f < 4) and high-loss (c_f > 100, finite) networks
among indices 0 … {args.scan - 1} of every (activation, initialisation) of the default protocol
(config.yaml: η = 1e-3, T = 3000 steps, stride s = 5, dt = sη = 0.005). Reference:
`singular_value_ftle` applied to the per-step maps J_n = I − ηH(θ_n), recomputed by the
plain-NumPy reference Hessian from the engine's stored θ_n (dt = η; counts T for the whole run,
15, 100, 500 steps for t* = 0.015, 0.1, 0.5). Every entry below is max |ΔΛ_i| (per unit flow
time) over the runs of the group and over {args.draws} random draws.

## Whole-run exponents Λ_i = (1/T) ln σ_i(M(T, 0))

* **perturb ε**: every J_n replaced by J_n + E_n, E_n random symmetric with
  ‖E_n‖₂ = ε‖J_n‖₂ (two correct float64 implementations of H give J's that differ by ≈ 3e-15,
  so ε = 1e-14 is the round-off conditioning of the quantity itself);
* **stored M rounding**: every entry of every stored float64 stride-5 propagator M_k given a
  random relative error uniform in [−u, u], u = 2^-53 (the rounding of storing the exact M_k
  in float64), against the unperturbed stored data: what no algorithm working from the stored
  M_k can avoid (not part of Δ here: Δ already contains the stride-5 result itself);
* **engine J per step**: `singular_value_ftle` of the engine's own per-step maps
  (`jacobian_stride = 1`, its compiled float64 Hessian) against the NumPy-Hessian reference —
  the actual disagreement of two correct float64 implementations of J;
* **stride-5 float64 / float32**: the study's own computation (`singular_value_ftle` on the
  engine's stride-5 propagators M_k, stored in float64 / float32, dt = 0.005, counts = 600)
  against the per-step reference;
* **float32 − float64**: the two storages against each other.

There is no "other frame" row: the quantity involves no initial frame Q_0, it is
frame-invariant by construction.

"excursion" = yes if some per-step J has an eigenvalue below −1 (η λ_max(H) > 2: the step
overshoots and reflects). "meaningful decimals" = ⌊−log10(2Δ)⌋ with Δ the largest of
"perturb 1e-14", "engine J per step" and "stride-5 float64" over the group (−1: not even the
units digit is meaningful).

{md}

Per-step tangent maps:

{chr(10).join(eig_lines)}

## Early-time FTLE features Λ_i(t*) = (1/t*) ln σ_i(M(t*, 0))

At the prediction times t* = {', '.join(f'{t:g}' for t in TIMES)} (3, 20, 100 strides of the
stored propagators; groups by activation and class only — an excursion is a property of the
whole run):

* **perturb J ε**: the per-step reference recomputed with every J_n perturbed as in the
  whole-run table (ε = 1e-16, 1e-14): the conditioning of Λ_i(t*) as a function of the
  per-step maps;
* **perturb M ε**: every stored float64 stride propagator M_k replaced by M_k + E_k, E_k a
  random Gaussian matrix with ‖E_k‖_F = ε‖M_k‖_F (ε = 1e-16, 1e-15: the size of the rounding of
  the stored numbers and of a float64 QR's backward error), against the unperturbed stored data;
* **stored M rounding**: every entry of every stored M_k given a random relative error in
  [−u, u], u = 2^-53 — the rounding of the stored numbers as it actually is (entrywise: exact
  zeros, e.g. the blocks of dead ReLU units, stay exact, which a normwise E_k does not respect);
* **stride-5 float64**: `singular_value_ftle` of the stored stride-5 propagators (what the
  study computes) against the per-step reference (NumPy J, counts 15, 100, 500 at dt = η).

"excursion by t*": runs with a per-step J eigenvalue below −1 before t*. "meaningful decimals"
= ⌊−log10(2Δ)⌋ with Δ the largest of "perturb J 1e-14", "stored M rounding" and "stride-5
float64" over the group (the worst run); "median run": the same with the median over the runs of
each run's Δ. The normwise "perturb M" rows are shown but not
part of Δ: where they exceed Δ by orders of magnitude (ReLU runs with dead units, Λ_7 … Λ_9 at
t* = 0.5) the generic normwise model is pessimistic for structured M_k, and the actual
stride-5 computation is far more accurate than it.

{md_early}

## Why not Benettin's whole-run means (the former definition)

Until this change `lyapunov_exponent` was Benettin's whole-run mean Σ_n ln R_ii(n)/(Tη) from the
random frame Q_0 = `random_orthogonal(9, seed)`. Measured on the same runs (per-step float64 QR
with the NumPy J; "other frame": {args.draws} other random Q_0; float32/float64: `lyapunov.analyse`
on the stride-5 propagators stored in either):

{md_ben}

{BENETTIN}

## How many digits of each reported exponent are meaningful

Whole-run exponents Λ_1 … Λ_9 (decimals after the point; "none": not even the units digit):

{per_group}

Early FTLE features Λ_1(t*) … Λ_9(t*), worst run (median run):

{per_group_early}

Sign of Λ_1, per run: positive / negative / neutral (0 to within 1e-10: a dead ReLU unit's
identity block) / **undetermined** (|Λ_1| ≤ that run's own Δ_1, Δ as in the "meaningful
decimals" rows):

{sign_lines(groups, early_groups)}

{CONCLUSION}
"""


BENETTIN = """\
Over T = 3 time units Benettin's whole-run means still carry the initial frame: another random
Q_0 moves Λ_1 by up to 0.2–1.6 (the largest per class) and some Λ_i by up to 1.6–2.6 per unit
time, in every class — also in the contracting tanh and all ReLU runs, where a 1e-14
perturbation of every J moves them by < 1e-10. That is O(1), more than any round-off effect
except in the tanh excursion runs, and Benettin's Λ_1 differs from the frame-invariant one by up
to 1.2 (with the opposite sign in 3 of 6 high-loss tanh runs). Float32 storage flips the sign
of Benettin's Λ_1 in every tanh run with an excursion (shifts up to 4.2 and 5.5); it does the
same to the frame-invariant exponents (float32 − float64 up to 5.7 in Λ_1, first table), so
float32 stays excluded under either definition."""

CONCLUSION = """\
Reading (numbers quoted for the default invocation; the conditioning is a property of each run
— rerun for other runs):

* **Whole run, tanh runs without an excursion** (5 of the 6 low-loss runs here): Λ_1 … Λ_8 to
  11–12 decimals; Λ_9 (≈ −1200) to 1 decimal only. That limit is the stride-5 storage, not the
  dynamics: the per-step maps determine Λ_9 to 2e-11, but single M_k reach condition numbers
  ~1e14 when a per-step J eigenvalue passes near 0 (|eig J| down to 6e-5), and merely rounding
  the stored M_k moves Λ_9 by 0.007 (stride-5 vs per-step: 0.012).
* **Whole run, tanh runs with an excursion past η λ_max(H) = 2** (all 6 high-loss runs, and the
  low-loss run normal 3): **no decimal of any whole-run exponent is meaningful**. Perturbing
  every J below its last bit (1e-16) moves Λ_1 by up to 0.13 and Λ_5 … Λ_9 by up to 1.25; at
  1e-14 Λ_1 moves by up to 1.1 (median run 0.53) and the others by up to 2.1; the engine's own
  float64 J (≈ 3e-15 from NumPy's) moves Λ_1 by 0.12 and Λ_8, Λ_9 by 1.5. So Λ_1 is known to
  about ±0.1–1 per unit time, Λ_2 … Λ_4 to ±1, Λ_5 … Λ_9 (tens to hundreds) to ±1–2, i.e. to
  2–3 significant digits. **The sign of Λ_1 is not determined in 4 of the 6 high-loss tanh
  runs** (Λ_1 between −0.02 and +0.39); it is in normal 1 (+0.171, Δ = 0.010) and normal 8
  (−0.81, Δ = 0.05). "High loss ↔ positive whole-run Λ_1" cannot be decided run by run. The
  low-loss excursion run keeps the units digit of Λ_1 = −3.44 (Δ = 0.08). The frame-invariant
  definition does not change this conditioning (the Benettin table above had the same
  magnitudes): it lives in the tangent dynamics of these trajectories — stretching past
  |eig J| = 2.76, then contracting — not in the frame.
* **Whole run, ReLU**: high-loss runs (dead units included) are well conditioned, ≥ 10 decimals
  of every exponent (Λ_9 of the excursion group: 7). A hidden unit dead from the start
  contributes four exponents that are exactly 0 (an identity block; Λ_1 = 0 in 3 of the 6
  high-loss runs); the two high-loss runs with Λ_1 > 0 (+0.29, +0.12) are positive to 12
  decimals. Low-loss runs: Λ_1, Λ_2 to 11–12 decimals, Λ_3 … Λ_6 to
  1–2, Λ_7 … Λ_9 (hundreds to −1300) to 0 (±0.16). These runs converge onto the teacher, whose
  second hidden unit has z = 0 (up to round-off) on the grid sample (x1, x2) = (−1/3, 1/3); the
  ReLU kink there makes J jump (by ≈ 0.01) with the last bit of z, so the engine's J and the
  NumPy J disagree at converged steps (the stride-5 analysis reproduces the engine's per-step J
  exactly; the disagreement is between the two Hessians at the kink, not in the analysis).
* **Early FTLE features, t* = 0.015** (the headline prediction time): every Λ_i(t*) of every run
  here is determined to 10–11 decimals (ReLU Λ_9: 8). Three stride products, no excursion yet.
* **t* = 0.1**: Λ_1 … Λ_6 keep 8–11 decimals in every run. In the tanh runs that have had an
  excursion by then (all 6 high-loss, and low-loss normal 3) Λ_8(0.1) and Λ_9(0.1) (≈ −450,
  −1400) are **not determined at all**: they sit at the float64 noise floor of the product —
  rounding the stored M_k moves them by up to 19 (low-loss normal 3) and 44 (high-loss runs),
  the stride-5 computation differs from the per-step one by up to 4 and 13, a 1e-14
  perturbation of J moves them by up to 47 — and Λ_7(0.1) of high-loss runs is known to
  ±1.2 in the worst run (3 decimals in the median run). ReLU: ≥ 9 decimals (Λ_9 of high-loss
  runs: 5).
* **t* = 0.5**: tanh runs without an excursion keep 11–12 decimals (Λ_9: 1, the stride limit
  above). In tanh runs with an excursion **no decimal of any Λ_i(0.5) is meaningful**: a 1e-16
  perturbation of J moves Λ_1(0.5) by up to 0.24, rounding the stored M_k by up to 0.03, the
  stride-5 computation differs from per-step by up to 0.08, and a 1e-14 perturbation of J moves
  it by up to 5.1 (Λ_1(0.5) itself is 2.7–5.0 in the high-loss runs). The sign of Λ_1(0.5) is
  undetermined in 2 of 6 high-loss tanh runs and in the low-loss excursion run (Λ_1(0.5) =
  −0.03); in the other 4 high-loss runs it is positive. ReLU: ≥ 10 decimals, except Λ_7 … Λ_9
  of high-loss runs with dead units (2–3 decimals in the worst run, set by the 1e-14 random J
  perturbation, which — like the normwise M rows — does not keep the dead units' exact zero
  blocks; the entrywise rounding moves them by < 4e-7 and the actual stride-5 computation agrees
  with the per-step one to 2e-7).
* **Normwise vs entrywise rounding**: a normwise random E_k (‖E_k‖_F = 1e-16‖M_k‖_F) is not
  the rounding of the stored data where M_k has exact zero blocks: for high-loss ReLU runs at
  t* = 0.5 it moves Λ_7 … Λ_9 by 0.02–0.06, entrywise rounding by < 4e-7. For tanh the two
  models agree in magnitude.
* **For the predictors**: Λ_i(0.015) are exact for all practical purposes. At t* ≥ 0.1 the
  smallest exponents of tanh runs with an excursion, and at t* = 0.5 all their exponents, carry
  round-off noise of O(1–50) per unit time; a classifier using them partly scores that noise
  (it is reproducible for a fixed code path, but a different correct float64 implementation
  gives other values).
* **float32 storage** is far outside all of this: it moves the frame-invariant Λ_1 of tanh
  runs with an excursion by 4.4–5.7 per unit time and Λ_9 of well-behaved tanh runs by up to
  16. It must not be used.
"""


if __name__ == "__main__":
    main()

"""Tests of weightdyn.figures on synthetic gathered (G) and prediction (P) datasets.

``python tests/test_figures.py [DIR]`` renders every figure from the synthetic data to DIR
(default /tmp/figcheck) for a visual check.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from weightdyn import figures  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")

ETA = 1e-3
STEPS = 3000
LOW, HIGH = 4.0, 100.0
D = 9
PAIRS = [f"{i}-{j}" for i in range(1, D + 1) for j in range(i + 1, D + 1)]
LAGS = [5, 10, 20, 50, 100]
PREDICTION_TIMES = [0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.2, 0.5]
TIME = np.round(np.geomspace(0.005, 3.0, 38), 6)
LOSS_STEPS = np.arange(0, STEPS + 1, 50)
QUANTILES = [0.25, 0.5, 0.75]
CLV_LAG = 20  # steps: CLV feature sets are available at t* + CLV_LAG * ETA
FEATURES = [f"ftle_{i}" for i in range(1, D + 1)] + [
    "ftle_all", "clv_angles", "clv_growth", "clv_growth_5_8", "combined"]
FAMILY = ["FTLE"] * (D + 1) + ["CLV"] * 3 + ["combined"]

# class spectra of the whole-run exponents (1/t), descending
SPECTRUM = {
    0: -np.array([0.02, 0.3, 1.0, 3.0, 8.0, 20.0, 60.0, 150.0, 400.0]),
    1: np.array([3.0, -0.5, -1.5, -4.0, -10.0, -25.0, -70.0, -160.0, -420.0]),
    2: np.array([45.0, 6.0, -0.5, -2.0, -6.0, -15.0, -50.0, -120.0, -380.0]),
}
COMBINATIONS = [("tanh", "uniform"), ("tanh", "normal"), ("relu", "uniform"), ("relu", "normal")]
EDGE = ("relu", "normal")  # empty high class and all-NaN CLV quantities


def make_gathered(activation="tanh", initialization="uniform", n=240, seed=0,
                  empty_high=False, nan_clv=False, n_samples=6):
    """A synthetic gathered dataset with the lead's format and class-dependent values."""
    rng = np.random.default_rng(seed)
    p = [0.7, 0.3, 0.0] if empty_high else [0.5, 0.2, 0.3]
    outcome = rng.choice(3, size=n, p=p).astype(np.int8)
    final_loss = np.where(outcome == 0, 10 ** rng.uniform(-1.5, 0.55, n),
                          np.where(outcome == 1, 10 ** rng.uniform(0.65, 1.95, n),
                                   10 ** rng.uniform(2.05, 3.5, n)))
    diverged = ((outcome == 2) & (rng.random(n) < 0.15)).astype(np.int8)
    final_loss[diverged == 1] = np.inf

    spectrum = np.stack([SPECTRUM[int(o)] for o in outcome])  # (network, exponent)
    lyap = spectrum * rng.lognormal(0.0, 0.25, spectrum.shape)
    lyap = -np.sort(-lyap, axis=1)
    lyap[diverged == 1] = np.nan

    pt = np.asarray(PREDICTION_TIMES)
    decay = np.exp(-pt / 0.3)[None, :, None]
    ftle_at = (lyap[:, None, :] * (1 + 0.5 * decay)
               + rng.normal(0, 1, (n, pt.size, D)) * (0.1 * np.abs(lyap[:, None, :]) + 0.2))

    def class_quantiles(series_of_class):
        """(class_name, quantile, time, ...) from a function class → (median, spread)."""
        out = np.full((2, 3) + series_of_class(0)[0].shape, np.nan)
        for c, code in enumerate((0, 2)):
            if not (outcome == code).any():
                continue
            med, spread = series_of_class(code)
            out[c] = np.stack([med - spread, med, med + spread])
        return out

    def ftle_series(code):
        final = SPECTRUM[code][None, :]
        med = final * (1 + 0.5 * np.exp(-TIME / 0.3))[:, None]
        spread = (0.15 * np.abs(final) + 0.3) * (1 + 1.5 * np.exp(-TIME / 0.05))[:, None]
        return med, spread

    def angle_series(code):
        med = np.empty((TIME.size, len(PAIRS)))
        for k, pair in enumerate(PAIRS):
            i, j = map(int, pair.split("-"))
            stable = 5 <= i and j <= 8
            if code == 0:
                med[:, k] = 0.9 - 0.03 * (j - i)
            else:
                end = 0.04 if stable else 0.4
                med[:, k] = end + (0.8 - end) * np.exp(-TIME / (0.1 + 0.02 * k))
        spread = 0.35 * med
        return med, spread

    ftle_q = class_quantiles(ftle_series)
    angle_q = np.clip(class_quantiles(angle_series), 1e-4, np.pi / 2)

    stable_pair = np.array([5 <= int(p.split("-")[0]) and int(p.split("-")[1]) <= 8
                            for p in PAIRS])
    tangency = np.where((outcome == 2)[:, None],
                        rng.beta(2, 6, (n, len(PAIRS))) * np.where(stable_pair, 1.5, 0.5),
                        rng.beta(0.5, 20, (n, len(PAIRS))))
    tangency[diverged == 1] = np.nan
    base = np.array([0.05, 0.08, 0.1, 0.15, 0.5, 0.6, 0.7, 0.5, 0.02])
    lag_error = (base[None, None, None, :]
                 * np.exp(-np.asarray(LAGS) / 30.0)[None, :, None, None]
                 * rng.lognormal(0, 0.5, (n, len(LAGS), pt.size, D)))
    lag_error[diverged == 1] = np.nan
    if nan_clv:
        tangency[:] = np.nan
        lag_error[:] = np.nan
        angle_q[:] = np.nan

    samples = []
    for code in (0, 1, 2):
        members = np.flatnonzero(outcome == code)
        samples.extend(members[: n_samples // 3].tolist())
    diverged_members = np.flatnonzero(diverged == 1)
    if diverged_members.size and not np.isin(diverged_members, samples).any():
        samples[-1] = int(diverged_members[0])
    t_curve = LOSS_STEPS * ETA
    curves = []
    for net in samples:
        end = final_loss[net] if np.isfinite(final_loss[net]) else 300.0
        c0 = 10 ** rng.uniform(2.5, 3.5)
        curve = end + (c0 - end) * np.exp(-t_curve / 0.15) * (1 + 0.1 * np.sin(20 * t_curve))
        if diverged[net]:
            curve = curve * np.exp(np.clip(t_curve - 1.5, 0, None) * 8)
            curve[t_curve > 2.0] = np.nan
        curves.append(curve)

    return xr.Dataset(
        {
            "final_loss": ("network", final_loss),
            "outcome": ("network", outcome),
            "diverged": ("network", diverged),
            "loss_curve": (("sample", "step"), np.array(curves).reshape(len(samples), -1)),
            "sample_network": ("sample", np.array(samples, dtype=int)),
            "sample_outcome": ("sample", outcome[samples].astype(np.int8)),
            "ftle_at": (("network", "prediction_time", "exponent"), ftle_at),
            "lyapunov_exponent": (("network", "exponent"), lyap),
            "clv_tangency_fraction": (("network", "pair"), tangency),
            "clv_lag_error": (("network", "lag", "prediction_time", "exponent"), lag_error),
            "lagged_available_time": (("lag", "prediction_time"),
                                      pt[None, :] + np.asarray(LAGS)[:, None] * ETA),
            "ftle_quantiles": (("class_name", "quantile", "time", "exponent"), ftle_q),
            "clv_angle_quantiles": (("class_name", "quantile", "time", "pair"), angle_q),
        },
        coords={"network": np.arange(n), "exponent": np.arange(1, D + 1), "pair": PAIRS,
                "lag": LAGS, "prediction_time": PREDICTION_TIMES, "time": TIME,
                "step": LOSS_STEPS, "sample": np.arange(len(samples)),
                "class_name": ["low", "high"], "quantile": QUANTILES},
        attrs={"activation": activation, "initialization": initialization, "low": LOW,
               "high": HIGH, "learning_rate": ETA, "steps": STEPS, "tangency_threshold": 0.1},
    )


def make_prediction(activation="tanh", initialization="uniform", seed=0, empty_high=False,
                    nan_clv=False):
    """A synthetic prediction dataset: AUC rising with t*, binormal ROC curves, early stopping."""
    rng = np.random.default_rng(seed)
    pt = np.asarray(PREDICTION_TIMES)
    fpr = np.linspace(0, 1, 101)
    thresholds = np.linspace(0, 1, 101)
    # feature quality per event (0 = useless, 1 = best)
    quality = {"high": np.array([0.95, 0.4, 0.3, 0.2, 0.2, 0.25, 0.3, 0.3, 0.1, 0.9,
                                 0.7, 0.75, 0.6, 0.92]),
               "low": np.array([0.5, 0.3, 0.2, 0.2, 0.6, 0.65, 0.7, 0.6, 0.1, 0.7,
                                0.6, 0.8, 0.85, 0.8])}
    growth = 1 - np.exp(-pt / 0.03)
    auc_mean = np.empty((2, len(FEATURES), pt.size))
    for e, event in enumerate(("low", "high")):
        auc_mean[e] = 0.5 + 0.45 * quality[event][:, None] * (0.5 + 0.5 * growth)[None, :]
    auc_mean += rng.normal(0, 0.01, auc_mean.shape)
    auc_mean = np.clip(auc_mean, 0.3, 1.0)
    auc_std = rng.uniform(0.01, 0.04, auc_mean.shape)
    family = np.array(FAMILY)
    auc_mean[:, family != "FTLE", 0] = np.nan  # lagged sets not computable at the first t*
    if empty_high:
        auc_mean[1] = np.nan
    if nan_clv:
        auc_mean[:, family != "FTLE", :] = np.nan
    auc_std[~np.isfinite(auc_mean)] = np.nan
    dprime = np.sqrt(2) * norm.ppf(np.clip(auc_mean, 1e-6, 1 - 1e-6))
    roc = norm.cdf(norm.ppf(np.clip(fpr, 1e-9, 1 - 1e-9))[None, None, None, :]
                   + dprime[..., None])
    roc[..., 0], roc[..., -1] = 0.0, 1.0
    roc[~np.isfinite(auc_mean)] = np.nan
    available = np.where((family == "FTLE")[:, None], pt[None, :],
                         pt[None, :] + CLV_LAG * ETA)

    best_high = np.nanmax(np.where((family == "FTLE")[:, None], auc_mean[1], np.nan), axis=0) \
        if not empty_high else np.full(pt.size, np.nan)
    sharp = 1 + 12 * (np.nan_to_num(best_high, nan=0.5) - 0.5)  # >1: good separation
    th = thresholds[None, :]
    caught = (1 - th) ** (1 / sharp[:, None])
    lost = (1 - th) ** sharp[:, None]
    middle = 1 - th
    stopped = 0.3 * caught + 0.5 * lost + 0.2 * middle
    saved = stopped * (1 - pt[:, None] / (STEPS * ETA))
    if empty_high:
        caught[:], lost[:], saved[:] = np.nan, np.nan, np.nan
    stop_feature = ["" if empty_high else "ftle_1" if t < 0.05 else "combined" for t in pt]
    return xr.Dataset(
        {
            "family": ("feature", family),
            "auc_mean": (("event", "feature", "prediction_time"), auc_mean),
            "auc_std": (("event", "feature", "prediction_time"), auc_std),
            "roc_tpr": (("event", "feature", "prediction_time", "fpr"), roc),
            "available_time": (("feature", "prediction_time"), available),
            "stop_compute_saved": (("prediction_time", "threshold"), saved),
            "stop_low_lost": (("prediction_time", "threshold"), lost),
            "stop_high_caught": (("prediction_time", "threshold"), caught),
            "stop_feature": ("prediction_time", np.array(stop_feature, dtype=object)),
        },
        coords={"event": ["low", "high"], "feature": FEATURES, "prediction_time": PREDICTION_TIMES,
                "fpr": fpr, "threshold": thresholds},
        attrs={"activation": activation, "initialization": initialization,
               "headline_time": 0.015, "folds": 5},
    )


def all_gathered(combinations=COMBINATIONS, n=240):
    return {key: make_gathered(*key, n=n, seed=s, empty_high=key == EDGE, nan_clv=key == EDGE)
            for s, key in enumerate(combinations)}


def all_predictions(combinations=COMBINATIONS):
    return {key: make_prediction(*key, seed=s, empty_high=key == EDGE, nan_clv=key == EDGE)
            for s, key in enumerate(combinations)}


@pytest.fixture(scope="module")
def gathered():
    return all_gathered()


@pytest.fixture(scope="module")
def predictions():
    return all_predictions()


def _grid_axes(fig):
    """Axes laid out on a grid (colour bars excluded)."""
    return [ax for ax in fig.axes if ax.get_subplotspec() is not None]


def _check_labels(fig, xlabel, ylabel):
    """The lowest panel of every column has an x label containing ``xlabel``, the leftmost
    of every row a y label containing ``ylabel`` (a string or a list per row, top first)."""
    axes = _grid_axes(fig)
    columns, rows = {}, {}
    for ax in axes:
        spec = ax.get_subplotspec()
        columns.setdefault(spec.colspan.start, []).append(ax)
        rows.setdefault(spec.rowspan.start, []).append(ax)
    for members in columns.values():
        lowest = max(members, key=lambda ax: ax.get_subplotspec().rowspan.start)
        assert xlabel in lowest.get_xlabel(), (lowest.get_xlabel(), xlabel)
    for r, (_, members) in enumerate(sorted(rows.items())):
        leftmost = min(members, key=lambda ax: ax.get_subplotspec().colspan.start)
        expected = ylabel[r] if isinstance(ylabel, list) else ylabel
        assert expected in leftmost.get_ylabel(), (leftmost.get_ylabel(), expected)


def _render(fig):
    fig.canvas.draw()  # runs the layout engine: warnings become errors here
    width, height = fig.get_size_inches()
    assert 6.5 <= width <= 7.5 and height <= 10


def _texts(fig):
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out.extend(t.get_text() for t in ax.texts)
        if ax.get_legend() is not None:
            out.extend(t.get_text() for t in ax.get_legend().get_texts())
    for legend in fig.legends:
        out.extend(t.get_text() for t in legend.get_texts())
    return out


def test_class_colours_are_distinct_and_valid():
    from matplotlib.colors import to_rgb

    assert set(figures.CLASS_COLOURS) == {"low", "middle", "high"}
    rgbs = {to_rgb(c) for c in figures.CLASS_COLOURS.values()}
    assert len(rgbs) == 3


def test_final_loss_distribution(gathered):
    fig = figures.final_loss_distribution(gathered)
    assert len(fig.axes) == 4
    _check_labels(fig, "final loss", "networks")
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    _render(fig)
    G = gathered[("tanh", "uniform")]
    frac_low = float((G.outcome == 0).mean())
    assert any(f"low {frac_low:.1%}" in text for text in _texts(fig))
    assert any("diverged" in text for text in _texts(fig))


def test_loss_curves(gathered):
    fig = figures.loss_curves(gathered)
    assert len(fig.axes) == 4
    _check_labels(fig, "flow time", "training loss")
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    # the curve is plotted against flow time t = step * eta (ends at t = 3)
    xmax = max(np.nanmax(line.get_xdata()) for ax in fig.axes for line in ax.get_lines()
               if len(line.get_xdata()) > 2)
    assert xmax == pytest.approx(STEPS * ETA)
    _render(fig)


def test_ftle_spectra_default_and_subset(gathered):
    fig = figures.ftle_spectra(gathered)
    assert len(fig.axes) == D * 4
    _check_labels(fig, "flow time", [f"Lambda_{{{i}}}" for i in range(1, D + 1)])
    assert all("(1/t)" in ax.get_ylabel() for ax in fig.axes[::4])
    fig = figures.ftle_spectra(gathered, exponents=[1, 5, 8])
    assert len(fig.axes) == 3 * 4
    assert any("no high class" in text for text in _texts(fig))  # the edge combination
    _render(fig)


def test_exponents_vs_final_loss(gathered):
    fig = figures.exponents_vs_final_loss(gathered)
    assert len(fig.axes) == 5 * 4  # Λ_1, Λ_5 … Λ_8 for each combination
    _check_labels(fig, "final loss", [f"Lambda_{{{i}}}" for i in (1, 5, 6, 7, 8)])
    _render(fig)
    assert len(figures.exponents_vs_final_loss(gathered, exponents=[1]).axes) == 4


def test_clv_angles(gathered):
    fig = figures.clv_angles(gathered)
    assert len(_grid_axes(fig)) == 2 * 4
    assert len(fig.axes) == 2 * 4 + 1  # plus the colour bar
    _check_labels(fig, "", ["CLV $i$", "angle"])
    assert all("flow time" in ax.get_xlabel() for ax in _grid_axes(fig)[4:])
    texts = _texts(fig)
    assert any("no CLV data" in text for text in texts)
    assert any("no CLV angles" in text for text in texts)
    _render(fig)
    # tangency matrix: upper triangle from low networks, lower from high ones
    G = gathered[("tanh", "uniform")]
    matrix, d = figures._tangency_matrix(G)
    low_mean = float(G.clv_tangency_fraction.sel(pair="5-6").where(G.outcome == 0).mean())
    high_mean = float(G.clv_tangency_fraction.sel(pair="5-6").where(G.outcome == 2).mean())
    assert matrix[4, 5] == pytest.approx(low_mean)
    assert matrix[5, 4] == pytest.approx(high_mean)
    assert np.isnan(np.diag(matrix)).all()


def test_roc_curves_pick_best_set(predictions):
    fig = figures.roc_curves(predictions, t=0.015)
    assert len(fig.axes) == 4
    _check_labels(fig, "false-positive rate", "true-positive rate")
    _render(fig)
    P = predictions[("tanh", "uniform")]
    assert figures.best_feature(P, "high", "FTLE", 0.015) == "ftle_1"
    auc = P.auc_mean.sel(event="high", feature="ftle_1", prediction_time=0.015)
    labels = fig.axes[0].get_legend().get_texts()
    assert any(f"ftle_1: {float(auc):.2f}" in t.get_text() for t in labels)
    # the lagged CLV set says when it is available
    assert any("@0.035" in t.get_text() for t in labels)
    # edge combination: nothing computable for E_high nor for CLV sets
    edge = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]
    assert sum("not computable" in text for text in edge) == 3
    with pytest.raises(ValueError, match="prediction_time"):
        figures.roc_curves(predictions, t=0.0123)


def test_auc_vs_time(predictions):
    fig = figures.auc_vs_time(predictions)
    assert len(fig.axes) == 4
    _check_labels(fig, "prediction time", "AUC")
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    _render(fig)
    # CLV points sit at the time the lagged predictor is available
    P = predictions[("tanh", "uniform")]
    times, avail, mean, std, names = figures.best_auc_series(P, "low", "CLV")
    assert names[0] is None and np.isnan(mean[0])
    np.testing.assert_allclose(avail[1:], times[1:] + CLV_LAG * ETA)
    xs = [np.asarray(line.get_xdata()) for line in fig.axes[0].get_lines()]
    assert any(x.size == len(times) - 1 and np.allclose(x, avail[1:]) for x in xs)
    fig = figures.auc_vs_time(predictions, at="prediction")
    xs = [np.asarray(line.get_xdata()) for line in fig.axes[0].get_lines()]
    assert any(x.size == len(times) - 1 and np.allclose(x, times[1:]) for x in xs)
    _render(fig)


def test_lag_accuracy(gathered):
    fig = figures.lag_accuracy(gathered, t=0.015)
    assert len(fig.axes) == 4
    _check_labels(fig, "lag", "angle")
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.axes[0].get_lines()) == D
    assert any("no lagged CLV estimate" in text for text in _texts(fig))
    _render(fig)


def test_early_stopping(predictions):
    fig = figures.early_stopping(predictions)
    assert len(fig.axes) == 4
    _check_labels(fig, "runs stopped", "compute saved")
    assert any("not computable" in text for text in _texts(fig))
    _render(fig)


def test_partial_grid_and_all_degenerate():
    """Three combinations leave one cell empty; a study with no high class and no CLV data
    still gives every figure."""
    keys = COMBINATIONS[:3]
    G = all_gathered(keys, n=60)
    P = all_predictions(keys)
    for func, data in ((figures.final_loss_distribution, G), (figures.loss_curves, G),
                       (figures.roc_curves, P), (figures.auc_vs_time, P),
                       (figures.lag_accuracy, G), (figures.early_stopping, P)):
        fig = func(data)
        assert len(fig.axes) == 3
        _render(fig)
    degenerate = {key: make_gathered(*key, n=40, seed=1, empty_high=True, nan_clv=True)
                  for key in COMBINATIONS[:2]}
    degenerate_p = {key: make_prediction(*key, empty_high=True, nan_clv=True)
                    for key in COMBINATIONS[:2]}
    for name, (func, kind) in figures.FIGURES.items():
        fig = func(degenerate if kind == "gathered" else degenerate_p)
        _render(fig)


def test_save_is_deterministic(tmp_path, gathered):
    fig = figures.final_loss_distribution(gathered)
    png, pdf = figures.save(fig, tmp_path / "a" / "fig1")
    assert png == tmp_path / "a" / "fig1.png" and pdf == tmp_path / "a" / "fig1.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # same figure saved again, and a freshly built one: byte-identical
    png2, pdf2 = figures.save(fig, tmp_path / "b" / "fig1.png")
    png3, pdf3 = figures.save(figures.final_loss_distribution(gathered), tmp_path / "c" / "fig1")
    for a, b in ((png, png2), (pdf, pdf2), (png, png3), (pdf, pdf3)):
        assert a.read_bytes() == b.read_bytes()
    assert b"CreationDate" not in pdf.read_bytes()


def test_figure_registry_covers_all_nine():
    assert len(figures.FIGURES) == 9
    stems = sorted(figures.FIGURES)
    assert [s.split("_")[0] for s in stems] == [f"fig{k}" for k in range(1, 10)]
    report = Path(__file__).resolve().parents[1] / "workflow" / "report"
    for stem in stems:
        assert (report / f"{stem}.rst").is_file(), stem


def test_bad_input_raises():
    with pytest.raises(ValueError):
        figures.final_loss_distribution({})
    with pytest.raises(ValueError):
        figures.auc_vs_time(all_predictions(COMBINATIONS[:1]), at="sometime")


def render_all(out_dir="/tmp/figcheck"):
    """Render every figure from the synthetic data to ``out_dir`` (for looking at them)."""
    G, P = all_gathered(n=800), all_predictions()
    for stem, (func, kind) in figures.FIGURES.items():
        figures.save(func(G if kind == "gathered" else P), Path(out_dir) / stem)
    return sorted(Path(out_dir).glob("*.png"))


if __name__ == "__main__":
    for path in render_all(*sys.argv[1:2]):
        print(path)

"""Tests of weightdyn.figures on synthetic gathered (G) and prediction (P) datasets.

``python tests/test_figures.py [DIR]`` renders every figure from the synthetic data to DIR
(default /tmp/figcheck) for a visual check.
"""

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_prediction import synthetic_gathered  # noqa: E402
from weightdyn import figures  # noqa: E402
from weightdyn.figures.stability import _tangency_matrix  # noqa: E402
from weightdyn.outcomes import CLASS_LABELS, HIGH, LOW, MIDDLE  # noqa: E402
from weightdyn.prediction import CLV_CONVERGENCE_ANGLE, predict_combination  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error")

ETA = 1e-3
STEPS = 3000
LOW_LOSS, HIGH_LOSS = 4.0, 100.0  # class thresholds of the final loss
D = 9
PAIRS = [f"{i}-{j}" for i in range(1, D + 1) for j in range(i + 1, D + 1)]
LAGS = [5, 10, 20, 50, 100]
PREDICTION_TIMES = [0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.2, 0.5]
HEADLINE_TIME = 0.015  # prediction.headline_time of prediction_cfg()
OTHER_HEADLINE_TIME = 0.025  # another stored prediction time, for the headline-time test
TIME = np.round(np.geomspace(0.005, 3.0, 38), 6)
LOSS_STEPS = np.arange(0, STEPS + 1, 50)
QUANTILES = [0.25, 0.5, 0.75]
CLV_LAG = 20  # steps: CLV feature sets are available at t* + CLV_LAG * ETA
FEATURES = [f"ftle_{i}" for i in range(1, D + 1)] + [
    "ftle_all", "clv_angles", "clv_growth", "clv_growth_5_8", "combined"]
FAMILY = ["FTLE"] * (D + 1) + ["CLV"] * 3 + ["combined"]

# class spectra of the whole-run exponents (1/t), descending
SPECTRUM = {
    LOW: -np.array([0.02, 0.3, 1.0, 3.0, 8.0, 20.0, 60.0, 150.0, 400.0]),
    MIDDLE: np.array([3.0, -0.5, -1.5, -4.0, -10.0, -25.0, -70.0, -160.0, -420.0]),
    HIGH: np.array([45.0, 6.0, -0.5, -2.0, -6.0, -15.0, -50.0, -120.0, -380.0]),
}
COMBINATIONS = [("tanh", "uniform"), ("tanh", "normal"), ("relu", "uniform"), ("relu", "normal")]
EDGE = ("relu", "normal")  # empty high class and all-NaN CLV quantities


def make_gathered(activation="tanh", initialization="uniform", n=240, seed=0,
                  empty_high=False, nan_clv=False, n_samples=6):
    """A synthetic gathered dataset with the lead's format and class-dependent values."""
    rng = np.random.default_rng(seed)
    p = [0.7, 0.3, 0.0] if empty_high else [0.5, 0.2, 0.3]
    outcome = rng.choice([LOW, MIDDLE, HIGH], size=n, p=p).astype(np.int8)
    final_loss = np.where(outcome == LOW, 10 ** rng.uniform(-1.5, 0.55, n),
                          np.where(outcome == MIDDLE, 10 ** rng.uniform(0.65, 1.95, n),
                                   10 ** rng.uniform(2.05, 3.5, n)))
    diverged = ((outcome == HIGH) & (rng.random(n) < 0.15)).astype(np.int8)
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
        for c, code in enumerate((LOW, HIGH)):
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
            if code == LOW:
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
    tangency = np.where((outcome == HIGH)[:, None],
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

    # Hessian eigenvalues at the loss-curve steps: the high class sharpens towards η·λ_max ≈ 2
    ramp = 1 - np.exp(-LOSS_STEPS * ETA / 0.3)[None, :]
    lam_max_end = (np.where(outcome == HIGH, 1.8, 0.05)[:, None] / ETA
                   * rng.lognormal(0, 0.3, (n, 1)))
    hessian_max = 100.0 + (lam_max_end - 100.0) * ramp
    hessian_min = np.where(outcome == LOW, rng.uniform(-0.5, 5, n),
                           -(10 ** rng.uniform(-3, 1.6, n)))[:, None] * ramp
    hessian_max[diverged == 1] = hessian_min[diverged == 1] = np.nan

    samples = []
    for code in (LOW, MIDDLE, HIGH):
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
            "hessian_max": (("network", "step"), hessian_max),
            "hessian_min": (("network", "step"), hessian_min),
            "final_hessian_max": ("network", hessian_max[:, -1]),
            "final_hessian_min": ("network", hessian_min[:, -1]),
        },
        coords={"network": np.arange(n), "exponent": np.arange(1, D + 1), "pair": PAIRS,
                "t": ("step", np.round(LOSS_STEPS * ETA, 12)),
                "lag": LAGS, "prediction_time": PREDICTION_TIMES, "time": TIME,
                "step": LOSS_STEPS, "sample": np.arange(len(samples)),
                "class_name": ["low", "high"], "quantile": QUANTILES},
        attrs={"activation": activation, "initialization": initialization, "low": LOW_LOSS,
               "high": HIGH_LOSS, "learning_rate": ETA, "steps": STEPS, "tangency_threshold": 0.1},
    )


def prediction_cfg(repeats=1):
    return {"prediction": {"folds": 5, "repeats": repeats, "cv_seed": 0, "clv_lag": CLV_LAG,
                           "clv_vectors": [5, 6, 7, 8], "min_middle_fraction": 0.01,
                           "headline_time": HEADLINE_TIME},
            "classes": {"low": LOW_LOSS, "high": HIGH_LOSS},
            "training": {"learning_rate": ETA, "steps": STEPS}}


@functools.lru_cache(maxsize=None)
def make_prediction(activation="tanh", initialization="uniform", seed=0, empty_high=False,
                    nan_clv=False, n_middle=None):
    """A real prediction dataset: weightdyn.prediction on a synthetic gathered dataset
    (tests/test_prediction.py); ``empty_high``: no failed run (nothing computable for E_high);
    ``nan_clv``: no CLV variables; ``n_middle`` = 1 omits E_low."""
    G = synthetic_gathered(n=250, times=tuple(PREDICTION_TIMES[:4]), lags=(CLV_LAG,), seed=seed,
                           n_middle=n_middle, n_diverged=0 if empty_high else 5,
                           fail_fraction=0.0 if empty_high else 0.3, clv=not nan_clv,
                           activation=activation, initialization=initialization)
    P, _ = predict_combination(G, prediction_cfg())
    return P


def all_gathered(combinations=COMBINATIONS, n=240):
    """Gathered datasets as the figure script reads them: only figures.GATHERED_VARIABLES."""
    return {key: make_gathered(*key, n=n, seed=s, empty_high=key == EDGE,
                               nan_clv=key == EDGE)[list(figures.GATHERED_VARIABLES)]
            for s, key in enumerate(combinations)}


def all_predictions(combinations=COMBINATIONS):
    """E_low omitted for ("tanh", "normal") (one middle-class run)."""
    return {key: make_prediction(*key, seed=s, empty_high=key == EDGE, nan_clv=key == EDGE,
                                 n_middle=1 if key == ("tanh", "normal") else None)
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

    assert tuple(figures.CLASS_COLOURS) == CLASS_LABELS
    rgbs = {to_rgb(c) for c in figures.CLASS_COLOURS.values()}
    assert len(rgbs) == 3


def test_final_loss_distribution(gathered):
    fig = figures.final_loss_distribution(gathered)
    assert len(fig.axes) == 4
    _check_labels(fig, "final loss", "networks")
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    _render(fig)
    G = gathered[("tanh", "uniform")]
    frac_low = float((G.outcome == LOW).mean())
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
    matrix, d = _tangency_matrix(G)
    low_mean = float(G.clv_tangency_fraction.sel(pair="5-6").where(G.outcome == LOW).mean())
    high_mean = float(G.clv_tangency_fraction.sel(pair="5-6").where(G.outcome == HIGH).mean())
    assert matrix[4, 5] == pytest.approx(low_mean)
    assert matrix[5, 4] == pytest.approx(high_mean)
    assert np.isnan(np.diag(matrix)).all()
    # the angle panel names its pairs: one colour per pair, named in the legend
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t for t in legend if t.startswith("$")] == [
        r"$\theta_{" + f"{i},{j}" + "}$" for i in range(5, 9) for j in range(i + 1, 9)]
    fig = figures.clv_angles(gathered, vectors=(1, 2, 3))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t for t in legend if t.startswith("$")] == [
        r"$\theta_{1,2}$", r"$\theta_{1,3}$", r"$\theta_{2,3}$"]
    assert len({figures.pair_colour(p) for p in ("5-6", "5-7", "5-8", "6-7", "6-8", "7-8")}) == 6


def _panel(fig, title):
    return next(ax for ax in fig.axes if ax.get_title() == title)


def test_roc_curves_show_nested_best_per_family(predictions):
    fig = figures.roc_curves(predictions)
    # rows (activation, event): E_high for all four, E_low for tanh (one omitted) and relu
    assert len(fig.axes) == 8
    _check_labels(fig, "false-positive rate", "true-positive rate")
    _render(fig)
    P = predictions[("tanh", "uniform")]
    ax = _panel(fig, r"tanh, uniform: $E_\mathrm{high}$")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [lab.split(" ")[0] for lab in labels] == ["baseline", "FTLE", "CLV", "combined"]
    k = int(np.argmin(np.abs(P.tau.values - HEADLINE_TIME)))
    best = P.best_auc_mean.sel(event="high", best_family="FTLE").values[k]
    lo = P.best_auc_ci_low.sel(event="high", best_family="FTLE").values[k]
    assert any(f"{best:.2f} [{lo:.2f}," in lab and f"τ={HEADLINE_TIME:g}" in lab for lab in labels)
    # CLV is drawn where it is first available (t* + L)
    assert any(lab.startswith("CLV") and "τ=0.025" in lab for lab in labels)
    # the omitted E_low panel explains itself; the edge combination has nothing computable
    assert any("E_low is not reported" in text for text in _texts(fig))
    edge = _panel(fig, r"relu, normal: $E_\mathrm{high}$").get_legend().get_texts()
    assert sum("not computable" in t.get_text() for t in edge) == 4
    # a headline time that is not a stored time: nearest τ, said in the title
    fig = figures.roc_curves(predictions, t=0.0123)
    assert "nearest τ = 0.01" in fig._suptitle.get_text()
    _render(fig)


def test_auc_vs_time(predictions):
    fig = figures.auc_vs_time(predictions)
    assert len(fig.axes) == 8
    _check_labels(fig, "availability time", "AUC")
    assert all(ax.get_xscale() == "log" for ax in fig.axes)
    _render(fig)
    P = predictions[("tanh", "uniform")]
    ax = _panel(fig, r"tanh, uniform: $E_\mathrm{high}$")
    tau, mean, lo, hi, chosen = figures.best_series(P, "high", "CLV")
    ok = np.isfinite(mean)
    assert not ok[0] and ok.any()                    # CLV not available at the first τ
    xs = [np.asarray(line.get_xdata()) for line in ax.get_lines()]
    assert any(x.size == ok.sum() and np.allclose(x, tau[ok]) for x in xs)
    # the Ginelli bound is drawn and labelled as such
    texts = _texts(fig)
    assert any("upper bound" in t and "future" in t for t in texts)
    assert any("best baseline" in t for t in texts)
    assert any(x.size == P.prediction_time.size and np.allclose(x, P.prediction_time)
               for x in xs)


def test_lag_accuracy(gathered):
    near = figures.lag_accuracy(gathered, t=HEADLINE_TIME - 1e-4)  # nearest stored time
    assert f"{HEADLINE_TIME:g}" in near._suptitle.get_text()
    fig = figures.lag_accuracy(gathered, t=HEADLINE_TIME)
    assert len(fig.axes) == 4
    _check_labels(fig, "lag", "angle")
    assert all(ax.get_yscale() == "log" for ax in fig.axes)
    assert len(fig.axes[0].get_lines()) == D + 1                # D CLVs + the 0.05 rad line
    assert any("no lagged CLV estimate" in text for text in _texts(fig))
    _render(fig)
    fig = figures.lag_accuracy(gathered, t=HEADLINE_TIME, lag=10, vectors=(2, 3))
    lines = fig.axes[0].get_lines()
    assert len(lines) == D + 2                                  # and the feature lag
    assert [line.get_xdata()[0] for line in lines if line.get_linestyle() == ":"] == [10]
    assert [line.get_ydata()[0] for line in lines if line.get_linestyle() == "--"] == [
        CLV_CONVERGENCE_ANGLE]
    assert sorted(line.get_linewidth() for line in lines[:D])[-2:] == [1.6, 1.6]
    assert any("feature lag" in text for text in _texts(fig))
    _render(fig)


def test_early_stopping(predictions):
    fig = figures.early_stopping(predictions)
    assert len(fig.axes) == 4
    _check_labels(fig, "runs stopped", "compute saved")
    assert any("not computable" in text for text in _texts(fig))
    texts = _texts(fig)
    assert any("chance" in t for t in texts) and any("best possible" in t for t in texts)
    _render(fig)
    P = predictions[("tanh", "uniform")]
    lines = fig.axes[0].get_lines()
    chance = next(line for line in lines if line.get_linestyle() == "--")
    x, y = np.asarray(chance.get_xdata()), np.asarray(chance.get_ydata())
    np.testing.assert_allclose(y, x * float(P.stop_chance_slope.sel(prediction_time=HEADLINE_TIME)))
    stars = [line for line in lines if line.get_marker() == "*"]
    np.testing.assert_allclose(sorted(float(s.get_ydata()[0]) for s in stars),
                               sorted(P.stop_best_saved.values))



def _dotted_vertical_lines(ax) -> list[float]:
    """x positions of the dotted vertical lines of a panel (headline-time marks)."""
    return [float(line.get_xdata()[0]) for line in ax.get_lines()
            if line.get_linestyle() == ":" and len(line.get_xdata()) == 2
            and line.get_xdata()[0] == line.get_xdata()[1]]


def _with_headline(data, t):
    return {key: ds.assign_attrs(headline_time=t) for key, ds in data.items()}


def test_figures_follow_the_configured_headline_time(gathered, predictions):
    """prediction.headline_time reaches every figure that marks it, through figure_options
    (as in the workflow) and through the datasets' headline_time attribute; another value
    than the study's moves every mark."""
    t = OTHER_HEADLINE_TIME
    assert not np.isclose(t, HEADLINE_TIME) and t in PREDICTION_TIMES[:4]
    cfg = prediction_cfg()
    cfg["prediction"]["headline_time"] = t
    options = figures.figure_options(cfg)
    assert set(options) <= set(figures.FIGURES)
    marked = {name: kwargs.get("t", kwargs.get("t_mark")) for name, kwargs in options.items()}
    assert marked == {name: t for name in ("fig3_ftle_spectra", "fig5_clv_angles",
                                           "fig6_roc_curves", "fig7_auc_vs_time",
                                           "fig8_lag_accuracy", "fig9_early_stopping")}

    def build(name, data, **kwargs):
        func, _ = figures.FIGURES[name]
        return func(data, **{**options.get(name, {}), **kwargs})

    # figure 3: dotted line at t in every panel and t in the legend; also from the G attrs
    for fig in (build("fig3_ftle_spectra", gathered, exponents=[1]),
                figures.ftle_spectra(_with_headline(gathered, t), exponents=[1])):
        assert [_dotted_vertical_lines(ax) for ax in fig.axes] == [[t]] * len(gathered)
        assert f"$t^* = {t:g}$" in _texts(fig)
    # figure 5: dotted line at t in every angle panel
    fig = build("fig5_clv_angles", gathered)
    assert [_dotted_vertical_lines(ax) for ax in _grid_axes(fig)[len(gathered):]] == [
        [t]] * len(gathered)
    # figure 6: the ROC curves at τ = t (title and legend); also from the P attrs
    for fig in (build("fig6_roc_curves", predictions),
                figures.roc_curves(_with_headline(predictions, t))):
        title = fig._suptitle.get_text()
        assert f"τ = {t:g} " in title and "nearest" not in title
        ax = _panel(fig, r"tanh, uniform: $E_\mathrm{high}$")
        labels = [text.get_text() for text in ax.get_legend().get_texts()]
        assert any(lab.startswith("FTLE") and f"τ={t:g}" in lab for lab in labels)
    # figure 7: dotted vertical line at t in every panel
    fig = build("fig7_auc_vs_time", predictions)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert panels and all(_dotted_vertical_lines(ax) == [t] for ax in panels)
    # figure 8: the lag accuracy at t* = t (title)
    assert f"$t^* = {t:g}$" in build("fig8_lag_accuracy", gathered)._suptitle.get_text()
    # figure 9: chance line and the thick curve at t
    fig = build("fig9_early_stopping", predictions)
    P = predictions[("tanh", "uniform")]
    lines = fig.axes[0].get_lines()
    chance = next(line for line in lines if line.get_linestyle() == "--")
    np.testing.assert_allclose(np.asarray(chance.get_ydata()),
                               np.asarray(chance.get_xdata())
                               * float(P.stop_chance_slope.sel(prediction_time=t)))
    thick = [line for line in lines if line.get_linewidth() == 2.0]
    lost = P.stop_low_lost.sel(prediction_time=t).values
    assert len(thick) == 1
    np.testing.assert_allclose(thick[0].get_xdata(), lost[np.isfinite(lost)])
    legend = {text.get_text(): handle.get_linewidth()
              for text, handle in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert legend[f"$t^* = {t:g}$"] == 2.0 and legend[f"$t^* = {HEADLINE_TIME:g}$"] == 1.0


def test_style_file_and_package_layout():
    """The rcParams come from the package's .mplstyle file; every module of the package
    declares __all__ and stays small."""
    import importlib
    import pkgutil

    from weightdyn.figures import style

    assert style.STYLE_FILE.is_file() and style.STYLE_FILE.suffix == ".mplstyle"
    assert style.STYLE["font.size"] == style.FONT_SIZE == 8
    sizes = [value for key, value in style.STYLE.items() if key.endswith("size")]
    assert sizes and min(sizes) >= style.FONT_SIZE
    assert style.STYLE["pdf.fonttype"] == 42
    package = Path(figures.__file__).parent
    for module in pkgutil.iter_modules([str(package)]):
        mod = importlib.import_module(f"weightdyn.figures.{module.name}")
        assert isinstance(mod.__all__, list), module.name
        assert all(hasattr(mod, name) for name in mod.__all__), module.name
        assert len(Path(mod.__file__).read_text().splitlines()) <= 400, module.name
    assert all(hasattr(figures, name) for name in figures.__all__)

def test_partial_grid_and_all_degenerate():
    """Three combinations leave one cell empty; a study with no high class and no CLV data
    still gives every figure."""
    keys = COMBINATIONS[:3]
    G = all_gathered(keys, n=60)
    P = all_predictions(keys)
    for func, data, n_axes in ((figures.final_loss_distribution, G, 3),
                               (figures.loss_curves, G, 3), (figures.roc_curves, P, 6),
                               (figures.auc_vs_time, P, 6), (figures.lag_accuracy, G, 3),
                               (figures.early_stopping, P, 3)):
        fig = func(data)
        assert len(fig.axes) == n_axes      # figures 6, 7: a row per (activation, event)
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


# Python ≥ 3.12 warns about fork() beside BLAS threads (OpenBLAS stops them around a fork)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_save_figures_in_parallel_writes_the_same_bytes(tmp_path, gathered, predictions):
    """save_figures with two worker processes: the figures, in order, byte-identical to one
    process."""
    inputs = {"gathered": gathered, "prediction": predictions}
    options = figures.figure_options(prediction_cfg())
    names = ["fig1_final_loss", "fig6_roc_curves", "fig2_loss_curves"]
    written = {}
    for workers in (1, 2):
        stems = [tmp_path / str(workers) / name for name in names]
        written[workers] = list(figures.save_figures(stems, inputs, {"weightdyn_version": "x"},
                                                     options, workers))
        assert written[workers] == stems
    for one, two in zip(written[1], written[2]):
        for ext in (".png", ".pdf"):
            assert one.with_suffix(ext).read_bytes() == two.with_suffix(ext).read_bytes()


@pytest.mark.parametrize("name", ["fig6_roc_curves", "fig7_auc_vs_time", "fig9_early_stopping"])
def test_prediction_figures_save_deterministically(tmp_path, predictions, name):
    func, _ = figures.FIGURES[name]
    a, _ = figures.save(func(predictions), tmp_path / "a" / name)
    b, _ = figures.save(func(predictions), tmp_path / "b" / name)
    assert a.read_bytes() == b.read_bytes()


def test_figure_registry_covers_all_ten():
    assert len(figures.FIGURES) == 10
    stems = list(figures.FIGURES)
    assert [s.split("_")[0] for s in stems] == [f"fig{k}" for k in range(1, 11)]
    report = Path(__file__).resolve().parents[1] / "workflow" / "report"
    for stem in stems:
        assert (report / f"{stem}.rst").is_file(), stem


def test_bad_input_raises():
    with pytest.raises(ValueError):
        figures.final_loss_distribution({})
    with pytest.raises(ValueError):
        figures.roc_curves({})


def render_all(out_dir="/tmp/figcheck"):
    """Render every figure from the synthetic data to ``out_dir`` (for looking at them)."""
    G, P = all_gathered(n=800), all_predictions()
    for stem, (func, kind) in figures.FIGURES.items():
        figures.save(func(G if kind == "gathered" else P), Path(out_dir) / stem)
    return sorted(Path(out_dir).glob("*.png"))


if __name__ == "__main__":
    for path in render_all(*sys.argv[1:2]):
        print(path)

"""weightdyn.gather on synthetic lyapunov chunk files (simulation chunks with known losses and
identity propagators, analysed by weightdyn.lyapunov; no gradient descent is integrated)."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from weightdyn import __version__
from weightdyn.chunkio import ChunkFileError, read_dataset, write_dataset
from weightdyn.plan import chunk_ranges
from weightdyn.engine import Trajectories, record_steps
from weightdyn.gather import LYAPUNOV_CHUNK_VARIABLES, gather, loss_curve_steps, outcomes
from weightdyn.lyapunov import analyse_chunk
from weightdyn.network import Architecture
from weightdyn.simulate import chunk_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cfg(tiny_config):
    """config.yaml with the overlay config/tiny.yaml (conftest.py), a modifiable copy."""
    return copy.deepcopy(tiny_config)


def fake_chunk(cfg, act, init, start, stop, diverge=()):
    """A chunk dataset with recognisable values: loss(network n, step s) = n + s / 1000."""
    arch = Architecture.from_config(cfg)
    steps, rec = cfg["training"]["steps"], cfg["recording"]
    rsteps = record_steps(steps, rec["record_stride"])
    index = np.arange(start, stop)
    S, R, d, K = index.size, rsteps.size, arch.dim, steps // rec["jacobian_stride"]
    every = np.arange(steps + 1)
    step_loss = index[:, None] + every[None, :] / 1000.0
    grad_norm = np.broadcast_to(index[:, None] + 1.0, step_loss.shape).copy()
    grad_norm[:, -1] = np.nan
    loss = step_loss[:, rsteps].copy()
    theta = np.broadcast_to(loss[:, :, None], (S, R, d)).copy()
    final = loss[:, -1].copy()
    div = np.full(S, -1, dtype=np.int64)
    for n in diverge:
        row = n - start
        div[row] = 57
        final[row] = np.inf
        loss[row, rsteps >= 57] = np.nan
        step_loss[row, 57:] = grad_norm[row, 57:] = np.nan
    prop = np.broadcast_to(np.eye(d), (S, K, d, d)).copy()
    # curvature: λ_min = −loss, λ_max = 2·loss (NaN after divergence, as the loss)
    out = Trajectories(theta=theta, loss=loss, step_loss=step_loss, gradient_norm=grad_norm,
                       propagator=prop, final_loss=final, divergence_step=div,
                       hessian_min=-loss, hessian_max=2 * loss)
    return chunk_dataset(cfg, act, init, index, arch, out)


def lyapunov_chunk(cfg, act, init, start, stop, diverge=()):
    """What rule lyapunov writes for the fake simulation chunk."""
    sim = fake_chunk(cfg, act, init, start, stop, diverge)
    return xr.merge([analyse_chunk(sim, cfg), outcomes(sim, cfg)], combine_attrs="override")


def write_chunks(tmp_path, cfg, act="tanh", init="uniform", diverge=()):
    ens = cfg["ensemble"]
    chunks = []
    for k, (start, stop) in enumerate(chunk_ranges(ens["networks"], ens["chunk_size"])):
        path = tmp_path / f"chunk{k:03d}.nc"
        write_dataset(lyapunov_chunk(cfg, act, init, start, stop,
                                     [n for n in diverge if start <= n < stop]), path)
        chunks.append((path, start, stop))
    return chunks


def test_loss_curve_steps():
    assert loss_curve_steps(200, 10, 20).tolist() == list(range(0, 201, 20))
    assert loss_curve_steps(205, 5, 50).tolist() == [0, 50, 100, 150, 200, 205]
    assert loss_curve_steps(3000, 10, 50).size == 61


def test_gather_concatenates_chunks(tmp_path, cfg):
    cfg["ensemble"].update(networks=25, chunk_size=10)   # last chunk shorter
    chunks = write_chunks(tmp_path, cfg, diverge=[3, 21])
    ds = gather(chunks, cfg, "tanh", "uniform")
    assert {k: ds.sizes[k] for k in ("network", "step", "exponent", "pair")} == {
        "network": 25, "step": 11, "exponent": 9, "pair": 36}
    np.testing.assert_array_equal(ds["network"], np.arange(25))
    np.testing.assert_array_equal(ds["step"], np.arange(0, 201, 20))
    np.testing.assert_allclose(ds["t"], np.arange(0, 201, 20) * 1e-3)
    ok = ds["diverged"].values == 0
    np.testing.assert_array_equal(np.flatnonzero(~ok), [3, 21])
    np.testing.assert_array_equal(ds["divergence_step"].values[~ok], [57, 57])
    assert np.all(np.isinf(ds["final_loss"].values[~ok]))
    np.testing.assert_allclose(ds["final_loss"].values[ok], np.arange(25)[ok] + 0.2)
    np.testing.assert_allclose(ds["loss"].sel(network=7, step=140), 7.14)
    assert np.isnan(ds["loss"].sel(network=21, step=60))
    # curvature at the loss-curve steps and at the end (fake: λ_min = −C, λ_max = 2C)
    np.testing.assert_array_equal(ds["hessian_min"].values, -ds["loss"].values)
    np.testing.assert_array_equal(ds["hessian_max"].values, 2 * ds["loss"].values)
    np.testing.assert_allclose(ds["final_hessian_max"].values[ok], 2 * (np.arange(25)[ok] + 0.2))
    assert np.isnan(ds["final_hessian_min"].values[~ok]).all()
    assert ds["final_hessian_max"].dims == ("network",)
    assert ds.attrs["activation"] == "tanh" and ds.attrs["initialization"] == "uniform"
    assert ds.attrs["networks"] == 25 and ds.attrs["n_diverged"] == 2
    # c_f = n + 0.2: networks 0–3 are low (< 4), ≥ 100 none, diverged ones high
    np.testing.assert_array_equal(np.flatnonzero(ds["outcome"].values == 0), [0, 1, 2])
    np.testing.assert_array_equal(np.flatnonzero(ds["outcome"].values == 2), [3, 21])
    np.testing.assert_array_equal(ds["valid"].values, ok.astype(np.int8))
    # identity propagators: every exponent 0, at every prediction time
    assert np.abs(ds["ftle_at"].values[ok]).max() < 1e-9
    # baselines at t* (step n* = t*/η): C = n + n*/1000, |∇C| = n + 1, and the least-squares
    # ln C slope over steps n* − 5 … n* ≈ d ln C/dt at the window's centre = 1/(n + t − 0.0025)
    t = ds["prediction_time"].values
    net = ds["network"].values[:, None]
    before = t * 1000 < 57                                     # diverged runs: NaN from step 57
    np.testing.assert_allclose(ds["loss_at"].values[:, before], (net + t)[:, before], rtol=1e-12)
    np.testing.assert_allclose(ds["loss_at"].values[ok], (net + t)[ok], rtol=1e-12)
    assert np.isnan(ds["loss_at"].values[~ok][:, ~before]).all()
    np.testing.assert_allclose(ds["gradient_norm_at"].values[ok], (net + 1.0 + 0 * t)[ok])
    np.testing.assert_allclose(ds["log_loss_slope_at"].values[1:][ok[1:]],
                               (1 / (net[1:] + t - 0.0025))[ok[1:]], rtol=1e-5)
    assert np.isnan(ds["log_loss_slope_at"].values[0, 0])     # ln C(0) = −inf for network 0
    np.testing.assert_array_equal(ds["theta0"].values, np.broadcast_to(net, (25, 9)))
    assert list(ds["theta0"].dims) == ["network", "param"] and ds["param"].size == 9
    assert ds["clv_angle_ginelli_at"].dims == ("network", "prediction_time", "pair")
    assert np.isnan(ds["lyapunov_exponent"].values[~ok]).all()
    np.testing.assert_array_equal(ds["sample_network"], [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 3, 21])
    np.testing.assert_array_equal(ds["loss_curve"].values[0], ds["loss"].values[0])
    assert ds["ftle_quantiles"].dims == ("class_name", "quantile", "time", "exponent")
    assert ds.attrs["weightdyn_version"] == __version__ and ds.attrs["rule"] == "gather"
    assert json.loads(ds.attrs["config_json"]) == cfg
    assert json.loads(ds.attrs["source_files"]) == [str(p) for p, _, _ in chunks]
    assert ds["final_loss"].dtype == np.float64 and ds["diverged"].dtype == np.int8


def test_gather_ignores_chunk_size_of_the_files(tmp_path, cfg):
    """Chunk boundaries are not provenance: any contiguous cover gives the same result."""
    a = gather(write_chunks(tmp_path, cfg), cfg, "tanh", "uniform")
    other = copy.deepcopy(cfg)
    other["ensemble"]["chunk_size"] = 20
    (tmp_path / "b").mkdir()
    b = gather(write_chunks(tmp_path / "b", other), cfg, "tanh", "uniform")
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_wrong_activation_names_file_and_remedy(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg, act="relu")
    with pytest.raises(ChunkFileError) as info:
        gather(chunks, cfg, "tanh", "uniform")
    message = str(info.value)
    assert str(chunks[0][0]) in message
    assert "activation is 'relu', expected 'tanh'" in message
    assert f"delete {chunks[0][0]}" in message


@pytest.mark.parametrize("section, key, value", [
    ("training", "steps", 300),
    ("training", "learning_rate", 2.0e-3),
    ("recording", "jacobian_stride", 10),
    ("task", "grid_points", 5),
])
def test_chunk_from_another_config_names_the_key(tmp_path, cfg, section, key, value):
    chunks = write_chunks(tmp_path, cfg)
    current = copy.deepcopy(cfg)
    current[section][key] = value
    with pytest.raises(ChunkFileError) as info:
        gather(chunks, current, "tanh", "uniform")
    message = str(info.value)
    assert str(chunks[0][0]) in message and f"{section}.{key}" in message
    assert "delete" in message


def test_different_seed_is_detected(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    cfg["seed"] += 1
    with pytest.raises(ChunkFileError, match="seed is"):
        gather(chunks, cfg, "tanh", "uniform")


def test_lyapunov_settings_are_provenance(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    cfg["lyapunov"]["window"] = 3
    with pytest.raises(ChunkFileError, match="lyapunov.window is 20 in the file but 3"):
        gather(chunks, cfg, "tanh", "uniform")


def test_later_settings_are_not_provenance(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    cfg["classes"]["low"] = 1.0
    cfg["recording"]["keep_propagators"] = True
    cfg["prediction"]["folds"] = 3
    gather(chunks, cfg, "tanh", "uniform")


def test_network_range_mismatch(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    shifted = [(chunks[1][0], 0, 10), (chunks[0][0], 10, 20)]
    with pytest.raises(ChunkFileError, match="networks are 10 … 19 .*expected 0 … 9"):
        gather(shifted, cfg, "tanh", "uniform")


def test_chunks_must_be_contiguous(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    with pytest.raises(ValueError, match="contiguous"):
        gather(chunks[1:], cfg, "tanh", "uniform")


def test_truncated_chunk_names_file(tmp_path, cfg):
    chunks = write_chunks(tmp_path, cfg)
    path = chunks[1][0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ChunkFileError) as info:
        gather(chunks, cfg, "tanh", "uniform")
    assert str(path) in str(info.value) and "delete" in str(info.value)


def test_missing_chunk_names_file(tmp_path, cfg):
    with pytest.raises(ChunkFileError, match="chunk000.nc: file not found"):
        read_dataset(tmp_path / "chunk000.nc", LYAPUNOV_CHUNK_VARIABLES)


def test_chunk_missing_a_variable(tmp_path, cfg):
    ds = lyapunov_chunk(cfg, "tanh", "uniform", 0, 10).drop_vars("final_loss")
    path = tmp_path / "chunk000.nc"
    ds.to_netcdf(path, engine="netcdf4")
    with pytest.raises(ChunkFileError, match="missing variables \\['final_loss'\\]"):
        read_dataset(path, LYAPUNOV_CHUNK_VARIABLES)

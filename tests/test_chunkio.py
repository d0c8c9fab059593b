"""weightdyn.chunkio: provenance and CF attributes of the study's files, the simulation chunk
file I/O, and weightdyn.load_results on gathered files made by weightdyn.gather from synthetic
lyapunov chunks (the helpers of tests/test_gather.py; no gradient descent is integrated)."""

import copy
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import weightdyn
from weightdyn import __version__, chunkio, plan
from weightdyn.gather import gather
from test_gather import fake_chunk, lyapunov_chunk  # tests/ is on sys.path (rootdir conftest)

ROOT = Path(__file__).resolve().parents[1]
HAS_GIT = shutil.which("git") is not None


@pytest.fixture
def cfg(default_config):
    """config.yaml shrunk to a tiny study: 20 networks in chunks of 10, 200 steps."""
    cfg = copy.deepcopy(default_config)
    cfg["training"]["steps"] = 200
    cfg["ensemble"].update(networks=20, chunk_size=10)
    cfg["recording"]["loss_curve_stride"] = 20
    cfg["lyapunov"].update(backward_transient=10, lags=[5, 10, 20, 50])
    cfg["prediction"].update(times=[0.005, 0.010, 0.015, 0.025, 0.05, 0.1], clv_lag=10)
    return cfg


# --------------------------------------------------------------------------- provenance


def test_provenance_records_version_commit_software_config_and_cf(cfg):
    stamp = chunkio.provenance(cfg, "gather")
    assert stamp["weightdyn_version"] == __version__ and stamp["rule"] == "gather"
    assert json.loads(stamp["config_json"]) == cfg
    assert stamp["Conventions"] == "CF-1.10"
    assert stamp["title"] == chunkio.TITLES["gather"]
    assert chunkio.provenance(cfg, "predict", title="mine")["title"] == "mine"
    assert chunkio.provenance(cfg, "other")["title"] == "weightdyn other output"
    date, rest = stamp["history"].split(": ", 1)
    assert dt.date.fromisoformat(date) and rest.endswith("rule gather")
    assert "Phys. Rev. E 111, 054208 (2025)" in stamp["references"]
    assert "arXiv:2405.00743" in stamp["references"] and "docs/methods.md" in stamp["references"]
    versions = json.loads(stamp["software_versions_json"])
    assert versions["python"].count(".") == 2
    assert versions["numpy"] == np.__version__ and versions["xarray"] == xr.__version__
    assert stamp["git_commit"] == chunkio.git_commit()           # cached per process
    assert all(isinstance(v, str) for v in stamp.values())         # valid NetCDF attributes


@pytest.mark.skipif(not HAS_GIT, reason="git not installed")
def test_git_commit_of_this_checkout():
    commit = chunkio.git_commit()
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout")
    assert commit in (head, f"{head}-dirty")


@pytest.mark.skipif(not HAS_GIT, reason="git not installed")
def test_git_commit_clean_dirty_and_outside_a_checkout(tmp_path, monkeypatch):
    uncached = chunkio.git_commit.__wrapped__
    package = tmp_path / "repo" / "weightdyn"
    package.mkdir(parents=True)
    module = package / "chunkio.py"
    module.write_text("# stand-in\n")
    monkeypatch.setattr(chunkio, "__file__", str(module))
    assert uncached() == "unknown"                                 # no repository at all

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                               "-c", "commit.gpgsign=false", *args], cwd=package.parent,
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    assert uncached() == "unknown"                                 # a repository not tracking it
    git("add", ".")
    git("commit", "-q", "-m", "initial")
    head = git("rev-parse", "HEAD")
    assert uncached() == head
    module.write_text("# changed\n")
    assert uncached() == f"{head}-dirty"


# --------------------------------------------------------------------------- CF attributes


def test_simulation_chunk_cf_units_and_flags(tmp_path, cfg):
    ds = fake_chunk(cfg, "tanh", "uniform", 0, 10, diverge=[3])
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(ds, path)
    back = chunkio.read_simulation_chunk(path)
    for name, var in back.variables.items():
        assert var.attrs.get("units") not in ("steps", "1/t"), name
        if name not in ("param", "param_i", "param_j"):
            assert var.attrs.get("units") == "1" or name == "propagator", name
    assert list(back["diverged"].attrs["flag_values"]) == [0, 1]
    assert back["diverged"].attrs["flag_meanings"] == "not_diverged diverged"
    assert back["diverged"].attrs["flag_values"].dtype == back["diverged"].dtype
    assert int(back["divergence_step"].attrs["flag_values"]) == -1
    assert back["divergence_step"].attrs["flag_meanings"] == "did_not_diverge"
    assert "did not diverge" in back["divergence_step"].attrs["comment"]
    assert "step" in back["divergence_step"].attrs["long_name"]
    np.testing.assert_array_equal(back["divergence_step"], np.where(np.arange(10) == 3, 57, -1))
    for attr in ("title", "history", "references", "Conventions", "git_commit",
                 "software_versions_json", "config_json", "weightdyn_version", "rule"):
        assert back.attrs[attr] == ds.attrs[attr], attr
    assert back.attrs["title"] == "weightdyn simulation chunk"


def test_read_simulation_chunk_names_missing_variable(tmp_path, cfg):
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(fake_chunk(cfg, "relu", "uniform", 0, 4).drop_vars("theta"),
                                   path)
    with pytest.raises(chunkio.ChunkFileError, match=r"chunk000.nc: missing variables \['theta'\]"):
        chunkio.read_simulation_chunk(path)


def test_open_simulation_chunk_keeps_the_propagators_in_the_file(tmp_path, cfg):
    ds = fake_chunk(cfg, "tanh", "uniform", 0, 10, diverge=[3])
    ds["propagator"].values[:] = np.random.default_rng(0).standard_normal(ds["propagator"].shape)
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(ds, path)
    with chunkio.open_simulation_chunk(path) as sim:
        np.testing.assert_array_equal(sim["propagator"][2:7].values, ds["propagator"][2:7])
    path.unlink()
    for name in chunkio.SIMULATION_VARIABLES:       # in memory, except the propagators
        if name != "propagator":
            np.testing.assert_array_equal(sim[name], ds[name])
    with pytest.raises(OSError):                    # read from the file when indexed
        sim["propagator"][0].values


def test_open_simulation_chunk_names_damaged_files(tmp_path, cfg):
    path = tmp_path / "chunk000.nc"
    chunkio.write_simulation_chunk(fake_chunk(cfg, "relu", "uniform", 0, 4).drop_vars("loss"),
                                   path)
    with pytest.raises(chunkio.ChunkFileError, match=r"chunk000.nc: missing variables \['loss'\]"):
        with chunkio.open_simulation_chunk(path):
            pass
    chunkio.write_simulation_chunk(fake_chunk(cfg, "relu", "uniform", 0, 4), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(chunkio.ChunkFileError, match="chunk000.nc: cannot be read.*delete"):
        with chunkio.open_simulation_chunk(path):
            pass
    with pytest.raises(chunkio.ChunkFileError, match="absent.nc: file not found"):
        with chunkio.open_simulation_chunk(tmp_path / "absent.nc"):
            pass


# --------------------------------------------------------------------------- load_results


def write_gathered(root, cfg, act, init, diverge=()):
    """results/gather/{act}/{init}.nc from two synthetic lyapunov chunks (networks 0–19)."""
    chunks = []
    for k, (start, stop) in enumerate([(0, 10), (10, 20)]):
        path = root / "lyapunov" / act / init / f"chunk{k:03d}.nc"
        chunkio.write_dataset(lyapunov_chunk(cfg, act, init, start, stop,
                                             [n for n in diverge if start <= n < stop]), path)
        chunks.append((path, start, stop))
    ds = gather(chunks, cfg, act, init)
    chunkio.write_dataset(ds, root / "gather" / act / f"{init}.nc")
    return ds


@pytest.fixture
def results(tmp_path, cfg):
    """Three of the four combinations, with different numbers of sample loss curves:
    c_f = n + 0.2, so networks 0–3 are low and 4–19 middle; diverged networks are high."""
    made = {("tanh", "uniform"): write_gathered(tmp_path, cfg, "tanh", "uniform", [3, 5]),
            ("tanh", "normal"): write_gathered(tmp_path, cfg, "tanh", "normal"),
            ("relu", "uniform"): write_gathered(tmp_path, cfg, "relu", "uniform", [11])}
    return tmp_path, made


def test_load_results_stacks_combinations(results, cfg):
    root, made = results
    ds = weightdyn.load_results(root)
    # the order of the configuration, not of the file system
    assert list(ds["activation"].values) == ["tanh", "relu"]
    assert list(ds["initialization"].values) == ["uniform", "normal"]
    assert ds["final_loss"].dims == ("activation", "initialization", "network")
    assert ds["ftle_at"].dims[:2] == ("activation", "initialization")
    for (act, init), G in made.items():
        one = ds.sel(activation=act, initialization=init)
        for name in ("final_loss", "outcome", "diverged", "ftle_at", "loss_at", "theta0",
                     "clv_angle_lagged", "ftle_quantiles", "lyapunov_exponent"):
            xr.testing.assert_equal(one[name].drop_vars(["activation", "initialization"]),
                                    G[name])
        n = G.sizes["sample"]
        np.testing.assert_array_equal(one["sample_network"].values[:n], G["sample_network"])
        assert (one["sample_network"].values[n:] == -1).all()           # padded
        assert np.isnan(one["loss_curve"].values[n:]).all()
        assert int(one["n_networks"]) == 20 and int(one["n_diverged"]) == G.attrs["n_diverged"]
        assert str(one["source_file"].values) == str(root / "gather" / act / f"{init}.nc")
    assert ds.sizes["sample"] == max(G.sizes["sample"] for G in made.values())
    assert ds["diverged"].dtype == np.int8 and ds["sample_outcome"].dtype == np.int8
    # relu/normal is missing: padded
    gap = ds.sel(activation="relu", initialization="normal")
    assert np.isnan(gap["final_loss"]).all() and (gap["outcome"] == -1).all()
    assert int(gap["n_networks"]) == -1 and str(gap["source_file"].values) == ""
    # attributes common to all files are kept, per-file ones are not
    assert json.loads(ds.attrs["config_json"]) == cfg
    assert ds.attrs["weightdyn_version"] == __version__ and ds.attrs["Conventions"] == "CF-1.10"
    for attr in ("activation", "initialization", "history", "networks", "source_files"):
        assert attr not in ds.attrs


def test_load_results_selects_variables_and_combinations(results):
    root, made = results
    ds = weightdyn.load_results(root, variables=["final_loss", "outcome"],
                                combinations=[("tanh", "uniform"), ("tanh", "normal")])
    assert set(ds.data_vars) == {"final_loss", "outcome", "n_networks", "n_diverged",
                                 "source_file"}
    assert list(ds["activation"].values) == ["tanh"]
    high = (ds["outcome"] == 2).sum("network")
    assert high.sel(initialization="uniform") == 2 and high.sel(initialization="normal") == 0
    with pytest.raises(FileNotFoundError, match="relu"):
        weightdyn.load_results(root, combinations=[("relu", "normal")])
    with pytest.raises(chunkio.ChunkFileError, match="missing variables"):
        weightdyn.load_results(root, variables=["no_such_variable"])


def test_load_results_refuses_mixed_configurations(results, cfg):
    root, _ = results
    other = copy.deepcopy(cfg)
    other["classes"]["high"] = 50.0
    path = root / "gather" / "relu" / "uniform.nc"
    ds = chunkio.read_dataset(path)
    ds.attrs["config_json"] = json.dumps(other, sort_keys=True)
    chunkio.write_dataset(ds, path)
    with pytest.raises(ValueError, match=r"different configurations .*classes\.high"):
        weightdyn.load_results(root)
    assert weightdyn.load_results(root, combinations=[("tanh", "uniform")]).sizes["network"] == 20


def test_load_results_without_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no gathered files"):
        weightdyn.load_results(tmp_path)


def test_readme_example_runs(results, tmp_path, monkeypatch, capsys):
    """The README's "Loading the results" example, run as written on a results folder."""
    root, _ = results
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Loading the results"):]
    code = section[section.index("<<'PY'\n") + len("<<'PY'\n"):section.index("\nPY\n")]
    work = tmp_path / "work"
    work.mkdir()
    (work / "results").symlink_to(root)
    monkeypatch.chdir(work)
    exec(compile(code, "README example", "exec"), {})
    out = capsys.readouterr().out
    assert "tanh" in out and "relu" in out


# --------------------------------------------------------------------------- damaged files


def test_write_text_is_atomic(tmp_path, monkeypatch):
    """A failing write (here: a full disk) leaves neither the file nor a temporary behind."""
    import errno

    target = tmp_path / "tables" / "auc.csv"
    chunkio.write_text(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"

    def full_disk(self, text, encoding=None):
        Path.write_bytes(self, text[:3].encode())
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        chunkio.write_text(tmp_path / "tables" / "new.csv", "a,b\n1,2\n")
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["auc.csv"]


def test_damaged_tables_are_named_with_the_remedy(tmp_path):
    table = tmp_path / "uniform.csv"
    chunkio.write_text(table, "activation,auc_mean\ntanh,0.8\n")
    digest = plan.file_sha256(table)
    chunkio.check_table(table, digest, "uniform.nc")               # intact: no error
    table.write_text("activation,auc_mean\ntanh,0.")              # truncated
    with pytest.raises(chunkio.ChunkFileError, match="uniform.csv: differs from the table "
                       r"recorded in uniform.nc .*delete .*uniform.csv and run the same "
                       "snakemake command again"):
        chunkio.check_table(table, digest, "uniform.nc")
    table.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(chunkio.ChunkFileError, match="uniform.csv: cannot be read"):
        chunkio.read_table(table)
    table.write_text("activation\ntanh\n")
    with pytest.raises(chunkio.ChunkFileError, match=r"missing columns \['auc_mean'\]"):
        chunkio.read_table(table, ["activation", "auc_mean"])


def test_hand_edited_tables_are_set_aside_and_marked_out_of_date(tmp_path):
    tables = tmp_path / "tables"
    for name, text in (("auc.csv", "a\n1\n"), ("classes.csv", "b\n2\n")):
        chunkio.write_text(tables / name, text)
    chunkio.write_text(tables / "provenance.json", json.dumps(
        {"sha256": {n: plan.file_sha256(tables / n) for n in ("auc.csv", "classes.csv")}}))
    assert plan.edited_tables(tables) == [] and plan.set_aside_edited_tables(tables) == []
    (tables / "auc.csv").write_text("a\n1\nedited\n")
    assert plan.edited_tables(tables) == [tables / "auc.csv"]
    (message,) = plan.set_aside_edited_tables(tables)
    assert f"{tables / 'auc.csv'}: edited since the tables rule wrote it" in message
    assert (tables / "auc.csv.edited").read_text() == "a\n1\nedited\n"     # the edit is kept
    assert (tables / "auc.csv").stat().st_mtime == 0                       # Snakemake reruns
    assert (tables / "classes.csv").stat().st_mtime > 0
    (tables / "provenance.json").write_text("{not json")                   # unreadable: skip
    assert plan.edited_tables(tables) == []

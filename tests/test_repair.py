"""Damage a finished study and repair it the way its messages and README.md say.

One tiny study (config/tiny.yaml, outputs in results/tiny/) is run once per module in a
temporary directory holding a copy of this checkout's workflow (Snakefile, workflow/, src/,
config/, profiles/), so that a plain `snakemake` there works as in a clone. Its results are
snapshotted (NetCDF data, tables as bytes). Each case copies that finished directory (with its
.snakemake/ metadata) to a fresh place, damages it, runs the remedy exactly as the error message
or README says, and compares every result file with the snapshot: NetCDF files have equal data
(``xr.testing.assert_equal``; attributes such as ``history`` may differ), the tables and the
prediction CSVs are byte-identical, the figures exist.

The time of each repair is printed (``pytest -s``) and summed up at the end of the module.
The disk-full case is a unit test of weightdyn.chunkio.write_dataset (not slow).
"""

import collections
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
#: what a clone needs for a plain `snakemake` (the workflow profile profiles/default included)
WORKFLOW_FILES = ("Snakefile", "config.yaml", "workflow", "src", "config", "profiles")
#: the command a user runs for the tiny study (in the study's folder)
SNAKEMAKE = (sys.executable, "-m", "snakemake", "--configfile", "config/tiny.yaml",
             "--cores", "2")
RESULTS = "results/tiny"
TIMEOUT = 600
#: temporary files of atomic writes (``.<name>.<pid>.tmp``): never results
TEMPORARY = re.compile(r"^\..*\.tmp$")
#: a job in Snakemake's progress output
JOB = re.compile(r"^(?:local)?rule (\w+):$", flags=re.M)

#: (case, seconds of the failing run or None, seconds of the repair run), printed at the end
TIMINGS = []


# --------------------------------------------------------------------------- helpers


def environment(workdir):
    """The environment of a snakemake run in ``workdir`` (the copy's own src/ comes first on
    every import path by itself: the Snakefile and workflow/scripts/common put it there)."""
    return dict(os.environ)


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen(workdir):
    """Start ``snakemake --configfile config/tiny.yaml --cores 2`` in ``workdir`` in its own
    process group (output merged into stdout), with SIGINT's default disposition: a test run
    started in the background by a shell without job control inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt."""
    return subprocess.Popen(SNAKEMAKE, cwd=workdir, env=environment(workdir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_default_sigint)


def run(workdir, *args, timeout=TIMEOUT):
    """Run ``snakemake --configfile config/tiny.yaml --cores 2 [args]`` in ``workdir``;
    (return code, stdout + stderr, seconds)."""
    start = time.perf_counter()
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=workdir, env=environment(workdir),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def run_ok(workdir, *args):
    code, output, elapsed = run(workdir, *args)
    assert code == 0, f"snakemake {' '.join(args)} failed ({code}):\n{output[-6000:]}"
    return output, elapsed


def result_files(workdir):
    """Files under results/ (relative POSIX paths), temporary files of atomic writes excluded."""
    root = Path(workdir) / "results"
    return {p.relative_to(workdir).as_posix() for p in root.rglob("*")
            if p.is_file() and not TEMPORARY.match(p.name)}


def temporary_files(workdir):
    return sorted(p.relative_to(workdir).as_posix() for p in (Path(workdir) / "results").rglob("*")
                  if p.is_file() and TEMPORARY.match(p.name))


def is_table(rel):
    return rel.startswith(f"{RESULTS}/tables/") and rel.endswith((".csv", ".md")) \
        or rel.startswith(f"{RESULTS}/prediction/") and rel.endswith(".csv")


def take_snapshot(workdir):
    """Every result file: NetCDF data loaded, tables (and prediction CSVs) as bytes, the rest
    (figures, provenance.json) as present."""
    snap = {}
    for rel in sorted(result_files(workdir)):
        path = Path(workdir) / rel
        if rel.endswith(".nc"):
            snap[rel] = xr.load_dataset(path)
        elif is_table(rel):
            snap[rel] = path.read_bytes()
        else:
            snap[rel] = None
    return snap


def assert_results_equal(workdir, snapshot, extra=(), allow_temporary=False):
    """Every file of the snapshot present with equal contents; no other result file but
    ``extra``; no temporary file left unless ``allow_temporary``."""
    present = result_files(workdir)
    missing = sorted(set(snapshot) - present)
    assert not missing, f"result files missing after the repair: {missing}"
    unexpected = sorted(present - set(snapshot) - set(extra))
    assert not unexpected, f"unexpected result files after the repair: {unexpected}"
    if not allow_temporary:
        assert not temporary_files(workdir), temporary_files(workdir)
    for rel, expected in snapshot.items():
        path = Path(workdir) / rel
        if rel.endswith(".nc"):
            try:
                xr.testing.assert_equal(xr.load_dataset(path), expected)
            except AssertionError as exc:
                raise AssertionError(f"{rel} differs from the snapshot: {exc}") from None
        elif is_table(rel):
            assert path.read_bytes() == expected, f"{rel} is not byte-identical to the snapshot"
        else:
            assert path.stat().st_size > 0, f"{rel} is empty"


def truncate(path):
    """Cut ``path`` to 100 kB, or to half its size if it is not larger than that."""
    size = path.stat().st_size
    os.truncate(path, 100_000 if size > 100_000 else size // 2)


def jobs(output):
    return collections.Counter(JOB.findall(output))


def all_logs(workdir):
    return "\n".join(p.read_text(errors="replace")
                     for p in sorted((Path(workdir) / "logs").rglob("*.log")))


def message_lines(text, needle):
    return [line.strip() for line in text.splitlines() if needle in line]


def error_message(text, rel):
    """The lines of the error message about ``rel`` (the exception's text with its list of
    differences), else the lines naming ``rel`` and a remedy."""
    block = re.search(rf"\w*Error: ({re.escape(rel)}[^\n]*(?:\n\s+- [^\n]*)*"
                      rf"(?:\n[^\n]*delete[^\n]*)?)", text)
    if block:
        return [line.strip() for line in block.group(1).splitlines()]
    return [line.strip() for line in text.splitlines() if rel in line and "delete" in line]


def report(case, failing=None, repair=None, messages=()):
    TIMINGS.append((case, failing, repair))
    for line in dict.fromkeys(messages):          # unique, in order
        print(f"    [{case}] message: {line[:400]}")
    parts = ([f"failing run {failing:.1f} s"] if failing is not None else []) + \
        ([f"repair {repair:.1f} s"] if repair is not None else [])
    print(f"    [{case}] {', '.join(parts)}")


def fails_naming_then_repaired(workdir, snapshot, victim, rules, case, expect=()):
    """The damaged study's next `snakemake` fails in one of ``rules`` with a message naming
    ``victim`` and saying to delete it and rerun snakemake; deleting exactly the file the
    message names and rerunning snakemake restores the snapshot."""
    rel = victim.relative_to(workdir).as_posix()
    code, output, failing = run(workdir)
    assert code != 0, f"snakemake did not fail on the damaged {rel}:\n{output[-5000:]}"
    failed = re.findall(r"Error in rule (\w+)", output)
    assert failed and set(failed) <= set(rules), \
        f"expected a failure in rule {' or '.join(rules)}, got {failed}:\n{output[-5000:]}"
    text = output + "\n" + all_logs(workdir)
    named = message_lines(text, rel)
    assert named, f"no message names {rel}:\n{output[-5000:]}"
    # "delete <file> and rerun snakemake …" / "… and run the same snakemake command again"
    remedy = re.search(r"delete (\S+?)[;,.:]?\s+(?:and|then)\b[^\n]*\bsnakemake\b", text)
    assert remedy, f"no message says to delete a file and rerun snakemake:\n{output[-5000:]}"
    assert remedy.group(1) == rel, f"the message says to delete {remedy.group(1)}, not {rel}"
    for words in expect:
        assert re.search(words, text), f"no message matches {words!r}:\n{output[-5000:]}"

    (Path(workdir) / remedy.group(1)).unlink()     # exactly the file the message names
    _, repair = run_ok(workdir)
    report(case, failing, repair, error_message(text, rel))
    assert_results_equal(workdir, snapshot)


# --------------------------------------------------------------------------- the study


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished tiny study in its own folder (with a copy of the workflow) and the snapshot
    of its results."""
    workdir = tmp_path_factory.mktemp("repair") / "study"
    workdir.mkdir()
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_dir():
            # copy2 keeps the modification times: numba's on-disk cache stays valid
            shutil.copytree(source, workdir / name,
                            ignore=shutil.ignore_patterns("*.egg-info", ".pytest_cache"))
        else:
            shutil.copy2(source, workdir / name)
    output, elapsed = run_ok(workdir)
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    print(f"\n    [study] tiny study built in {elapsed:.1f} s")
    snapshot = take_snapshot(workdir)
    assert any(rel.startswith(f"{RESULTS}/lyapunov/") for rel in snapshot), sorted(snapshot)
    yield workdir, snapshot
    if TIMINGS:
        print("\n    repair times (failing run / repair run, seconds):")
        for case, failing, repair in TIMINGS:
            f = "-" if failing is None else f"{failing:.1f}"
            r = "-" if repair is None else f"{repair:.1f}"
            print(f"      {case:<28} {f:>6} / {r:>6}")


@pytest.fixture
def damaged(study, tmp_path):
    """A fresh copy of the finished study (results, logs, .snakemake/ and the workflow)."""
    workdir, snapshot = study
    copy = tmp_path / "study"
    shutil.copytree(workdir, copy, symlinks=True)
    return copy, snapshot


# --------------------------------------------------------------------------- cases


@pytest.mark.slow
def test_truncated_lyapunov_chunk(damaged):
    """1. A truncated chunk: gather fails naming it; delete it, rerun snakemake."""
    workdir, snapshot = damaged
    victim = workdir / RESULTS / "lyapunov/tanh/uniform/chunk000.nc"
    truncate(victim)
    fails_naming_then_repaired(workdir, snapshot, victim, ["gather"], "1 truncated chunk")


@pytest.mark.slow
def test_foreign_lyapunov_chunk(damaged):
    """2. Another combination's chunk copied over a chunk: gather refuses it (written for a
    different study configuration, activation); delete it, rerun snakemake."""
    workdir, snapshot = damaged
    victim = workdir / RESULTS / "lyapunov/tanh/uniform/chunk000.nc"
    shutil.copyfile(workdir / RESULTS / "lyapunov/relu/uniform/chunk000.nc", victim)
    fails_naming_then_repaired(workdir, snapshot, victim, ["gather"], "2 foreign chunk",
                               expect=[r"different study configuration", r"activation"])


@pytest.mark.slow
def test_truncated_gathered_file(damaged):
    """3. A truncated gathered file: predict fails naming it; delete it, rerun snakemake."""
    workdir, snapshot = damaged
    victim = workdir / RESULTS / "gather/tanh/uniform.nc"
    truncate(victim)
    fails_naming_then_repaired(workdir, snapshot, victim, ["predict"], "3 truncated gather")


@pytest.mark.slow
def test_truncated_prediction_file(damaged):
    """4. A truncated prediction file (.nc): tables or figures fail naming it; delete it,
    rerun snakemake."""
    workdir, snapshot = damaged
    victim = workdir / RESULTS / "prediction/tanh/uniform.nc"
    truncate(victim)
    fails_naming_then_repaired(workdir, snapshot, victim, ["tables", "figures"],
                               "4 truncated prediction")


@pytest.mark.slow
def test_deleted_lyapunov_chunk_is_recomputed_alone(damaged):
    """5. A deleted chunk: a plain rerun recomputes it (its temporary simulate chunk first) and
    simulates nothing else."""
    workdir, snapshot = damaged
    (workdir / RESULTS / "lyapunov/tanh/uniform/chunk001.nc").unlink()
    output, repair = run_ok(workdir)
    report("5 deleted chunk", None, repair, [f"jobs: {dict(jobs(output))}"])
    ran = jobs(output)
    assert ran["simulate"] == 1 and ran["lyapunov"] == 1, \
        f"expected one simulate and one lyapunov job, ran {dict(ran)}:\n{output[-4000:]}"
    assert "wildcards: study=tiny/, act=tanh, init=uniform, chunk=001" in output, output[-4000:]
    assert "chunk=000" not in output, output[-4000:]
    assert_results_equal(workdir, snapshot)


@pytest.mark.slow
def test_deleted_figure_and_gathered_file(damaged):
    """6. A deleted figure and a deleted gathered file: a plain rerun restores both (from the
    kept chunks: nothing is simulated)."""
    workdir, snapshot = damaged
    (workdir / RESULTS / "figures/fig6_roc_curves.png").unlink()
    (workdir / RESULTS / "gather/relu/uniform.nc").unlink()
    output, repair = run_ok(workdir)
    ran = jobs(output)
    report("6 deleted figure + gather", None, repair, [f"jobs: {dict(ran)}"])
    assert ran["gather"] >= 1 and ran["figures"] == 1, dict(ran)
    assert ran["simulate"] == 0 and ran["lyapunov"] == 0, dict(ran)
    assert_results_equal(workdir, snapshot)


@pytest.mark.slow
def test_table_edited_by_hand_is_kept_and_regenerated(damaged):
    """7. auc.csv edited by hand: the next plain run warns naming it, keeps the edit as
    auc.csv.edited and regenerates auc.csv identical to the snapshot."""
    workdir, snapshot = damaged
    table = workdir / RESULTS / "tables/auc.csv"
    with open(table, "a", encoding="utf-8") as fh:
        fh.write("my,own,line\n")
    edited = table.read_bytes()
    output, repair = run_ok(workdir)
    warnings = [line.strip() for line in output.splitlines()
                if "auc.csv" in line and not re.match(r"\s*(input|output|log|reason):", line)
                and re.search(r"(?i)warn|edited|sha256|modified|changed|by hand", line)]
    report("7 edited table", None, repair, [*warnings[:3], f"jobs: {dict(jobs(output))}"])
    assert warnings, f"no warning names auc.csv:\n{output[-4000:]}"
    kept = table.with_name("auc.csv.edited")
    assert kept.is_file(), f"the edit was not kept as {kept.name}:\n{output[-4000:]}"
    assert kept.read_bytes() == edited
    assert_results_equal(workdir, snapshot, extra={f"{RESULTS}/tables/auc.csv.edited"})


@pytest.mark.slow
def test_second_snakemake_is_refused_while_one_runs(damaged):
    """8. A second `snakemake` in the same folder while one runs: Snakemake's lock refuses it
    (non-zero exit), and it changes nothing; the first run's results equal the snapshot."""
    workdir, snapshot = damaged
    (workdir / RESULTS / "figures/fig1_final_loss.png").unlink()
    start = time.perf_counter()
    first = popen(workdir)
    seen = []
    try:
        for line in first.stdout:               # until the first run's figures job has started
            seen.append(line)
            if JOB.match(line.rstrip("\n")):
                break
        else:
            pytest.fail("the first run started no job:\n" + "".join(seen)[-4000:])
        figures = workdir / RESULTS / "figures"
        before = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")
                  if p.is_file() and figures not in p.parents}
        code, output, second = run(workdir, timeout=120)
        after = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")
                 if p.is_file() and figures not in p.parents}
        assert first.poll() is None, "the first run ended before the second one was refused"
        rest, _ = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGINT)
            first.wait(60)
    repair = time.perf_counter() - start
    lock = message_lines(output, "locked") or message_lines(output, "LockException")
    report("8 second snakemake", second, repair, lock[:2])
    assert code != 0, f"the second snakemake was not refused:\n{output[-4000:]}"
    assert "Directory cannot be locked" in output or "LockException" in output, output[-4000:]
    assert not jobs(output), f"the second snakemake ran jobs: {dict(jobs(output))}"
    assert after == before, "the refused snakemake changed files under results/"
    assert first.returncode == 0, "".join(seen)[-2000:] + rest[-4000:]
    assert_results_equal(workdir, snapshot)


@pytest.mark.slow
def test_interrupted_recomputation_resumes(damaged):
    """9. Ctrl-C (SIGINT to Snakemake's process group) while the chunks of every combination are
    recomputed: no result file looks complete but is not; `snakemake --unlock` if a lock is
    left, then a plain rerun gives the snapshot."""
    workdir, snapshot = damaged
    # the chunks of every combination: the jobs take about a second each, and the interrupt must
    # arrive while some are still to run
    for chunk in (workdir / RESULTS / "lyapunov").glob("*/*/chunk*.nc"):
        chunk.unlink()
    proc = popen(workdir)
    seen, interrupted = [], False
    try:
        for line in proc.stdout:        # interrupt once the first recomputed chunk is written
            seen.append(line)
            if re.match(r"Finished jobid: \d+ \(Rule: (simulate|lyapunov)\)", line):
                os.killpg(proc.pid, signal.SIGINT)
                interrupted = True
                break
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(60)
    output = "".join(seen) + rest
    assert interrupted, f"no chunk was recomputed, nothing to interrupt:\n{output[-4000:]}"
    assert not re.search(r"(\d+) of \1 steps \(100%\) done", output), \
        f"the run finished before the interrupt took effect:\n{output[-4000:]}"
    print(f"    [9 interrupted run] snakemake exited {proc.returncode} after SIGINT")

    # nothing under results/ looks complete but is not
    for path in sorted((workdir / "results").rglob("*.nc")):
        if TEMPORARY.match(path.name):
            continue
        try:
            xr.load_dataset(path)
        except Exception as exc:      # noqa: BLE001  (any failure to read is the finding)
            pytest.fail(f"{path.relative_to(workdir)} looks complete but cannot be read: {exc}")
    from PIL import Image

    for png in sorted((workdir / "results").rglob("*.png")):
        with Image.open(png) as image:
            image.verify()
    leftovers = temporary_files(workdir)
    if leftovers:
        print(f"    [9 interrupted run] temporary files left: {leftovers}")

    locks = list((workdir / ".snakemake/locks").glob("*"))
    if locks:
        print(f"    [9 interrupted run] lock left ({len(locks)} files): snakemake --unlock")
        run_ok(workdir, "--unlock")
    output, repair = run_ok(workdir)
    report("9 interrupted run", None, repair, [f"jobs of the rerun: {dict(jobs(output))}"])
    assert_results_equal(workdir, snapshot, allow_temporary=True)


# --------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
def test_disk_full_during_write_leaves_nothing(tmp_path, monkeypatch, existing):
    """10. The disk fills up in the middle of weightdyn.chunkio.write_dataset: the OSError
    (ENOSPC) propagates, no partial file is left at the destination (an older file there stays
    as it was) and no temporary file remains."""
    from weightdyn import chunkio

    ds = xr.Dataset({"x": ("network", np.arange(10.0))},
                    coords={"network": np.arange(10)})
    targets = []

    def disk_full(self, path=None, *args, **kwargs):
        targets.append(path)
        if hasattr(path, "write"):
            path.write(b"CDF\x01" + b"\0" * 60)
        elif path is not None:
            with open(path, "wb") as fh:
                fh.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 60)     # a few bytes, then full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(xr.Dataset, "to_netcdf", disk_full)
    dest = tmp_path / "results" / "lyapunov" / "chunk000.nc"
    if existing:
        dest.parent.mkdir(parents=True)
        dest.write_bytes(b"an older complete file")
    with pytest.raises(OSError) as info:
        chunkio.write_dataset(ds, dest)
    assert info.value.errno == errno.ENOSPC
    assert targets, "write_dataset did not write through xarray.Dataset.to_netcdf"
    if existing:
        assert dest.read_bytes() == b"an older complete file", "the older file was changed"
        assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    else:
        assert not dest.exists(), "a partial file was left at the destination"
        if dest.parent.exists():
            assert sorted(p.name for p in dest.parent.iterdir()) == [], "a file remains"
    for target in targets:                   # wherever the temporary file was, it is gone
        if isinstance(target, (str, os.PathLike)) and Path(target) != dest:
            assert not Path(target).exists(), f"temporary file {target} remains"

"""The output folder's life over many runs, with real processes: one run at a time (lock), a run killed during
export leaves the previous run published and consistent, bad config touches nothing, the generated salt is
private and reused, and folder names with glob characters read only their own files."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn import catalog, outdir
from selflearn.config import PUBLIC_SALT, Config, load_config
from selflearn.pipeline import PipelineRun
from selflearn.privacy import SALT_FILE, hash_user

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def cli_args(logs: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "selflearn.cli", "run", "--logs", str(logs), "--out", str(out), "--no-progress",
            "--embedder", "hashing", *extra]


def cli(logs: Path, out: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(logs, out, *extra), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


def snapshot(out: Path) -> dict[str, bytes | str]:
    """Every entry under out, hidden ones included, without following links: file bytes or a link's target."""
    found: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(out):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(out).as_posix()
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_file():
                found[rel] = path.read_bytes()
    return found


def user_view(out: Path) -> dict[str, bytes]:
    """The data files as a user reads them through the documented paths (links followed, hidden entries and
    files that record this run's timings or are a DuckDB file left out)."""
    skip = {"manifest.json", "report.html", "catalog.duckdb"}
    found = {}
    for dirpath, dirnames, filenames in os.walk(out, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "cache"]
        for name in filenames:
            if not name.startswith(".") and name not in skip and name != "_ingested.json":
                path = Path(dirpath, name)
                found[path.relative_to(out).as_posix()] = path.read_bytes()
    return found


def published_counts(out: Path) -> dict[str, int]:
    """The weak-label count as each published output states it; a consistent run states one number."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    jsonl = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in (out / "training/massive").glob("*/*.jsonl"))
    con = catalog.connect(out)
    try:
        view = con.execute("select count(*) from weak_labels").fetchone()[0]
        view_jsonl = con.execute("select count(*) from massive").fetchone()[0]
    finally:
        con.close()
    return {"weak labels": pq.read_table(out / "training/parquet/train.parquet").num_rows,
            "massive jsonl": jsonl, "manifest": manifest["counts"]["weak_labels"],
            "manifest per locale": sum(manifest["counts"]["labels_per_locale"].values()),
            "catalog weak_labels": view, "catalog massive": view_jsonl}


def assert_consistent(out: Path) -> int:
    counts = published_counts(out)
    assert len(set(counts.values())) == 1, f"the published outputs disagree: {counts}"
    return counts["manifest"]


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := condition()):
            return found
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


# ------------------------------------------------------------------------------------------------ config first

def test_bad_config_changes_no_byte_of_the_output_folder(three_days, tmp_path):
    out = tmp_path / "out"
    ok(cli(three_days, out))
    before = snapshot(out)
    bad = {"min_users_0": "[privacy]\nmin_users = 0\n", "window_0": "[run]\nwindow_days = 0\n",
           "yes_is_no_bool": '[ingest]\nquarantine_bad_files = "yes"\n', "threshold": "[rephrase]\nthreshold = 1.5\n"}
    attempts = [("--config", str(tmp_path / f"{name}.toml")) for name in bad]
    for name, text in bad.items():
        (tmp_path / f"{name}.toml").write_text(text, encoding="utf-8")
    attempts += [("--window-days", "0"), ("--min-users", "1")]
    for extra in attempts:
        done = cli(three_days, out, *extra, timeout=120)
        assert done.returncode == 2, (extra, done.stdout[-1500:], done.stderr[-1500:])
        assert done.stderr.startswith("selflearn: config") and done.stderr.count("\n") == 1, done.stderr
        assert done.stdout == ""
        assert snapshot(out) == before, f"{extra} changed the output folder"
    fresh = tmp_path / "never"
    assert cli(three_days, fresh, "--window-days", "-1", timeout=120).returncode == 2
    assert not fresh.exists()


# ------------------------------------------------------------------------------------------------ one run at a time

def test_a_second_run_fails_fast_while_the_first_holds_the_folder(three_days, tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(cli_args(three_days, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             cwd=ROOT, start_new_session=True)
    try:
        lock = out / outdir.LOCK_FILE
        wait_for(lambda: lock.is_file() and f"pid {first.pid} " in lock.read_text(), 120, "the first run's lock",
                 first)
        os.kill(first.pid, signal.SIGSTOP)  # holds the lock, does nothing: the second run must not wait for it
        try:
            start = time.monotonic()
            second = cli(three_days, out, timeout=120)
            took = time.monotonic() - start
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2, second.stdout[-1500:] + second.stderr[-1500:]
        assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
        assert second.stderr.count("\n") == 1 and "in use by another selflearn run" in second.stderr
        assert took < 60
        assert first.wait(600) == 0, first.stdout.read()[-2000:]
    finally:
        stop(first)
        first.stdout.close()
    assert_consistent(out)
    assert (out / outdir.LOCK_FILE).read_text() == ""  # released cleanly


def test_the_lock_is_per_process_in_the_library_too(three_days, tmp_path):
    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False})
    first = PipelineRun(str(three_days), tmp_path, cfg, say=lambda m: None)
    try:
        with pytest.raises(outdir.OutputBusyError, match=f"pid {os.getpid()} on host"):
            PipelineRun(str(three_days), tmp_path, cfg, say=lambda m: None)
    finally:
        first.close()
    PipelineRun(str(three_days), tmp_path, cfg, say=lambda m: None).close()  # free again once closed
    assert not any((tmp_path / outdir.RUNS_DIR).iterdir())  # unpublished staging folders are removed


# ------------------------------------------------------------------------------------------------ atomic switch

def _weak_labels_rewritten(out: Path, old: dict[str, int]):
    """A training/parquet/train.parquet under out that this run wrote (a new file, or the old one rewritten)."""
    def check():
        for dirpath, _, filenames in os.walk(out):
            if "train.parquet" in filenames:
                st = os.stat(Path(dirpath, "train.parquet"))
                if (st.st_ino, st.st_mtime_ns) not in old.values():
                    return Path(dirpath)
        return None
    return check


def test_a_run_killed_during_export_leaves_the_previous_run_published(three_days, sample_logs, tmp_path):
    out = tmp_path / "out"
    ok(cli(three_days, out))
    labels_before = assert_consistent(out)
    published_before = snapshot(out)
    old = {dirpath: (os.stat(Path(dirpath, "train.parquet")).st_ino,
                     os.stat(Path(dirpath, "train.parquet")).st_mtime_ns)
           for dirpath, _, files in os.walk(out) if "train.parquet" in files}

    # all seven days: a run that would publish another label count
    proc = subprocess.Popen(cli_args(sample_logs, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, start_new_session=True)
    try:
        wait_for(_weak_labels_rewritten(out, old), 600, "export to write the training set", proc)
        os.killpg(proc.pid, signal.SIGKILL)  # mid-export: the other outputs are not written yet
    finally:
        stop(proc)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert assert_consistent(out) == labels_before
    for rel in ("training/parquet/train.parquet", "manifest.json", "report.html", "graph/nodes.parquet"):
        assert (out / rel).read_bytes() == _published(published_before, rel), rel

    done = ok(cli(sample_logs, out))  # the next run takes over the dead run's lock and publishes
    assert f"taking over the lock of an earlier run that did not finish (pid {proc.pid} " in done.stdout
    labels_after = assert_consistent(out)
    assert labels_after != labels_before
    assert sorted(p.name for p in (out / outdir.RUNS_DIR).iterdir() if not p.name.startswith(".")) == sorted(
        {Path(os.readlink(out / outdir.CURRENT)).name,
         Path(os.readlink(out / outdir.RUNS_DIR / ".previous")).name})  # the killed run's staging folder is gone
    assert not [p for p in out.rglob("*.tmp")]


READER = """
import json, sys, duckdb, pyarrow.parquet as pq
from pathlib import Path
from selflearn.outdir import published_dir
out, stop, result = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
seen, mixed = [], []
while not stop.exists():
    run = published_dir(out)  # resolved once per read: one run's files
    counts = [json.loads((run / "manifest.json").read_text())["counts"]["weak_labels"],
              pq.read_metadata(run / "training/parquet/train.parquet").num_rows,
              sum(len(p.read_text().splitlines()) for p in (run / "training/massive").glob("*/*.jsonl"))]
    con = duckdb.connect("catalog.duckdb", read_only=True)  # the documented way: plain DuckDB inside --out
    counts += con.execute("select (select count(*) from weak_labels), (select count(*) from massive), "
                          "(select counts.weak_labels from run_manifest)").fetchone()
    con.close()
    seen.append(counts[0])
    if len(set(counts[:3])) != 1 or len(set(counts[3:])) != 1:
        mixed.append(counts)
result.write_text(json.dumps({"seen": seen, "mixed": mixed}))
"""


def test_a_reader_process_sees_one_whole_run_at_a_time(three_days, tmp_path):
    out = tmp_path / "out"
    ok(cli(three_days, out))
    stop, result = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(out), str(stop), str(result)], cwd=out,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        for extra in ((), ("--window-days", "2"), ()):  # three switches between two different label counts
            ok(cli(three_days, out, *extra))
    finally:
        stop.touch()
        _, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err[-2000:]
    found = json.loads(result.read_text())
    assert found["mixed"] == [], f"a reader saw outputs of two runs at once: {found['mixed'][:5]}"
    assert len(set(found["seen"])) == 2, "the reader should have seen both runs"


def _published(snap: dict[str, bytes | str], rel: str) -> bytes:
    """A published file's bytes in a snapshot, found through the .current link."""
    target = snap[".current"].removeprefix("-> ")
    return snap[f"{target}/{rel}"]


def test_an_output_folder_from_before_staging_is_taken_over(three_days, tmp_path):
    out = tmp_path / "out"
    ok(cli(three_days, out))
    legacy = tmp_path / "legacy"  # the layout older versions wrote: real folders and files at the top
    shutil.copytree(out, legacy, symlinks=False, ignore=shutil.ignore_patterns(".runs", ".current"))
    assert not (legacy / "training").is_symlink()
    ok(cli(three_days, legacy))
    assert (legacy / "training").is_symlink() and assert_consistent(legacy) == assert_consistent(out)


# ------------------------------------------------------------------------------------------------ salt

def test_the_generated_salt_is_private_reused_and_keys_every_user(three_days, tmp_path):
    out = tmp_path / "out"
    first = ok(cli(three_days, out))
    salt_file = out / SALT_FILE
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    assert (first.stdout + first.stderr).count("generated a secret salt") == 1
    salt = salt_file.read_text().strip()
    assert len(salt) == 64

    raw = set(pd.concat(pd.read_parquet(p, columns=["user_id"]) for p in three_days.rglob("*.parquet"))["user_id"])
    keys = set(pd.concat(pd.read_parquet(p, columns=["user_key"]) for p in (out / "curated/turns").glob("*.parquet"))
               ["user_key"])
    assert keys == {hash_user(u, salt) for u in raw}
    assert not keys & {hash_user(u, PUBLIC_SALT) for u in raw}  # the public salt keys nobody
    for rel, blob in snapshot(out).items():  # the secret is written nowhere else (manifest, report, catalog ...)
        if rel != SALT_FILE and isinstance(blob, bytes):
            assert salt.encode() not in blob, rel

    before = user_view(out)
    second = ok(cli(three_days, out))
    assert "generated a secret salt" not in second.stdout + second.stderr  # said once
    assert salt_file.read_text().strip() == salt
    after = user_view(out)
    assert sorted(before) == sorted(after) and [r for r in before if before[r] != after[r]] == []


def test_every_entry_point_uses_the_folders_salt(three_days, tmp_path):
    """ingest called alone (as the Prefect flow's cached task and spark-submit reach it, through PipelineRun)
    and the CLI agree on one salt per folder."""
    from selflearn.stages.ingest import ingest
    out = tmp_path / "out"
    ingest(str(sorted(three_days.glob("day=*"))[0]), out, Config())
    salt = (out / SALT_FILE).read_text().strip()
    run = PipelineRun(str(three_days), out, Config(), say=lambda m: None)
    try:
        assert run.cfg.privacy.user_salt == salt
    finally:
        run.close()
    done = ok(cli(three_days, out))
    assert "generated a secret salt" not in done.stdout + done.stderr
    assert (out / SALT_FILE).read_text().strip() == salt


def test_an_empty_salt_is_rejected(three_days, tmp_path):
    config = tmp_path / "empty.toml"
    config.write_text('[privacy]\nuser_salt = ""\n', encoding="utf-8")
    done = cli(three_days, tmp_path / "out", "--config", str(config), timeout=120)
    assert done.returncode == 2 and "privacy.user_salt" in done.stderr and "empty" in done.stderr
    assert not (tmp_path / "out").exists()

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / SALT_FILE).write_text("\n")
    done = cli(three_days, damaged, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "is empty" in done.stderr, done.stderr
    assert sorted(p.name for p in damaged.iterdir()) == [SALT_FILE, outdir.LOCK_FILE]


# ------------------------------------------------------------------------------------------------ glob characters

@pytest.mark.parametrize("name,sibling", [("run[1]", "run1"), ("r?n", "ran"), ("run*x", "run-sibling-x")])
def test_catalog_of_a_folder_named_like_a_glob_reads_only_its_own_files(three_days, tmp_path, name, sibling):
    base = tmp_path / "runs"
    odd = base / name
    ok(cli(three_days, odd))
    shutil.copytree(odd, base / sibling, symlinks=True)
    own = pq.read_table(odd / "training/parquet/train.parquet")
    # the sibling holds more rows in every output a glob could pick up
    pq.write_table(pa.concat_tables([own, own]), base / sibling / "training/parquet/train.parquet")
    for jsonl in (base / sibling / "training/massive").glob("*/*.jsonl"):
        jsonl.write_text(jsonl.read_text() * 2)
    (base / sibling / "training/massive/train/xx-XX.jsonl").write_text((odd / "training/massive/train/en-US.jsonl").read_text())

    from selflearn.cli import main
    assert main(["catalog", "--out", str(odd)]) == 0
    assert assert_consistent(odd) == own.num_rows


def test_duckdb_errors_in_the_catalog_are_one_line(three_days, tmp_path):
    out = tmp_path / "out"
    ok(cli(three_days, out))
    (out / "manifest.json").write_text("{not json")
    done = subprocess.run([sys.executable, "-m", "selflearn.cli", "catalog", "--out", str(out)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and done.stderr.startswith("selflearn: cannot write the catalog")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr

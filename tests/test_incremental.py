"""Incremental daily runs into one output folder: equal to one run over all days, idempotent, and a run
killed with SIGKILL between or inside stages ends, once re-run, with an uninterrupted run's outputs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from selflearn import pipeline
from selflearn.config import load_config
from selflearn.pipeline import STAGES
from selflearn.privacy import SALT_FILE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.extended]
# released and internal outputs that must not depend on how the days were fed in
TABLES = ("training/parquet/train.parquet", "rephrases/pairs.parquet", "graph/nodes.parquet", "graph/edges.parquet",
          "work/daily/scored_pairs")


def run(logs: Path | str, out: Path, backend: str = "hashing") -> dict:
    # one salt for every folder: outputs of different folders are compared, and user keys depend on the salt
    cfg = load_config(None, {"embedding.backend": backend, "run.progress": False, "privacy.user_salt": "test-salt"})
    return pipeline.run(str(logs), out, cfg, say=lambda m: None).manifest


# a label's lifecycle remembers when it was first emitted: fed day by day that is the day its evidence first
# sufficed, fed at once the one run's last day (selflearn/lifecycle.py); everything else must agree
RUN_HISTORY_COLUMNS = ("state", "first_labelled")


def assert_same_outputs(a: Path, b: Path, *, same_history: bool = True) -> None:
    for rel in TABLES:
        ta, tb = pq.read_table(a / rel), pq.read_table(b / rel)
        if not same_history and rel.startswith("training/"):
            # rows are in (locale, utt_norm) order in both: fed day by day, a label is never learned later
            assert all(x <= y for x, y in zip(ta.column("first_labelled").to_pylist(),
                                              tb.column("first_labelled").to_pylist()))
            ta, tb = ta.drop_columns(list(RUN_HISTORY_COLUMNS)), tb.drop_columns(list(RUN_HISTORY_COLUMNS))
        assert ta.equals(tb), f"{rel} differs: {ta.num_rows} vs {tb.num_rows} rows"
    massive_a = sorted(p.relative_to(a).as_posix() for p in (a / "training").rglob("*.*") if p.suffix != ".parquet")
    assert massive_a == sorted(p.relative_to(b).as_posix() for p in (b / "training").rglob("*.*")
                               if p.suffix != ".parquet")
    for rel in massive_a:  # the MASSIVE files and the card
        assert (a / rel).read_text() == (b / rel).read_text(), rel
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["counts"] == mb["counts"] and ma["funnel"] == mb["funnel"]


def test_day_by_day_equals_all_days_at_once(three_days, tmp_path):
    daily = tmp_path / "daily"
    for day in sorted(three_days.glob("day=*")):
        manifest = run(day, daily)
        assert manifest["rows"]["by_status"] == {"ingested": 1}  # only the new partition is read
    run(three_days, tmp_path / "at_once")
    assert_same_outputs(daily, tmp_path / "at_once", same_history=False)
    # the curated turns are the same files too (one per input file, named by its path under the logs root)
    names = sorted(p.name for p in (daily / "curated/turns").glob("*.parquet"))
    assert len(names) == 3 and names == sorted(p.name for p in (tmp_path / "at_once/curated/turns").glob("*.parquet"))


def test_rerunning_a_day_is_idempotent_with_default_embedder(three_days, tmp_path):
    day, out = sorted(three_days.glob("day=*"))[0], tmp_path / "out"
    first = run(day, out, backend="use-onnx")
    before = {p.relative_to(out): p.read_bytes() for p in _data_files(out)}
    shards = sorted((out / "cache").rglob("*.npz"))
    second = run(day, out, backend="use-onnx")
    after = {p.relative_to(out): p.read_bytes() for p in _data_files(out)}
    assert sorted((out / "cache").rglob("*.npz")) == shards  # nothing new went into the embedding cache

    assert first["embedding"]["embedded"] == first["embedding"]["unique_texts"] > 0
    assert second["embedding"]["embedded"] == 0
    assert second["embedding"]["cache_hits"] == second["embedding"]["unique_texts"]
    assert second["rows"]["by_status"] == {"skipped_unchanged": 1}
    assert sorted(before) == sorted(after)
    changed = [str(rel) for rel in before if before[rel] != after[rel]]
    assert changed == [], f"re-running the same day rewrote {changed} with different bytes"
    for key in ("counts", "funnel", "config_fingerprint"):
        assert first[key] == second[key]


def _data_files(out: Path) -> list[Path]:
    """Every output except the ones that record this run's timings (manifest, report) or are a DuckDB file."""
    skip = {"manifest.json", "report.html", "catalog.duckdb", "_ingested.json"}
    return sorted(p for p in _user_view(out) if p.name not in skip and "cache" not in p.parts)


def _user_view(out: Path) -> list[Path]:
    """Every file under out as a user reaches it: through the published links (training/ -> .current/...),
    leaving out the hidden run folders, lock and salt (selflearn.outdir)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(out, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not (Path(dirpath) == out and f.startswith("."))]
    return found


# ------------------------------------------------------------------------------------------------ SIGKILL

@pytest.fixture(scope="module")
def uninterrupted(sample_logs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    _cli(sample_logs, out, timeout=600)
    return out


def _cli_args(logs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "selflearn.cli", "run", "--logs", str(logs), "--out", str(out), "--no-progress"]


def _cli(logs: Path, out: Path, timeout: float) -> None:
    done = subprocess.run(_cli_args(logs, out), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.parametrize("kill_at", ["ingest", "embed", "labels", "export"])
def test_killed_run_resumes_to_the_same_outputs(sample_logs, uninterrupted, tmp_path, kill_at):
    """`selflearn run` (default embedder) is SIGKILLed as soon as it announces stage `kill_at`, then re-run."""
    out = tmp_path / "out"
    out.mkdir()  # the uninterrupted run's salt, so that both folders key users alike
    shutil.copy2(uninterrupted / SALT_FILE, out / SALT_FILE)
    marker = f"[{STAGES.index(kill_at) + 1:>2}/{len(STAGES)}] {kill_at}"
    proc = subprocess.Popen(_cli_args(sample_logs, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT, start_new_session=True)
    seen = []
    try:
        deadline = time.monotonic() + 600
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(marker):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(seen)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, f"run ended before stage {kill_at}:\n{''.join(seen)[-2000:]}"

    _cli(sample_logs, out, timeout=600)
    assert_same_outputs(out, uninterrupted)
    rows = [json.loads((d / "manifest.json").read_text())["rows"] for d in (out, uninterrupted)]
    for r in rows:  # by_status differs: the re-run skips the files the killed run had finished
        r.pop("by_status")
    assert rows[0] == rows[1]
    # A write cut short by SIGKILL leaves a hidden temporary file; the re-run sweeps them, so after it the
    # folder holds nothing an uninterrupted run would not write (the embedding cache may hold extra shards).
    outputs = {p.relative_to(uninterrupted) for p in _user_view(uninterrupted)}
    strays = [p.relative_to(out) for p in _user_view(out) if p.relative_to(out) not in outputs]
    unexpected = [str(p) for p in strays if p.parts[:2] != ("cache", "embeddings")]
    assert unexpected == [], f"files an uninterrupted run does not write: {unexpected}"
    # the killed run's staging folder and temporary files are gone; only the published run is left
    assert [p.name for p in (out / ".runs").iterdir()] == [Path(os.readlink(out / ".current")).name]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == sorted(
        p.name for p in uninterrupted.iterdir() if p.name.startswith("."))
    assert not list(out.rglob("*.tmp"))

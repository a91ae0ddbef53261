"""Prefect 3 flow `selflearn-daily`: one task per pipeline stage over one in-process `PipelineRun`.

    selflearn_daily(logs_root, out_root, date=None, engine="duckdb", config_path=None)

`date` (YYYY-MM-DD) mines only the partition logs_root/day=<date>; None mines every partition (ingest
skips files it has seen, so that is the newest data). Daily runs share one out_root: curated turns, the
embedding cache and the statistics window accumulate there (see docs/OPERATIONS.md).

Caching on input fingerprints. Every stage task's cache key is its name plus one fingerprint of what a run's
outputs depend on: the input files (name, size, mtime), the full config, the engine, the selflearn code (a hash
of the package's source, SQL and weights) and the output folder. It leaves out the ingest ledger and curated
files, which every run rewrites. A cache hit is only sound while the published run is the one those inputs
produced, so the flow records the fingerprint in the run folder it published (FLOW_INPUTS_FILE) and refreshes
every stage's cache (runs them all) unless the published run carries the same fingerprint: a changed file,
config or code, a run published by the CLI in between, or a run that failed part-way all run every stage.
Stages hand each other in-memory state (DuckDB relations, vectors, frames) on the PipelineRun, so a stage that
misses after earlier stages hit first runs those earlier stages again in its own task (a cache entry expired
or removed): a hit skips work, never the state a later stage needs.

Fault drill: SELFLEARN_FAULT_DRILL="<stage>:<token file>" makes that stage's task raise while the token file
exists; the file holds how many attempts fail (default 1) and each failure counts it down, then removes it.
Operators use it to watch retries work in their own deployment; tests/test_flows.py uses it to fail a task.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.tasks import exponential_backoff

import selflearn
from selflearn import io, outdir, privacy, report
from selflearn.config import load_config
from selflearn.layout import RunLayout
from selflearn.pipeline import STAGES, PipelineRun
from selflearn.sqlfiles import SQL_DIR
from selflearn.stages.ingest import settings_fingerprint

FLOW_INPUTS_FILE = ".flow-inputs.json"  # in the published run folder: the fingerprint that produced it
FAULT_DRILL_ENV = "SELFLEARN_FAULT_DRILL"

# Retries: a stage that fails (a file system hiccup, a killed worker thread, an out-of-memory embed batch)
# runs again with jittered exponential backoff (10 s, 20 s, 40 s). Every stage can be rerun on the same
# PipelineRun: it recomputes its outputs from the previous stages' state and writes files atomically.
STAGE_RETRIES = 3
STAGE_RETRY_DELAYS_S = exponential_backoff(backoff_factor=10)(STAGE_RETRIES)
# Timeouts: generous ceilings that only stop a stage that hangs (a stuck mount, a deadlocked engine), sized
# from docs/BENCHMARKS.md (1M turns: embedding of new texts takes hours on CPU, every other stage minutes).
STAGE_TIMEOUT_S = {"ingest": 4 * 3600, "embed": 12 * 3600}
DEFAULT_STAGE_TIMEOUT_S = 2 * 3600
# The flow is retried once, later, for what outlasts the task retries (a volume away for minutes); a bad
# date is refused by parameter validation before the run starts, so it is never retried.
FLOW_RETRIES = 1
FLOW_RETRY_DELAY_S = 300


class FaultDrill(RuntimeError):
    """Raised on purpose by SELFLEARN_FAULT_DRILL."""


# ------------------------------------------------------------------------------------------------ fingerprints

def input_fingerprint(run: PipelineRun) -> str:
    """One hash of everything a run's outputs depend on, and nothing a run itself rewrites. size+mtime, not
    sha256, per input file: hashing every file again would cost what the cache saves. The config enters as the
    manifest's fingerprint, which leaves out the user-key salt (a hash of a secret must not travel), plus ingest's
    settings fingerprint, which holds the salt only as a hash: a new salt gives new user keys."""
    root, files = io.find_inputs(run.logs)
    parts = [selflearn.__version__, code_fingerprint(), str(run.out.resolve()), str(Path(run.logs).resolve()),
             privacy.config_fingerprint(run.cfg), settings_fingerprint(run.cfg), run.cfg.run.engine]
    parts += [f"{io.relative_name(f, root)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def code_fingerprint() -> str:
    """The selflearn code that would run: an edited stage or SQL statement must not be answered from a cache
    filled by the old code, version bump or not."""
    package = Path(selflearn.__file__).parent
    digest = hashlib.sha256()
    for folder, patterns in ((package, ("*.py", "*.json")), (SQL_DIR, ("*.sql",))):
        for path in sorted(p for pattern in patterns for p in folder.rglob(pattern)):
            digest.update(f"{path.relative_to(folder).as_posix()}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def published_fingerprint(out: str | Path) -> str | None:
    """The fingerprint recorded in the published run folder, or None (no run, or one the flow did not make)."""
    record = outdir.published_dir(out) / FLOW_INPUTS_FILE
    try:
        return json.loads(record.read_text(encoding="utf-8"))["fingerprint"]
    except (OSError, ValueError, KeyError):
        return None


def stage_cache_key(context, parameters: dict) -> str:
    return f"selflearn-{parameters['name']}-{parameters['fingerprint']}"


# ------------------------------------------------------------------------------------------------ tasks

@task(cache_key_fn=stage_cache_key, persist_result=True, retries=STAGE_RETRIES,
      retry_delay_seconds=STAGE_RETRY_DELAYS_S, retry_jitter_factor=0.5)
def stage(run: PipelineRun, name: str, fingerprint: str) -> dict[str, Any]:
    """Runs stage `name`, after any earlier stage this process skipped as a cache hit (its state is needed)."""
    logger = get_run_logger()
    _fault_drill(name)
    for earlier in STAGES[:STAGES.index(name)]:
        if earlier not in run.timings:
            logger.info("%s: running %s first (it was a cache hit, and %s needs its state)", name, earlier, name)
            run.stage(earlier)
    result = run.stage(name)
    if name == "ingest":
        logger.info("ingest: %s", result)
    logger.info("%s done in %.2fs", name, run.timings[name])
    return {"stage": name, "seconds": run.timings[name], "fingerprint": fingerprint}


STAGE_TASKS = {name: stage.with_options(name=name, timeout_seconds=STAGE_TIMEOUT_S.get(name, DEFAULT_STAGE_TIMEOUT_S))
               for name in STAGES}


def _fault_drill(name: str) -> None:
    drill = os.environ.get(FAULT_DRILL_ENV, "")
    stage_name, _, token = drill.partition(":")
    if stage_name != name or not token:
        return
    path = Path(token)
    try:
        remaining = int(path.read_text(encoding="utf-8").strip() or 1)
    except FileNotFoundError:
        return  # the drill is over
    if remaining <= 1:
        path.unlink()
    else:
        path.write_text(f"{remaining - 1}\n", encoding="utf-8")
    raise FaultDrill(f"fault drill ({FAULT_DRILL_ENV}): stage {name} fails on purpose, "
                     f"{remaining - 1} more time(s) after this; remove {path} to stop it")


# ------------------------------------------------------------------------------------------------ the flow

@flow(name="selflearn-daily", retries=FLOW_RETRIES, retry_delay_seconds=FLOW_RETRY_DELAY_S)
def selflearn_daily(logs_root: str, out_root: str, date: dt.date | None = None, engine: str = "duckdb",
                    config_path: str | None = None) -> dict:
    """Mine logs_root (or its day=<date> partition) into out_root; returns the published manifest's counts and
    the stages that ran (none when every stage was a cache hit)."""
    logger = get_run_logger()
    logs = str(Path(logs_root) / f"day={date.isoformat()}") if date else logs_root
    cfg = load_config(config_path, {"run.engine": engine, "run.progress": False})
    run = PipelineRun(logs, out_root, cfg, say=lambda message: get_run_logger().info(message))
    try:  # the run holds the folder's lock from here: the published run cannot change under the check below
        fingerprint = input_fingerprint(run)
        up_to_date = published_fingerprint(out_root) == fingerprint
        logger.info("inputs %s: %s", fingerprint, "the published run was made from them (stages may be cache hits)"
                    if up_to_date else "not the published run's (every stage runs)")
        for name, stage_task in STAGE_TASKS.items():
            stage_task.with_options(refresh_cache=not up_to_date)(run, name, fingerprint)
        if "export" in run.timings:  # this run published a new run folder
            io.atomic_write_json({"fingerprint": fingerprint, "logs": logs},
                                 outdir.published_dir(out_root) / FLOW_INPUTS_FILE)
        ran = [name for name in STAGES if name in run.timings]
    finally:
        run.close()
    manifest = json.loads(RunLayout(out_root).manifest.read_text(encoding="utf-8"))
    summary = report.markdown_summary(manifest, report.read_eval(out_root))
    create_markdown_artifact(key="selflearn-run", markdown=summary, description=f"selflearn funnel and quality, {logs}")
    create_table_artifact(key="selflearn-funnel", table=report.funnel_rows(manifest),
                          description="turns -> pairs -> rephrases -> failing utterances -> labels, per locale")
    return {"out_root": str(Path(out_root).resolve()), "logs": logs, "counts": manifest["counts"],
            "fingerprint": fingerprint, "stages_run": ran}

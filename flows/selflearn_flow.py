"""Prefect 3 flow `selflearn-daily`: one task per pipeline stage over one in-process `PipelineRun`.

    selflearn_daily(logs_root, out_root, date=None, engine="duckdb", config_path=None)

`date` (YYYY-MM-DD) mines only the partition logs_root/day=<date>; None mines every partition (ingest
skips files it has seen, so that is the newest data). Daily runs share one out_root: curated turns, the
embedding cache and the statistics window accumulate there (see docs/OPERATIONS.md).

Caching: only ingest is cached. Every other stage hands the next one in-memory state (DuckDB relations,
vectors, frames) on the PipelineRun object; a cached task would skip the code that sets that state and
the next stage would fail or read stale data. Ingest's state lives on disk (curated turns, the ingest
ledger), and its result, the IngestReport, is plain data that Prefect can persist and hand back.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

import selflearn
from selflearn import io, privacy, report
from selflearn.config import load_config
from selflearn.pipeline import STAGES, PipelineRun
from selflearn.stages.ingest import INGEST_VERSION, IngestReport, settings_fingerprint


def ingest_cache_key(context, parameters: dict) -> str:
    """Changes when an input file (name, size, mtime), the config, the code version or the run folder's ingest
    state changes. size+mtime, not sha256: hashing every file again would cost what the cache saves."""
    run: PipelineRun = parameters["run"]
    root, files = io.find_inputs(run.logs)
    # the config fingerprint leaves the salt out (it is published); ingest's settings fingerprint covers it
    parts = [selflearn.__version__, INGEST_VERSION, str(run.out.resolve()), privacy.config_fingerprint(run.cfg),
             settings_fingerprint(run.cfg)]
    parts += [f"{io.relative_name(f, root)}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    parts += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
              for p in sorted(run.layout.curated_turns.glob("*.parquet"))]
    state = run.layout.ingest_state
    parts.append(hashlib.sha256(state.read_bytes()).hexdigest() if state.is_file() else "no-state")
    return "selflearn-ingest-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


# Retries: a stage that fails (a file system hiccup, a killed worker thread, an out-of-memory embed batch)
# runs again with jittered exponential backoff (10 s, 20 s, 40 s). Every stage can be rerun on the same
# PipelineRun: it recomputes its outputs from the previous stages' state and writes files atomically.
STAGE_RETRIES = 3
STAGE_RETRY_DELAYS_S = exponential_backoff(backoff_factor=10)(STAGE_RETRIES)
# Timeouts: generous ceilings that only stop a stage that hangs (a stuck mount, a deadlocked engine), sized
# from docs/BENCHMARKS.md (1M turns: embedding of new texts takes hours on CPU, every other stage minutes).
STAGE_TIMEOUT_S = {"ingest": 4 * 3600, "embed": 12 * 3600}
DEFAULT_STAGE_TIMEOUT_S = 2 * 3600


@task(name="ingest", retries=STAGE_RETRIES, retry_delay_seconds=STAGE_RETRY_DELAYS_S, retry_jitter_factor=0.5,
      timeout_seconds=STAGE_TIMEOUT_S["ingest"], cache_key_fn=ingest_cache_key, persist_result=True)
def ingest(run: PipelineRun) -> IngestReport:
    """I/O-bound, retried: reads new log files, writes curated turns and quarantine (atomic per file)."""
    totals = run.stage("ingest")
    get_run_logger().info("ingest: %s", totals)
    return run.report


@task(cache_policy=NO_CACHE, persist_result=False)
def stage(run: PipelineRun, name: str) -> None:
    run.stage(name)
    get_run_logger().info("%s done in %.2fs", name, run.timings[name])


STAGE_TASKS = {name: stage.with_options(name=name, retries=STAGE_RETRIES, retry_delay_seconds=STAGE_RETRY_DELAYS_S,
                                         retry_jitter_factor=0.5,
                                         timeout_seconds=STAGE_TIMEOUT_S.get(name, DEFAULT_STAGE_TIMEOUT_S))
               for name in STAGES if name != "ingest"}


# No flow-level retry: Prefect 3 retries a flow on any exception, so a bad parameter (date="../etc") would
# wait and fail again; transient faults are retried per task above, and the next scheduled run resumes.
@flow(name="selflearn-daily")
def selflearn_daily(logs_root: str, out_root: str, date: str | None = None, engine: str = "duckdb",
                    config_path: str | None = None) -> dict:
    """Mine logs_root (or its day=<date> partition) into out_root; returns the manifest's counts."""
    logs = str(Path(logs_root) / f"day={dt.date.fromisoformat(date).isoformat()}") if date else logs_root
    cfg = load_config(config_path, {"run.engine": engine, "run.progress": False})
    run = PipelineRun(logs, out_root, cfg, say=lambda message: get_run_logger().info(message))
    try:
        run.report = ingest(run)  # on a cache hit the task body did not run: hand its report to the run
        for name, stage_task in STAGE_TASKS.items():  # window ... export, in STAGES order
            stage_task(run, name)
        manifest = run.manifest()
    finally:
        run.close()
    summary = report.markdown_summary(manifest, report.read_eval(out_root))
    create_markdown_artifact(key="selflearn-run", markdown=summary, description=f"selflearn funnel and quality, {logs}")
    create_table_artifact(key="selflearn-funnel", table=report.funnel_rows(manifest),
                          description="turns -> pairs -> rephrases -> failing utterances -> labels, per locale")
    return {"out_root": str(Path(out_root).resolve()), "logs": logs, "counts": manifest["counts"]}

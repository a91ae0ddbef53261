"""The ordered stages of a run, on one engine, with timings, checked datasets and a manifest.

Each stage (selflearn.stages.base.Stage) names the datasets it reads and writes; `STAGE_LIST` is the run
order and `PipelineRun` the loop: it times each stage, keeps the datasets by name and checks each output
against its schema in `selflearn.contract.DATASET_SCHEMAS`. Every output is written atomically; a re-run
over the same inputs gives identical outputs, and a run killed at any point and restarted ends with the
same outputs (ingest skips finished files, the embedding cache keeps finished vectors, everything
downstream is recomputed from curated data). A run holds the output folder's lock from start to end, writes
what it publishes into a staging folder and switches it in at the end of export (selflearn.outdir):
readers see the previous run or this one, never a mix. docs/ARCHITECTURE.md maps the stages.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from selflearn import contract, outdir, privacy
from selflearn.config import Config
from selflearn.engines import get_engine
from selflearn.layout import RunLayout
from selflearn.stages.aggregate import EDGES, NODES
from selflearn.stages.base import Context, Stage
from selflearn.stages.embed import EMBED
from selflearn.stages.export import EXPORT
from selflearn.stages.friction import FRICTION, PAIRS, WINDOW
from selflearn.stages.graph import GRAPH
from selflearn.stages.ingest import INGEST
from selflearn.stages.labels import LABELS
from selflearn.stages.rephrase import REPHRASE
from selflearn.stages.variants import VARIANTS

STAGE_LIST: tuple[Stage, ...] = (INGEST, WINDOW, FRICTION, PAIRS, EMBED, REPHRASE, NODES, EDGES, VARIANTS, GRAPH,
                                 LABELS, EXPORT)
STAGES = tuple(stage.name for stage in STAGE_LIST)  # names in run order (progress lines, flow tasks, report)
# What a finished run hands back (result(), report), kept however late a stage made it
RESULT_DATASETS = frozenset({"ingest_report", *STAGE_LIST[-1].outputs})


def last_readers() -> dict[str, int]:
    """Dataset name -> index in STAGE_LIST of the last stage that reads it."""
    return {name: index for index, stage in enumerate(STAGE_LIST) for name in stage.inputs}


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict
    labels: pd.DataFrame
    funnel: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


class PipelineRun:
    """One run: the engine, the output folder's lock and staging folder, and the datasets by name.

    `stage(name)` runs one stage on the datasets of the stages before it (Prefect wraps each in a task);
    `run_all()` runs them in order. `cfg` is validated on construction (pydantic), before the folder is
    touched; the run's `layout` names the staging folder (`layout.run`) and the state kept across runs
    (`layout.out`: curated turns, quarantine, the embedding cache)."""

    def __init__(self, logs: str, out_dir: str | Path, cfg: Config, say: Callable[[str], None] = print,
                 engine_options: dict | None = None, keep_datasets: bool = False):
        self.logs, self.out, self.say = logs, Path(out_dir), say
        # A dataset no later stage reads is dropped after the stage that read it last: at 1 M turns the turn
        # tables (~2.5 GB) and the vectors (~0.5 GB) would otherwise live until the end of the run.
        # keep_datasets=True keeps all of them, for callers that inspect a stage's inputs afterwards.
        self.keep_datasets = keep_datasets
        if self.out.exists() and not self.out.is_dir():
            raise FileNotFoundError(f"--out {self.out} is a file; give a folder (it is created if missing)")
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = outdir.OutputLock(self.out, say)
        self.ctx: Context | None = None
        self.layout: RunLayout | None = None
        try:
            outdir.sweep(self.out)
            self.cfg = privacy.with_salt(cfg, self.out, say)
            self.layout = RunLayout(self.out, outdir.new_run_dir(self.out))
            options = dict(engine_options or {})
            if cfg.run.engine == "spark":
                options.setdefault("master", cfg.run.spark_master)
            self.ctx = Context(get_engine(cfg.run.engine, **options), self.cfg, self.layout, say)
        except BaseException:
            self.close()
            raise
        self.datasets: dict[str, Any] = {"logs": logs}

    @property
    def engine(self):
        return self.ctx.engine if self.ctx is not None else None

    @property
    def timings(self) -> dict[str, float]:
        return self.ctx.timings

    @property
    def report(self):
        """Ingest's report; the flow hands it back here when its cached ingest task did not run."""
        return self.datasets["ingest_report"]

    @report.setter
    def report(self, value) -> None:
        self.datasets["ingest_report"] = value

    def stage(self, name: str) -> dict[str, Any]:
        """Run stage `name` on the datasets so far, check its outputs, keep them; returns them."""
        index = STAGES.index(name)
        stage = STAGE_LIST[index]
        self.say(f"[{index + 1:>2}/{len(STAGES)}] {name} ...")
        start = time.perf_counter()
        self.ctx.engine.stage = name
        produced = stage(self.ctx, self.datasets)
        for dataset, data in produced.items():
            contract.check_dataset(dataset, data, name)
        self.datasets.update(produced)
        if not self.keep_datasets:
            self._drop_read_for_the_last_time(index)
        self.timings[name] = round(time.perf_counter() - start, 3)
        return produced

    def _drop_read_for_the_last_time(self, index: int) -> None:
        readers = last_readers()
        for dataset in list(self.datasets):
            if dataset not in RESULT_DATASETS and readers.get(dataset, -1) <= index:
                del self.datasets[dataset]

    def run_all(self) -> RunResult:
        try:
            for name in STAGES:
                self.stage(name)
            return self.result()
        finally:
            self.close()

    def close(self) -> None:
        """Free the engine and the lock; a run that did not publish removes its staging folder."""
        try:
            if self.ctx is not None and self.ctx.engine is not None:
                self.ctx.engine.close()
                self.ctx.engine = None
        finally:
            if self.layout is not None and not outdir.is_complete(self.layout.run):
                shutil.rmtree(self.layout.run, ignore_errors=True)
            self.lock.release()

    def manifest(self) -> dict:
        """The manifest export wrote, with every stage's full time (export's own included)."""
        return {**self.datasets["manifest"], "timings_s": dict(self.timings)}

    def result(self) -> RunResult:
        return RunResult(self.out, self.manifest(), self.datasets["released_labels"], self.datasets["funnel"],
                         dict(self.timings))


def run(logs: str, out_dir: str | Path, cfg: Config, say: Callable[[str], None] = print,
        engine_options: dict | None = None) -> RunResult:
    return PipelineRun(logs, out_dir, cfg, say, engine_options).run_all()

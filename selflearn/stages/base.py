"""One shape for every stage: a name, the named datasets it reads and writes, and a function.

    Stage("pairs", inputs=("turn_friction",), outputs=("turn_pairs",), run=turn_pairs_stage)
    run(ctx, turn_friction=...) -> {"turn_pairs": ...}

A dataset is whatever the stage hands on: an engine relation (a DuckDB Arrow table, a Spark DataFrame),
a pandas frame, or plain data (vectors, masks, an ingest report). Those with a schema in
`selflearn.contract.DATASET_SCHEMAS` are checked when a stage returns them (selflearn.pipeline), so a stage
can be run and tested alone given its inputs, and the data contract between stages is written down.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from selflearn.config import Config
from selflearn.engines.base import Engine
from selflearn.layout import RunLayout


@dataclass
class Context:
    """What every stage may use besides its datasets: the engine, the (salted) config, the run's paths and
    where progress goes. `timings` is the run's clock (stage name -> seconds), read by export for the manifest."""
    engine: Engine
    cfg: Config
    layout: RunLayout
    say: Callable[[str], None] = print
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[..., dict[str, Any]]  # run(ctx, **inputs) -> {output name: dataset}

    def __call__(self, ctx: Context, datasets: dict[str, Any]) -> dict[str, Any]:
        """Run on the named inputs taken from `datasets`; returns exactly the declared outputs."""
        missing = [name for name in self.inputs if name not in datasets]
        if missing:
            raise KeyError(f"stage {self.name!r} needs dataset(s) {missing} that no earlier stage produced; "
                           "run the stages in pipeline order (selflearn.pipeline.STAGE_LIST)")
        produced = self.run(ctx, **{name: datasets[name] for name in self.inputs})
        if set(produced) != set(self.outputs):
            raise ValueError(f"stage {self.name!r} returned {sorted(produced)}, declared {sorted(self.outputs)}")
        return produced

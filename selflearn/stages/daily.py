"""Day partitions: a daily run computes the days whose inputs changed and reuses every other day.

    plan_days(file_days, window_days, settings, previous_ledger, reusable) -> DayPlan   (pure)
    plan(ctx, curated_files) -> DayPlan           reads the curated files' days and the previous run's ledger
    store(ctx, plan, dataset, fresh_rows)         writes the fresh days, links the reused ones
    load(ctx, plan, dataset) -> relation          the window's days of a dataset

Per-turn-pair work (turn pairs and their rephrase scores), the window's texts per day (sql/day_texts.sql) and the
per-day statistics the window's nodes and edges are aggregated from (sql/node_days.sql, sql/edge_days.sql) are
kept per UTC day in the run folder:

    <run>/work/daily/<dataset>/<day>.parquet   one day of day_texts, scored_pairs, node_days, edge_days,
                                                locale_days
    <run>/work/daily/_days.json                 per day: the fingerprint of its inputs; per curated file: its days

Per-turn friction is not kept: the stages that read it run in the run that computes its days. Runs before
2026-12-03 also wrote `work/daily/turn_friction/`; a run neither reads nor links it, so it stays only in the run
folders that wrote it, which outdir's retention removes (the previous run is kept for readers, then swept).

A day's fingerprint covers the curated files holding it and its two neighbour days (sessions and turn pairs cross
midnight: a turn's friction reads the next turn, a pair's second turn may fall on the next day), the settings
that per-day rows depend on (a neighbour outside the window is no context: a run from scratch would not see it). A run recomputes the days whose fingerprint changed (the
new day, the day before it, a past day a late file landed on, and its neighbours) and hard-links the others from
the previous published run, so it does work for one day, not for the window; the aggregation over the window
reads the per-day rows (a scan, no sessions, no scoring). Recomputing a day gives the bytes a run from scratch
would: every statement is a function of the day and its neighbours. Sessions longer than a day, rare, are cut at
the context's edge.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import contract, outdir
from selflearn.io import atomic_write_json
from selflearn.layout import RunLayout
from selflearn.stages.base import Context

DAILY_VERSION = 1   # bump when a per-day statement changes: every day is recomputed once
# (a dataset dropped from here changes no statement: the days of an older run stay reusable)
DAY_DATASETS: dict[str, pa.Schema] = {
    "day_texts": contract.DAY_TEXTS_SCHEMA,
    "scored_pairs": contract.REPHRASE_PAIRS_SCHEMA,
    "node_days": contract.NODE_DAYS_SCHEMA,
    "edge_days": contract.EDGE_DAYS_SCHEMA,
    "locale_days": contract.LOCALE_DAYS_SCHEMA,
}


@dataclass
class DayPlan:
    """The window's days, which of them this run computes, and each day's decay weight."""
    window: list[str]                        # days with turns in the window, oldest first
    fresh: list[str]                         # days this run computes (the others are reused)
    fingerprints: dict[str, str]             # day -> fingerprint of its inputs
    file_days: dict[str, dict]               # curated file name -> {"stamp": ..., "days": [...]}
    weights: dict[str, float] = field(default_factory=dict)
    previous: RunLayout | None = None        # where reused partitions come from

    @property
    def reused(self) -> list[str]:
        fresh = set(self.fresh)
        return [d for d in self.window if d not in fresh]

    def context(self, days: list[str]) -> list[str]:
        """`days` and their neighbour days in the window: what computing them reads."""
        window = set(self.window)
        return sorted({n for d in days for n in (_shift(d, -1), d, _shift(d, 1)) if n in window})

    def summary(self) -> dict:
        return {"window": [self.window[0], self.window[-1]] if self.window else [], "days": len(self.window),
                "recomputed": list(self.fresh), "reused": len(self.reused)}

    def ledger(self) -> dict:
        return {"version": DAILY_VERSION, "days": dict(self.fingerprints), "files": self.file_days}


def plan_days(file_days: dict[str, dict], window_days: int, settings: dict, previous_ledger: dict | None,
              reusable: set[str], half_life_days: float | None = None) -> DayPlan:
    """Pure: which days of the window to compute. `file_days` maps each curated file to its stamp and days;
    `reusable` holds the days the previous run left every partition of."""
    days = sorted({d for info in file_days.values() for d in info["days"]})
    newest = days[-1] if days else None
    first = _shift(newest, -(window_days - 1)) if newest else None
    window = [d for d in days if d >= first] if newest else []
    holders: dict[str, list[str]] = {}
    for name, info in sorted(file_days.items()):
        for d in info["days"]:
            holders.setdefault(d, []).append(f"{name}:{info['stamp']}")
    in_window = set(window)
    fingerprints = {}
    for day in window:
        context = [n for n in (_shift(day, -1), day, _shift(day, 1)) if n in in_window]
        key = {"settings": settings, "version": DAILY_VERSION,
               "inputs": {n: holders.get(n, []) for n in context}}
        fingerprints[day] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    before = (previous_ledger or {}).get("days", {}) if (previous_ledger or {}).get("version") == DAILY_VERSION else {}
    fresh = [d for d in window if before.get(d) != fingerprints[d] or d not in reusable]
    return DayPlan(window, fresh, fingerprints, file_days, day_weights(window, half_life_days))


def day_weights(window: list[str], half_life_days: float | None) -> dict[str, float]:
    """Each day's weight in the window's shares: 1 without a half-life, else halved every half_life_days."""
    if not window:
        return {}
    newest = dt.date.fromisoformat(window[-1])
    if half_life_days is None:
        return {d: 1.0 for d in window}
    return {d: 0.5 ** ((newest - dt.date.fromisoformat(d)).days / half_life_days) for d in window}


def _shift(day: str, n: int) -> str:
    """The ISO day `n` days from `day`, held at the first or last day there is (a valid log may hold any day of
    years 1-9999)."""
    try:
        return (dt.date.fromisoformat(day) + dt.timedelta(days=n)).isoformat()
    except OverflowError:
        return (dt.date.min if n < 0 else dt.date.max).isoformat()


# ------------------------------------------------------------------------------------------- edges: I/O
def settings(ctx: Context) -> dict:
    """What per-day rows depend on besides the turns: sessions, friction, rephrase scoring, the embedder."""
    cfg = ctx.cfg
    return {"sessions": cfg.sessions.model_dump(), "friction": cfg.friction.model_dump(),
            "rephrase": cfg.rephrase.model_dump(),
            "embedding": {k: v for k, v in cfg.embedding.model_dump().items() if k != "cache_dir"}}


def plan(ctx: Context, curated_files: list[Path]) -> DayPlan:
    """The day plan of this run: curated files' days (read once per file, then from the ledger), the previous
    published run's ledger and partitions; writes this run's ledger."""
    previous = RunLayout(ctx.layout.out, outdir.published_dir(ctx.layout.out))
    before = _read_json(previous.daily_ledger)
    known = (before or {}).get("files", {})
    file_days = {}
    for path in sorted(Path(p) for p in curated_files):
        stat = path.stat()
        stamp = f"{stat.st_size}-{stat.st_mtime_ns}"
        if known.get(path.name, {}).get("stamp") == stamp:
            file_days[path.name] = known[path.name]
        else:
            days = pq.read_table(path, columns=["day"]).column("day").unique().to_pylist()
            file_days[path.name] = {"stamp": stamp, "days": sorted(d for d in days if d is not None)}
    reusable = {d for d in (before or {}).get("days", {})
                if all(previous.daily_partition(name, d).is_file() for name in DAY_DATASETS)}
    day_plan = plan_days(file_days, ctx.cfg.run.window_days, settings(ctx), before, reusable,
                         ctx.cfg.window.half_life_days)
    day_plan.previous = previous
    atomic_write_json(day_plan.ledger(), ctx.layout.daily_ledger)
    if day_plan.window:
        ctx.say(f"      days: {len(day_plan.fresh)} to compute ({', '.join(day_plan.fresh[:4])}"
                f"{' ...' if len(day_plan.fresh) > 4 else ''}), {len(day_plan.reused)} reused")
    return day_plan


def files_for(day_plan: DayPlan, days: list[str], folder: Path) -> list[Path]:
    """The curated files under `folder` that hold any of `days`."""
    wanted = set(days)
    return [folder / name for name, info in sorted(day_plan.file_days.items()) if wanted & set(info["days"])]


def days_table(ctx: Context, days: list[str]) -> Any:
    return ctx.engine.from_arrow(pa.table({"day": pa.array(sorted(days), type=pa.string())}))


def weights_table(ctx: Context, day_plan: DayPlan) -> Any:
    return ctx.engine.from_arrow(pa.table({"day": pa.array(day_plan.window, type=pa.string()),
                                           "weight": pa.array([day_plan.weights[d] for d in day_plan.window],
                                                              type=pa.float64())}))


def store(ctx: Context, day_plan: DayPlan, dataset: str, rows: Any) -> None:
    """Write `rows` (covering at least the fresh days) as one partition per fresh day; link the reused days'
    partitions from the previous run (a hard link: no bytes copied, and the previous run stays intact)."""
    schema = DAY_DATASETS[dataset]
    for day in day_plan.fresh:
        part = ctx.engine.sql("rows_of_days", {"day_rows": rows, "days": days_table(ctx, [day])})
        if isinstance(part, pa.Table):   # Arrow in this process (DuckDB): the contract's types, as every file has
            part = contract.conform(part, schema, dataset)
        # written by the engine (Spark: by its executors, no collect to the driver), atomically
        ctx.engine.write_parquet(part, ctx.layout.daily_partition(dataset, day))
    for day in day_plan.reused:
        _link(day_plan.previous.daily_partition(dataset, day), ctx.layout.daily_partition(dataset, day))


def load(ctx: Context, day_plan: DayPlan, dataset: str, days: list[str] | None = None) -> Any:
    """The partitions of `dataset` on `days` (default: the window) as one engine relation."""
    days = day_plan.window if days is None else days
    return ctx.engine.load_parquet([ctx.layout.daily_partition(dataset, d) for d in days], DAY_DATASETS[dataset])


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:   # another file system, or links not allowed: copy
        shutil.copy2(source, target)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

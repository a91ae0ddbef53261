"""Sessions, per-turn friction and consecutive turn pairs, per day (sql/turns_of_days, turn_friction, turn_pairs).

    window:   curated turns (ingest_report) -> day_plan, turns   the days of the last `run.window_days` days this
                                                                 run computes (stages/daily.py) and their turns,
                                                                 with the neighbour days' turns as context
    friction: turns, day_plan               -> fresh_friction    sessions, friction in [0, 1] per turn (those days
                                                                 and their neighbours), in memory only: the
                                                                 later stages of this run read it, no later run
                                               day_texts         the window's texts per day and NLU reading, with
                                                                 their earliest successful turn (sql/day_texts),
                                                                 stored per day
    pairs:    fresh_friction, day_plan      -> turn_pairs        consecutive same-session pairs whose first turn
                                                                 falls on a day this run computes
"""
from __future__ import annotations

from typing import Any

from selflearn import contract
from selflearn.config import Config
from selflearn.engines.base import Engine
from selflearn.stages import daily
from selflearn.stages.base import Context, Stage


def sql_params(cfg: Config) -> dict[str, float]:
    """Every {{parameter}} of the sql/ statements, from the config (one place for both engines)."""
    return {
        "inactivity_gap_ms": int(cfg.sessions.inactivity_gap_s * 1000),
        "max_pair_gap_ms": int(cfg.sessions.max_pair_gap_s * 1000),
        "quick_retry_ms": int(cfg.friction.quick_retry_s * 1000),
        "low_confidence": float(cfg.friction.low_confidence),
        "long_pause_s": float(cfg.friction.long_pause_s),
        "min_edge_score": float(cfg.rephrase.min_edge_score),   # sql/rephrase_edges.sql
    }


def day_turns(engine: Engine, curated_files: list, days: Any) -> Any:
    """Curated turns files -> their turns on `days` (an engine relation of one column, day) (TURNS_SCHEMA)."""
    turns = engine.load_parquet(curated_files, contract.TURNS_SCHEMA)
    return engine.sql("turns_of_days", {"turns": turns, "days": days})


def turn_friction(engine: Engine, turns: Any, cfg: Config) -> Any:
    """turns (TURNS_SCHEMA) -> one row per turn with session_key, turn_index, next_gap_s, friction in [0, 1]."""
    return engine.sql("turn_friction", {"turns": turns}, sql_params(cfg))


def turn_pairs(engine: Engine, friction: Any, cfg: Config) -> Any:
    """turn_friction -> consecutive same-session pairs (PAIRS_SCHEMA) within max_pair_gap_s."""
    return engine.sql("turn_pairs", {"turn_friction": friction}, sql_params(cfg))


def _window(ctx: Context, ingest_report) -> dict:
    day_plan = daily.plan(ctx, ingest_report.curated_files)
    context = day_plan.context(day_plan.fresh)
    files = daily.files_for(day_plan, context, ctx.layout.curated_turns)
    return {"day_plan": day_plan, "turns": day_turns(ctx.engine, files, daily.days_table(ctx, context))}


def _friction(ctx: Context, turns, day_plan) -> dict:
    fresh = turn_friction(ctx.engine, turns, ctx.cfg)
    # per-turn friction is not stored: this run's pairs, node_days and locale_days read it for the days they
    # compute, and a later run reuses a day through its per-day results (day_texts, scored_pairs, node_days,
    # locale_days), never through its turns
    daily.store(ctx, day_plan, "day_texts", ctx.engine.sql("day_texts", {"turn_friction": fresh}))
    # later stages read the window's texts per day (a row per text and day), never the window's turns: a daily
    # run's work then grows with the window's distinct texts, not with its turns
    return {"fresh_friction": fresh, "day_texts": daily.load(ctx, day_plan, "day_texts")}


def _pairs(ctx: Context, fresh_friction, day_plan) -> dict:
    pairs = turn_pairs(ctx.engine, fresh_friction, ctx.cfg)
    # a pair belongs to its first turn's day; pairs of the context days are another day's to store
    return {"turn_pairs": ctx.engine.sql("rows_of_days", {"day_rows": pairs,
                                                          "days": daily.days_table(ctx, day_plan.fresh)})}


WINDOW = Stage("window", inputs=("ingest_report",), outputs=("day_plan", "turns"), run=_window)
FRICTION = Stage("friction", inputs=("turns", "day_plan"), outputs=("fresh_friction", "day_texts"), run=_friction)
PAIRS = Stage("pairs", inputs=("fresh_friction", "day_plan"), outputs=("turn_pairs",), run=_pairs)

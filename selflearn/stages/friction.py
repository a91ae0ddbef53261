"""Sessions, per-turn friction and consecutive turn pairs (sql/window_turns, turn_friction, turn_pairs).

    window:   curated turns (ingest_report)  -> turns          the last `run.window_days` days
    friction: turns                          -> turn_friction  sessions, friction in [0, 1] per turn
    pairs:    turn_friction                  -> turn_pairs     consecutive same-session pairs
"""
from __future__ import annotations

from typing import Any

from selflearn import contract
from selflearn.config import Config
from selflearn.engines.base import Engine
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


def window_turns(engine: Engine, curated_files: list, cfg: Config) -> Any:
    """Curated turns files -> the turns of the statistics window (TURNS_SCHEMA)."""
    all_turns = engine.load_parquet(curated_files, contract.TURNS_SCHEMA)
    return engine.sql("window_turns", {"turns": all_turns}, {"window_days": cfg.run.window_days})


def turn_friction(engine: Engine, turns: Any, cfg: Config) -> Any:
    """turns (TURNS_SCHEMA) -> one row per turn with session_key, turn_index, next_gap_s, friction in [0, 1]."""
    return engine.sql("turn_friction", {"turns": turns}, sql_params(cfg))


def turn_pairs(engine: Engine, friction: Any, cfg: Config) -> Any:
    """turn_friction -> consecutive same-session pairs (PAIRS_SCHEMA) within max_pair_gap_s."""
    return engine.sql("turn_pairs", {"turn_friction": friction}, sql_params(cfg))


def _window(ctx: Context, ingest_report) -> dict:
    return {"turns": window_turns(ctx.engine, ingest_report.curated_files, ctx.cfg)}


def _friction(ctx: Context, turns) -> dict:
    return {"turn_friction": turn_friction(ctx.engine, turns, ctx.cfg)}


def _pairs(ctx: Context, turn_friction) -> dict:
    return {"turn_pairs": turn_pairs(ctx.engine, turn_friction, ctx.cfg)}


WINDOW = Stage("window", inputs=("ingest_report",), outputs=("turns",), run=_window)
FRICTION = Stage("friction", inputs=("turns",), outputs=("turn_friction",), run=_friction)
PAIRS = Stage("pairs", inputs=("turn_friction",), outputs=("turn_pairs",), run=_pairs)

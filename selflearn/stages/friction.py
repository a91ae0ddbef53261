"""Sessions, per-turn friction and consecutive turn pairs (SQL in sql/turn_friction.sql, sql/turn_pairs.sql)."""
from __future__ import annotations

from typing import Any

from selflearn.config import Config
from selflearn.engines.base import Engine


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


def turn_friction(engine: Engine, turns: Any, cfg: Config) -> Any:
    """turns (TURNS_SCHEMA) -> one row per turn with session_key, turn_index, next_gap_s, friction in [0, 1]."""
    return engine.sql("turn_friction", {"turns": turns}, sql_params(cfg))


def turn_pairs(engine: Engine, friction: Any, cfg: Config) -> Any:
    """turn_friction -> consecutive same-session pairs (PAIRS_SCHEMA) within max_pair_gap_s."""
    return engine.sql("turn_pairs", {"turn_friction": friction}, sql_params(cfg))

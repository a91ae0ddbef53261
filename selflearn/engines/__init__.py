"""Engines that run the sql/ statements and map Arrow batches: DuckDB (embedded, the default) and Spark.

    engine = get_engine("duckdb")                 # or get_engine("spark", master="local[2]")
    turns = engine.sql("turns_of_days", {"turns": all_turns, "days": engine.from_arrow(days)})

The protocol is in `base.py`; each backend is one module that imports its engine inside, so importing
selflearn never loads Spark (the `embedders/` pattern).
"""
from __future__ import annotations

from selflearn.engines.base import BatchFn, Engine, GroupFn

__all__ = ["BatchFn", "Engine", "GroupFn", "ENGINES", "get_engine"]

ENGINES = ("duckdb", "spark")


class EngineUnavailable(RuntimeError):
    """The engine's package is not installed; the message says which extra brings it."""


def require_pyspark() -> None:
    """PySpark is an extra (`selflearn[spark]`): a DuckDB-only install should not carry a JVM engine."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise EngineUnavailable("the Spark engine needs PySpark, which this install does not have: "
                                "pip install 'selflearn[spark]' (and Java 17), or use --engine duckdb") from None


def get_engine(name: str, **options) -> Engine:
    """The engine `name` with its options (DuckDB: threads, memory_limit; Spark: spark or master, ...)."""
    if name == "duckdb":
        from selflearn.engines.duckdb_engine import DuckDBEngine

        return DuckDBEngine(**options)
    if name == "spark":
        require_pyspark()
        from selflearn.engines.spark_engine import SparkEngine

        return SparkEngine(**options)
    raise ValueError(f"unknown engine {name!r}: choose {' or '.join(ENGINES)}")

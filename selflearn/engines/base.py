"""What a stage needs from an engine: run a named SQL statement over named inputs, map Arrow batches."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import pyarrow as pa

BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]


class Engine(Protocol):
    name: str

    def load_parquet(self, paths: list[Path], schema: pa.Schema) -> Any: ...
    def from_arrow(self, table: pa.Table) -> Any: ...
    def sql(self, statement: str, inputs: dict[str, Any], params: dict[str, float] | None = None) -> Any: ...
    def map_batches(self, data: Any, fn: BatchFn, schema: pa.Schema) -> Any: ...
    def write_parquet(self, data: Any, path: Path) -> None: ...
    def to_arrow(self, data: Any) -> pa.Table: ...
    def count(self, data: Any) -> int: ...
    def close(self) -> None: ...


def get_engine(name: str, **options) -> Engine:
    if name == "duckdb":
        from selflearn.engines.duckdb_engine import DuckDBEngine
        return DuckDBEngine(**options)
    if name == "spark":
        from selflearn.engines.spark_engine import SparkEngine
        return SparkEngine(**options)
    raise ValueError(f"unknown engine {name!r}: choose duckdb or spark")

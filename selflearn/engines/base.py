"""What a stage needs from an engine: run a named SQL statement over named inputs, map Arrow batches or groups."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import pyarrow as pa

BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]
GroupFn = Callable[[pa.Table], pa.Table]  # all rows of one group in, any number of rows out


class Engine(Protocol):
    name: str
    batches_in_process: bool  # whether map_batches calls its function in this process (progress can count it)
    stage: str  # the pipeline stage running now, set by PipelineRun (an engine may record what each stage collects)

    def load_parquet(self, paths: list[Path], schema: pa.Schema) -> Any: ...
    def from_arrow(self, table: pa.Table) -> Any: ...
    def sql(self, statement: str, inputs: dict[str, Any], params: dict[str, float] | None = None) -> Any: ...
    def map_batches(self, data: Any, fn: BatchFn, schema: pa.Schema) -> Any: ...
    def map_groups(self, data: Any, key_columns: list[str], fn: GroupFn, schema: pa.Schema) -> Any: ...
    def write_parquet(self, data: Any, path: Path) -> None: ...
    def to_arrow(self, data: Any) -> pa.Table: ...
    def count(self, data: Any) -> int: ...
    def close(self) -> None: ...



def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A group function's result with exactly the declared schema (column order and types): Spark checks
    types by position, and DuckDB's results must read the same."""
    if table.schema.equals(schema):
        return table
    return pa.table([table.column(f.name).cast(f.type) for f in schema], schema=schema)

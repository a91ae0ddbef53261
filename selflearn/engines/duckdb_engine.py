"""DuckDB engine: embedded, no server. Datasets are DuckDB relations materialised as Arrow tables."""
from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn import sqlfiles
from selflearn.engines.base import BatchFn, GroupFn, conform_table
from selflearn.io import atomic_write_parquet


class DuckDBEngine:
    name = "duckdb"
    batches_in_process = True  # map_batches runs the function here, so a progress bar can count its rows
    stage = ""  # the pipeline stage running now (PipelineRun sets it); results are in process, nothing is collected

    def __init__(self, threads: int | None = None, memory_limit: str | None = None):
        self.con = duckdb.connect()
        if threads:
            self.con.execute(f"set threads = {int(threads)}")
        if memory_limit:
            self.con.execute("set memory_limit = ?", [memory_limit])
        # Keep row order stable for identical inputs: re-runs must be byte-identical.
        self.con.execute("set preserve_insertion_order = true")

    def load_parquet(self, paths: list[Path], schema: pa.Schema) -> pa.Table:
        if not paths:
            return schema.empty_table()
        # one read of every file (threads across files), rows in the files' sorted order
        return pq.read_table([str(p) for p in sorted(paths)], schema=schema)

    def from_arrow(self, table: pa.Table) -> pa.Table:
        return table

    def sql(self, statement: str, inputs: dict[str, pa.Table], params: dict[str, float] | None = None) -> pa.Table:
        text = sqlfiles.render(statement, params)
        for view, table in inputs.items():
            self.con.register(view, table)
        try:
            return self.con.sql(text).to_arrow_table()
        finally:
            for view in inputs:
                self.con.unregister(view)

    def map_batches(self, data: pa.Table, fn: BatchFn, schema: pa.Schema) -> pa.Table:
        batches = [fn(b) for b in data.to_batches(max_chunksize=65_536)]
        return pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()

    def map_groups(self, data: pa.Table, key_columns: list[str], fn: GroupFn, schema: pa.Schema) -> pa.Table:
        """`fn` over the rows of each group (equal values in `key_columns`), here in this process, groups in
        key order. The whole-table paths of the stages are faster in process; this exists so a stage can
        check its per-group logic on the default engine (tests) and so both engines share one contract."""
        results = [conform_table(fn(group), schema) for group in split_groups(data, key_columns)]
        return pa.concat_tables(results) if results else schema.empty_table()

    def write_parquet(self, data: pa.Table, path: Path) -> None:
        atomic_write_parquet(data, path)

    def to_arrow(self, data: pa.Table) -> pa.Table:
        return data

    def count(self, data: pa.Table) -> int:
        return data.num_rows

    def close(self) -> None:
        self.con.close()


def split_groups(table: pa.Table, key_columns: list[str]):
    """The rows of `table` as one table per distinct key, in key order (one sort, then slices)."""
    if not table.num_rows:
        return
    ordered = table.take(pc.sort_indices(table, [(key, "ascending") for key in key_columns]))
    starts = np.zeros(ordered.num_rows, dtype=bool)
    starts[0] = True
    for key in key_columns:
        values = ordered.column(key).to_numpy(zero_copy_only=False)
        starts[1:] |= values[1:] != values[:-1]
    bounds = [*np.flatnonzero(starts).tolist(), ordered.num_rows]
    for start, end in zip(bounds[:-1], bounds[1:]):
        yield ordered.slice(start, end - start)

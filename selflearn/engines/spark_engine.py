"""Spark engine: the same SQL files and batch functions as DuckDB, on a Spark session (local or a cluster).

Datasets are Spark DataFrames. Each result of `sql` and `map_batches` is materialised at once and its lineage
cut (a local checkpoint, or a reliable one when the SparkContext has a checkpoint dir): the pipeline reads
turn_friction and the scored pairs several times, and eager stages give per-stage timings that mean what they
say. `close` releases them and stops only a session it created.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from selflearn import sqlfiles
from selflearn.engines.base import BatchFn, GroupFn, conform_table

# What results depend on, on any master: UTC session time, Arrow transfers to and from Python.
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# A session this engine starts itself on local[N]: few shuffle partitions, no UI, no progress bars.
LOCAL_CONF = {
    **REQUIRED_CONF,
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


@dataclass(frozen=True)
class Collected:
    """One result brought into the driver's Python process by `to_arrow`: during which stage, how big, what."""
    stage: str
    rows: int
    schema: pa.Schema  # its column types tell, e.g., whether a vector (list<float>) reached the driver


class SparkEngine:
    name = "spark"
    batches_in_process = False  # map_batches runs in executor processes
    stage = ""  # the pipeline stage running now (PipelineRun sets it), for the record of what was collected

    def __init__(self, spark=None, master: str = "local[2]", app_name: str = "selflearn",
                 conf: dict[str, str] | None = None, materialize: bool = True):
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        self.owns_session = False
        if spark is None:
            spark = SparkSession.getActiveSession()
        if spark is None:
            # Python workers must run the driver's interpreter (the one with pyarrow and selflearn).
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            self.owns_session = SparkContext._active_spark_context is None
            set_jvm_log_level("WARN")
            builder = SparkSession.builder.master(master).appName(app_name)
            defaults = LOCAL_CONF if master.startswith("local") else REQUIRED_CONF
            for key, value in {**defaults, **(conf or {})}.items():
                builder = builder.config(key, value)
            spark = builder.getOrCreate()
            spark.sparkContext.setLogLevel("WARN")
        self.spark = spark
        self.materialize = materialize
        self._checkpointed: list[Any] = []
        self._broadcasts: list[Any] = []
        # every collect of the run (stage, rows, schema): what a driver-memory check reads (issue 17)
        self.collected: list[Collected] = []

    # ------------------------------------------------------------------ datasets in
    def load_parquet(self, paths: list[Path], schema: pa.Schema):
        spark_schema = to_spark_schema(schema)
        if not paths:
            return self.spark.createDataFrame([], spark_schema)
        return self.spark.read.schema(spark_schema).parquet(*[str(p) for p in sorted(paths)])

    def from_arrow(self, table: pa.Table):
        """A small Arrow table (lookup keys) as a DataFrame with the same column types."""
        return self.spark.createDataFrame(table, schema=to_spark_schema(table.schema))

    # ------------------------------------------------------------------ transformations
    def sql(self, statement: str, inputs: dict[str, Any], params: dict[str, float] | None = None):
        text = sqlfiles.render(statement, params)
        for view, frame in inputs.items():
            frame.createOrReplaceTempView(view)
        try:
            return self._keep(self.spark.sql(text))
        finally:
            # The plan is resolved: drop the names, as DuckDBEngine unregisters them, so no statement sees a
            # stale input and the caller's session keeps no views of ours.
            for view in inputs:
                self.spark.catalog.dropTempView(view)

    def map_batches(self, data, fn: BatchFn, schema: pa.Schema):
        """`fn` over Arrow record batches on the executors. The function (with whatever it holds, e.g. the
        text vectors) is broadcast once per executor instead of being pickled into every task."""
        shipped = self.spark.sparkContext.broadcast(fn)
        self._broadcasts.append(shipped)
        out_schema = schema

        def apply(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            batch_fn = shipped.value
            for batch in batches:
                yield conform_batch(batch_fn(plain_types(batch)), out_schema)

        return self._keep(data.mapInArrow(apply, to_spark_schema(schema)))

    def map_groups(self, data, key_columns: list[str], fn: GroupFn, schema: pa.Schema):
        """`fn` over all rows of each group (equal values in `key_columns`) on the executors: Spark shuffles
        each group to one task and hands it over as one Arrow table (`applyInArrow`). A group must fit one
        Python worker's memory; the function is broadcast once per executor, as in `map_batches`."""
        shipped = self.spark.sparkContext.broadcast(fn)
        self._broadcasts.append(shipped)
        out_schema = schema

        def apply(group: pa.Table) -> pa.Table:
            return conform_table(shipped.value(plain_types(group)), out_schema)

        grouped = data.groupBy(*key_columns).applyInArrow(apply, to_spark_schema(schema))
        return self._keep(grouped)

    def _keep(self, frame):
        """Materialise `frame` now and cut its lineage. Stages read turn_friction and the scored pairs several
        times; a checkpointed frame is a leaf, so no later statement recomputes it (persist() alone is not
        enough: Spark's cache lookup misses once a plan is re-read under another view or joined with its own
        ancestors). Eager stages also give per-stage timings that mean what they say."""
        if not self.materialize:
            return frame
        if self.spark.sparkContext.getCheckpointDir():
            frame = frame.checkpoint(eager=True)  # reliable: survives a lost executor
        else:
            frame = frame.localCheckpoint(eager=True)  # executor storage (memory, then disk)
        self._checkpointed.append(frame)
        return frame

    # ------------------------------------------------------------------ datasets out
    def write_parquet(self, data, path: Path) -> None:
        """One Parquet file at `path`, written by Spark's writer (no collect to the driver): one task writes
        the rows in the frame's order to a hidden folder beside `path`, then the part file is renamed into
        place. The rename is atomic on a local or shared POSIX file system, which `path` must be on."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = path.with_name(f".{path.name}.{os.getpid()}.spark-tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        try:
            (data.coalesce(1).write.mode("overwrite")
                 .option("compression", "zstd")
                 .parquet(tmp_dir.resolve().as_uri()))
            parts = sorted(tmp_dir.glob("part-*.parquet"))
            if len(parts) != 1:
                raise FileNotFoundError(
                    f"Spark wrote {len(parts)} part files under {tmp_dir} as seen from the driver; the output "
                    "folder must be on a file system the driver and every executor share (docs/SPARK.md)")
            os.replace(parts[0], path)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def to_arrow(self, data) -> pa.Table:
        """Collect a small (aggregated) result in the frame's row order, with DuckDB's Arrow types; recorded in
        `collected`, so a test can tell which stage brings how many rows into the driver."""
        table = plain_types(data.toArrow())
        self.collected.append(Collected(self.stage, table.num_rows, table.schema))
        return table

    def count(self, data) -> int:
        return int(data.count())

    def close(self) -> None:
        if self.owns_session:  # stopping frees everything
            self.spark.stop()
            self.owns_session = False
        else:  # a borrowed session lives on: free what this engine held
            for frame in self._checkpointed:
                release(frame)
            for shipped in self._broadcasts:
                shipped.unpersist()
        self._checkpointed, self._broadcasts = [], []


def release(frame) -> None:
    """Free a checkpointed frame's blocks now, not when the JVM garbage-collects it. Best effort and internal
    API (the RDD behind the frame's plan); RDD.unpersist would also warn that the lineage is gone."""
    try:
        rdd = frame._jdf.queryExecution().analyzed().rdd()
        rdd.context().unpersistRDD(rdd.id(), True)  # blocking: the session may be stopped right after
    except Exception:  # noqa: BLE001 - Spark's context cleaner frees the blocks anyway
        pass


# ---------------------------------------------------------------------- Arrow <-> Spark types
def to_spark_schema(schema: pa.Schema):
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def _plain_type(t: pa.DataType) -> pa.DataType:
    """Spark may hand out large_string/large_list, names list items 'element' and marks computed columns
    not-null; DuckDB and the contract use string/list and nullable fields. Same values, one spelling."""
    if pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_large_binary(t):
        return pa.binary()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in t])
    return t


def plain_types(data: pa.Table | pa.RecordBatch) -> pa.Table | pa.RecordBatch:
    target = pa.schema([pa.field(f.name, _plain_type(f.type), True, f.metadata) for f in data.schema])
    return data if target.equals(data.schema) else data.cast(target)


def conform_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch function's output with exactly the declared schema (Spark checks types by position)."""
    if batch.schema.equals(schema):
        return batch
    return pa.RecordBatch.from_arrays([batch.column(f.name).cast(f.type) for f in schema], schema=schema)


def set_jvm_log_level(level: str) -> None:
    """Set Spark's log4j root level before the SparkContext starts. SparkContext.setLogLevel only acts once
    the context exists, after its ~40 INFO lines of start-up. The JVM (launched here, or by spark-submit, whose
    gateway this connects to) is reachable earlier: let Spark load its default log4j profile first (it would
    reset the level when the context starts), then set the level."""
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    jvm.org.apache.spark.SparkConf(False).initializeLogIfNecessary(False, False)
    jvm.org.apache.logging.log4j.core.config.Configurator.setRootLevel(jvm.org.apache.logging.log4j.Level.valueOf(level))

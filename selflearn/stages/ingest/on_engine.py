"""Ingest on the engine (Spark): the input files are read and curated by the engine's workers, not by the
driver, under the same contract, reason codes and accounting as the streaming path.

    stage   map_batches over the file list: each file curated by files.ingest_file (the same casting, checks,
            quarantine and within-file dedup as the streaming path) into <out>/curated/_staging/, with its
            own set of seen ids; one account row per file comes back (files, not turns, reach the driver)
    dedup   sql/ingest_duplicates.sql: ids an earlier file of this run or a kept curated file already holds
            -> (source_file, event_id) rows to drop, written by the engine to one Parquet file
    publish map_batches over the files again: each staged turns file minus its dropped ids (rewritten only
            when it has some) and its quarantine file moved into curated/turns/ and quarantine/

The two passes exist because dedup across files needs every file's ids: the streaming path carries them in
one set in the driver, which grows with turns. Files are the unit of parallelism (one file is streamed by
one worker a batch at a time, as in the streaming path). Executors write under --out, so it must be a file
system the driver and the executors share (docs/SPARK.md). A bad file with ingest.quarantine_bad_files off
stops the run as in the streaming path: files before it (in name order) are published, later ones not.
"""
from __future__ import annotations

import os
import shutil
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn import io
from selflearn.config import Config
from selflearn.engines.base import Engine
from selflearn.layout import RunLayout
from selflearn.stages.ingest.checks import TextCache
from selflearn.stages.ingest.discovery import file_key
from selflearn.stages.ingest.files import ingest_file
from selflearn.stages.ingest.ledger import COUNTS, EventIds, FileAccount
from selflearn.stages.ingest.rules import IngestError

FILES_SCHEMA = pa.schema([("path", pa.string()), ("source_file", pa.string()), ("source_rank", pa.int64())])
# a FileAccount, or `error` (IngestError's message) for a bad file that stops the run
STAGED_SCHEMA = pa.schema([("source_file", pa.string()), ("status", pa.string()),
                           *[(count, pa.int64()) for count in COUNTS], ("fingerprint", pa.string()),
                           ("error", pa.string())])
PUBLISHED_SCHEMA = pa.schema([("source_file", pa.string()), ("dropped", pa.int64())])
FILE_ORDER_SCHEMA = pa.schema([("source_file", pa.string()), ("source_rank", pa.int64())])
STAGED_IDS_SCHEMA = pa.schema([("source_file", pa.string()), ("event_id", pa.string())])
CURATED_IDS_SCHEMA = pa.schema([("event_id", pa.string())])


def curate_on_engine(engine: Engine, todo: list[tuple[Path, str]], layout: RunLayout,
                     config: Config) -> tuple[list[FileAccount], IngestError | None]:
    """The accounts of the files of `todo` (in its order) that were published, and the error of the first bad
    file that stops the run (None when none does). Outputs of files not in `todo` stay and count for dedup."""
    staging = RunLayout(layout.ingest_staging)
    shutil.rmtree(staging.out, ignore_errors=True)  # a killed run's leftovers: this run stages every file again
    try:
        # Spark spreads this small frame's rows over defaultParallelism partitions: files go to every core
        files = pa.table({"path": [str(p) for p, _ in todo], "source_file": [n for _, n in todo],
                          "source_rank": list(range(len(todo)))}, schema=FILES_SCHEMA)
        stage = partial(_stage_files, staging_out=str(staging.out), config=config)
        staged = engine.to_arrow(engine.map_batches(engine.from_arrow(files), stage, STAGED_SCHEMA))
        by_name = {row["source_file"]: row for row in staged.to_pylist()}
        rows = [by_name[name] for _, name in todo]
        stop = next((i for i, row in enumerate(rows) if row["error"] is not None), len(rows))
        error = IngestError(rows[stop]["error"]) if stop < len(rows) else None
        rows, files = rows[:stop], files.slice(0, stop)
        if not rows:
            return [], error

        replaced = {layout.curated_turns_file(file_key(name)).name for _, name in todo}
        kept = [p for p in sorted(layout.curated_turns.glob("*.parquet")) if p.name not in replaced]
        staged_turns = [staging.curated_turns_file(file_key(row["source_file"])) for row in rows]
        duplicates = engine.sql("ingest_duplicates", {
            "staged_turns": engine.load_parquet(staged_turns, STAGED_IDS_SCHEMA),
            "file_order": engine.from_arrow(files.select(FILE_ORDER_SCHEMA.names)),
            "curated_ids": engine.load_parquet(kept, CURATED_IDS_SCHEMA)})
        engine.write_parquet(duplicates, staging.ingest_duplicates)

        publish = partial(_publish_files, staging_out=str(staging.out), out=str(layout.out))
        published = engine.to_arrow(engine.map_batches(engine.from_arrow(files), publish, PUBLISHED_SCHEMA))
        dropped = dict(zip(published["source_file"].to_pylist(), published["dropped"].to_pylist(), strict=True))
        accounts = []
        for row in rows:
            n = dropped[row["source_file"]]
            fields = {k: row[k] for k in ("source_file", "status", *COUNTS, "fingerprint")}
            accounts.append(FileAccount(**{**fields, "rows_kept": row["rows_kept"] - n,
                                           "duplicates": row["duplicates"] + n}))
        return accounts, error
    finally:
        shutil.rmtree(staging.out, ignore_errors=True)


def _stage_files(batch: pa.RecordBatch, staging_out: str, config: Config) -> pa.RecordBatch:
    """In a worker: curate each file of the batch into the staging folder; one account row per file."""
    staging = RunLayout(staging_out)
    texts = TextCache(config.ingest.max_utterance_chars, config.privacy.pii_patterns)
    out = []
    for path, name in zip(batch.column("path").to_pylist(), batch.column("source_file").to_pylist(), strict=True):
        try:
            # a fresh set per file: repeats within the file are counted here, across files in SQL
            account = ingest_file(Path(path), name, staging, config, EventIds([]), texts)
            out.append({**account.__dict__, "error": None})
        except IngestError as exc:
            out.append({"source_file": name, "status": "error", **dict.fromkeys(COUNTS, 0),
                        "fingerprint": "", "error": str(exc)})
    return pa.RecordBatch.from_pylist(out, schema=STAGED_SCHEMA)


def _publish_files(batch: pa.RecordBatch, staging_out: str, out: str) -> pa.RecordBatch:
    """In a worker: move each staged file into place, without the rows sql/ingest_duplicates.sql dropped.
    Safe to run twice (a retried task): a file already moved is left as it is."""
    staging, final = RunLayout(staging_out), RunLayout(out)
    names = batch.column("source_file").to_pylist()
    drop = pq.read_table(staging.ingest_duplicates, filters=[("source_file", "in", names)]) if names else None
    result = []
    for name in names:
        key = file_key(name)
        ids = drop.filter(pc.equal(drop["source_file"], name))["event_id"] if drop is not None else pa.array([])
        staged_turns, turns = staging.curated_turns_file(key), final.curated_turns_file(key)
        if staged_turns.exists():
            if len(ids):
                table = pq.read_table(staged_turns)
                io.atomic_write_parquet(table.filter(pc.invert(pc.is_in(table["event_id"], value_set=ids))), turns)
                staged_turns.unlink()
            else:
                turns.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged_turns, turns)
            staged_quarantine, quarantine = staging.quarantine_file(key), final.quarantine_file(key)
            if staged_quarantine.exists():
                quarantine.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged_quarantine, quarantine)
            else:  # as the streaming path: a re-ingested file without rejected rows has no quarantine file
                quarantine.unlink(missing_ok=True)
        result.append({"source_file": name, "dropped": len(ids)})
    return pa.RecordBatch.from_pylist(result, schema=PUBLISHED_SCHEMA)

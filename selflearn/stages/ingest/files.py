"""One input file curated into its turns file and quarantine file (both written atomically) and its account.
The streaming path (ingest) runs it file after file in this process with one record of seen event ids
(ledger.EventIds); the engine path (on_engine) runs it in the engine's workers, each file with its own set, and dedups across files in SQL."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from selflearn import io
from selflearn.config import Config
from selflearn.contract import QUARANTINE_SCHEMA, TURNS_SCHEMA
from selflearn.layout import RunLayout
from selflearn.stages.ingest.casting import contract_batches
from selflearn.stages.ingest.checks import TextCache, curate
from selflearn.stages.ingest.discovery import file_key
from selflearn.stages.ingest.ledger import EventIds, FileAccount
from selflearn.stages.ingest.rules import BadFile, IngestError


def ingest_file(path: Path, name: str, layout: RunLayout, config: Config, seen: EventIds,
                texts: TextCache) -> FileAccount:
    """Curate one file a batch of rows at a time (memory follows BATCH_ROWS, not the file), streaming both
    outputs into place atomically."""
    key = file_key(name)
    turns_path, quarantine_path = layout.curated_turns_file(key), layout.quarantine_file(key)
    fp = "unreadable"
    kept_ids: list[pa.Array] = []  # to forget again if the file turns out bad halfway
    counts = {"kept": 0, "quarantined": 0, "duplicates": 0}
    turns_out = io.AtomicParquetWriter(turns_path, TURNS_SCHEMA)
    quarantine_out = io.AtomicParquetWriter(quarantine_path, QUARANTINE_SCHEMA)
    try:
        try:
            fp = io.fingerprint_file(path)
        except OSError as exc:
            raise BadFile("bad_file", f"cannot be read ({exc.strerror or exc})") from None
        rows_in = 0
        for offset, columns, rows_in in contract_batches(path):
            turns, quarantine, duplicates = curate(columns, name, config, seen, texts, offset)
            kept_ids.append(turns["event_id"].combine_chunks())
            counts["kept"] += turns.num_rows
            counts["quarantined"] += quarantine.num_rows
            counts["duplicates"] += duplicates
            turns_out.write(turns)
            if quarantine.num_rows:
                quarantine_out.write(quarantine)
    except BadFile as bad:
        turns_out.abort(), quarantine_out.abort()
        for ids in kept_ids:
            seen.forget(ids.to_pylist())
        if not config.ingest.quarantine_bad_files:
            raise IngestError(f"file {path}: {bad}") from None
        row = {"source_file": name, "row_number": -1, "reason": bad.reason, "detail": str(bad)}
        io.atomic_write_parquet(TURNS_SCHEMA.empty_table(), turns_path)
        io.atomic_write_parquet(pa.Table.from_pylist([row], schema=QUARANTINE_SCHEMA), quarantine_path)
        return FileAccount(name, "quarantined_file", bad.rows, 0, bad.rows, 0, fp)
    except BaseException:
        turns_out.abort(), quarantine_out.abort()
        raise
    if not counts["kept"]:
        turns_out.write(TURNS_SCHEMA.empty_table())  # every accounted file has its (possibly empty) turns file
    turns_out.close()
    if not quarantine_out.close():
        quarantine_path.unlink(missing_ok=True)
    status = "empty" if rows_in == 0 else "ingested"
    return FileAccount(name, status, rows_in, counts["kept"], counts["quarantined"], counts["duplicates"], fp)

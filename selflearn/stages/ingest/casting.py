"""Read one log file a batch at a time, cast to the log contract's types (LOG_SCHEMA), or say why it cannot be."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn.contract import LOG_SCHEMA, REQUIRED_LOG_COLUMNS, SLOTS
from selflearn.stages.ingest.rules import BadFile
from selflearn.stages.ingest.utf8 import valid_utf8


BATCH_ROWS = 65_536  # rows curated at a time: ingest memory follows this, not the size of a file


_EXPECTED = {"ts": "timestamp (any unit, with or without time zone)", "nlu_confidence": "float",
             "barge_in": "bool", "nlu_slots": "list<struct<name: string, value: string>>"}


def contract_batches(path: Path) -> Iterator[tuple[int, dict[str, pa.Array], int]]:
    """(offset of the batch's first row, its columns cast to LOG_SCHEMA (missing optional ones null, extra ones
    dropped, strings valid UTF-8), the file's row count) per batch of at most BATCH_ROWS rows; BadFile when
    the bytes or the schema break the contract, also halfway through."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
        raise BadFile("bad_file", f"not a readable Parquet file ({first_line(exc)})") from None
    with parquet:
        rows = parquet.metadata.num_rows
        missing = [c for c in REQUIRED_LOG_COLUMNS if c not in schema.names]
        if missing:
            cols = ", ".join(repr(c) for c in missing)
            raise BadFile("missing_column", f"missing required column{'s' * (len(missing) > 1)} {cols} "
                           f"(the log contract needs {', '.join(REQUIRED_LOG_COLUMNS)})", rows)
        present = [f for f in LOG_SCHEMA if f.name in schema.names]
        for f in present:
            found = schema.field(f.name).type
            if not _castable(found, f.type):
                raise BadFile("bad_type", f"column {f.name!r} has type {found}, "
                               f"expected {_EXPECTED.get(f.name, 'string')}", rows)
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=[f.name for f in present])
        offset = 0
        while True:
            try:
                batch = next(batches, None)
            except Exception as exc:
                raise BadFile("bad_file", f"not a readable Parquet file ({first_line(exc)})", rows) from None
            if batch is None:
                return
            columns = {}
            for f in LOG_SCHEMA:
                if f.name not in batch.schema.names:
                    columns[f.name] = pa.nulls(batch.num_rows, f.type)
                    continue
                try:
                    columns[f.name] = valid_utf8(_cast(batch.column(f.name), f.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise BadFile("bad_type", f"column {f.name!r} of type {batch.schema.field(f.name).type} "
                                   f"cannot be cast to {f.type} ({first_line(exc)})", rows) from None
            yield offset, columns, rows
            offset += batch.num_rows


def first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _is_text(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_text(t.value_type)
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)
            or getattr(pa.types, "is_string_view", lambda _: False)(t))


def _castable(found: pa.DataType, target: pa.DataType) -> bool:
    if pa.types.is_null(found):
        return True
    if pa.types.is_timestamp(target):
        return pa.types.is_timestamp(found)
    if pa.types.is_floating(target):
        return pa.types.is_floating(found) or pa.types.is_integer(found)
    if pa.types.is_boolean(target):
        return pa.types.is_boolean(found)
    if target == SLOTS:
        if not (pa.types.is_list(found) or pa.types.is_large_list(found)) or not pa.types.is_struct(found.value_type):
            return False
        names = {found.value_type.field(i).name: found.value_type.field(i).type
                 for i in range(found.value_type.num_fields)}
        return all(n in names and _is_text(names[n]) for n in ("name", "value"))
    return _is_text(found)


def _cast(arr: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(arr.type) and arr.type.unit == "ns":
        return pc.cast(arr, target, safe=False)  # drops sub-microsecond digits; ns never overflows us
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    return arr if arr.type == target else arr.cast(target)  # safe: errors instead of overflowing

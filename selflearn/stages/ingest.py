"""Ingest: check raw assistant logs against the log contract (v1) and write curated turns, losing nothing.

Every input row ends in exactly one place: kept (curated turns), quarantined with a reason code, or counted
as a duplicate of an event id already kept. Per file: rows_in == rows_kept + rows_quarantined + duplicates.

Outputs under out_dir (file_key = short sha1 of the file's name relative to the logs root):
    curated/turns/<file_key>.parquet   TURNS_SCHEMA, one per accounted input file (possibly empty)
    quarantine/<file_key>.parquet      QUARANTINE_SCHEMA, only for files with quarantined rows
    curated/_ingested.json             state: relative name -> fingerprint and account (incremental runs)

Incremental: an unchanged file (same size and sha256) is skipped; a changed one is re-ingested and its
outputs replaced. Outputs of files no longer among the inputs stay, and their event ids still count for
dedup: logs are append-only date partitions, so yesterday's folder may be gone from today's input.
Raw user ids are never written: user_key is a salted hash (selflearn.privacy).
"""
from __future__ import annotations

import codecs
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from selflearn import io, privacy, text
from selflearn.config import Config
from selflearn.layout import RunLayout
from selflearn.stages.base import Context, Stage
from selflearn.contract import (
    LOG_CONTRACT_VERSION,
    LOG_SCHEMA,
    QUARANTINE_SCHEMA,
    REQUIRED_LOG_COLUMNS,
    RESPONSE_STATUSES,
    SLOTS,
    TURNS_SCHEMA,
)

log = logging.getLogger(__name__)

# Bump when ingest or selflearn.text changes what lands in curated turns: a new version re-ingests every file.
INGEST_VERSION = "2"
QUARANTINE_UTTERANCE_CHARS = 200
BATCH_ROWS = 65_536  # rows curated at a time: ingest memory follows this, not the size of a file
STATE_EVERY_FILES = 256  # the state file is rewritten after this many files (and at the end), not after each
QUARANTINE_FIELD_CHARS = 40  # a logged locale or status quoted in the private quarantine
# Intent and slot names go into training files and the report as they are: only plain names pass.
SAFE_NAME = r"^[A-Za-z0-9_.:-]{1,100}$"

REASONS: dict[str, str] = {
    # a whole file (row_number -1), only with ingest.quarantine_bad_files
    "bad_file": "not a readable Parquet file",
    "missing_column": "a column the log contract requires is missing",
    "bad_type": "a column has a type the log contract cannot safely cast",
    # one row; a row failing several checks gets the first code in this order
    "null_event_id": "event_id is null or blank",
    "null_user_id": "user_id is null or blank",
    "null_locale": "locale is null or blank",
    "invalid_locale": "locale is not a BCP-47 tag such as en-US, ja-JP or zh-Hant-TW",
    "null_ts": "ts is null",
    "empty_utterance": "utterance is null, empty, or only whitespace / control characters",
    "utterance_too_long": "utterance is longer than ingest.max_utterance_chars",
    "invalid_status": f"response_status is not one of {', '.join(RESPONSE_STATUSES)}",
    "invalid_confidence": "nlu_confidence is outside [0, 1] or NaN",
    "invalid_intent": "nlu_intent is not a plain name (1-100 of A-Z a-z 0-9 _ . : -)",
    "invalid_slot_name": "a slot name in nlu_slots is missing or not a plain name (1-100 of A-Z a-z 0-9 _ . : -)",
}
ROW_REASONS = list(REASONS)[3:]
COUNTS = ("rows_in", "rows_kept", "rows_quarantined", "duplicates")
_EXPECTED = {"ts": "timestamp (any unit, with or without time zone)", "nlu_confidence": "float",
             "barge_in": "bool", "nlu_slots": "list<struct<name: string, value: string>>"}
# language, optional script, optional region (2 letters or 3 digits); '_' is read as '-'. Variants and
# extensions (ca-ES-valencia, en-US-u-ca-gregory) are rejected: assistant locales never need them.
_LOCALE = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?")
_INVISIBLE = dict.fromkeys([0x200C, 0x200D, *range(0xFE00, 0xFE10)])  # joiners and variation selectors


class IngestError(Exception):
    """A one-line, human message naming the file (and column or row where relevant)."""


@dataclass
class FileAccount:
    """Where one input file's rows went. source_file is relative to the logs root; fingerprint is size:sha256.
    A file quarantined whole counts its rows (0 when even the footer is unreadable) as quarantined, although
    the quarantine holds one row (row_number -1) for it. skipped_unchanged repeats the recorded counts."""
    source_file: str
    status: str  # "ingested" | "skipped_unchanged" | "quarantined_file" | "empty"
    rows_in: int
    rows_kept: int
    rows_quarantined: int
    duplicates: int
    fingerprint: str

    def check_balanced(self) -> None:
        if self.rows_in != self.rows_kept + self.rows_quarantined + self.duplicates:
            raise AssertionError(
                f"ingest lost rows of {self.source_file}: rows_in={self.rows_in} != kept {self.rows_kept} + "
                f"quarantined {self.rows_quarantined} + duplicates {self.duplicates}")


@dataclass
class IngestReport:
    files: list[FileAccount]
    curated_files: list[Path] = field(default_factory=list)  # every curated turns file now in out_dir

    def totals(self) -> dict:
        """Counts summed over the input files (skipped ones from their recorded account); checks the invariant."""
        for account in self.files:
            account.check_balanced()
        out: dict = {k: sum(getattr(a, k) for a in self.files) for k in COUNTS}
        out["files"] = len(self.files)
        out["by_status"] = {s: sum(a.status == s for a in self.files) for s in sorted({a.status for a in self.files})}
        return out


class _BadFile(Exception):
    def __init__(self, reason: str, message: str, rows: int = 0):
        super().__init__(message)
        self.reason, self.rows = reason, rows


# ------------------------------------------------------------------------------------------------ discovery

def discover_inputs(logs: str) -> list[Path]:
    """Input files: one Parquet file, a folder (recursive; hive partitions such as day=2026-11-01/ are fine;
    hidden and _-prefixed names skipped) or a glob; sorted by name relative to the logs root."""
    return _discover(logs)[1]


def _discover(logs: str) -> tuple[Path, list[Path]]:
    root, files = io.find_inputs(str(logs))
    if not files:
        raise IngestError(f"no Parquet files match {str(logs)!r}")
    return root, files


def file_key(source_file: str) -> str:
    """Output file stem for an input, from its name relative to the logs root."""
    return hashlib.sha1(source_file.encode("utf-8")).hexdigest()[:16]


def normalize_locale(raw: str) -> str | None:
    """'en_us' -> 'en-US', 'zh_hant_tw' -> 'zh-Hant-TW'; None when not a BCP-47-like tag."""
    m = _LOCALE.fullmatch(raw.strip().replace("_", "-").lower())
    if not m:
        return None
    lang, script, region = m.groups()
    return lang + (f"-{script.title()}" if script else "") + (f"-{region.upper()}" if region else "")


# ------------------------------------------------------------------------------------------------ the stage

def ingest(logs: str, out_dir: Path, config: Config, progress: bool = False) -> IngestReport:
    """Validate and curate every input file of `logs` into out_dir; see the module docstring for the layout."""
    root, files = _discover(logs)
    out_dir = Path(out_dir)
    config = privacy.with_salt(config, out_dir, say=log.warning)  # a no-op when PipelineRun resolved it
    layout = RunLayout(out_dir)
    turns_dir, quarantine_dir, state_path = layout.curated_turns, layout.quarantine, layout.ingest_state
    previous = _load_state(state_path)
    settings = settings_fingerprint(config)
    changed_settings = previous["settings"] != settings
    if changed_settings and previous["files"]:
        log.warning("ingest settings changed since the last run (salt, max_utterance_chars, pii_patterns or "
                    "version): re-ingesting every input file; outputs of files no longer in the input keep the "
                    "old settings")
    recorded = {} if changed_settings else previous["files"]
    state = {"settings": settings, "files": dict(previous["files"])}

    names = [io.relative_name(p, root) for p in files]
    accounts: dict[str, FileAccount] = {}
    todo: list[tuple[Path, str]] = []
    for path, name in zip(files, names, strict=True):  # pass 1: what is unchanged (a cheap hash beats re-ingesting)
        old = recorded.get(name)
        if old and (turns_dir / f"{file_key(name)}.parquet").exists() and not (
                old["status"] == "quarantined_file" and not config.ingest.quarantine_bad_files):
            try:
                fp = io.fingerprint_file(path)
            except OSError:
                fp = None
            if fp == old["fingerprint"]:
                accounts[name] = FileAccount(**{**_account_fields(old), "status": "skipped_unchanged"})
                continue
        todo.append((path, name))

    if todo:
        replaced = {f"{file_key(name)}.parquet" for _, name in todo}
        seen = _event_ids(p for p in sorted(turns_dir.glob("*.parquet")) if p.name not in replaced)
        texts = _TextCache(config.ingest.max_utterance_chars, config.privacy.pii_patterns)
        try:
            for done, (path, name) in enumerate(tqdm(todo, desc="ingest", unit="file", disable=not progress), 1):
                account = _ingest_file(path, name, turns_dir, quarantine_dir, config, seen, texts)
                account.check_balanced()
                accounts[name] = account
                state["files"][name] = {**asdict(account), "file_key": file_key(name)}
                # rewriting (and fsyncing) the whole state after every file made many small files slow (1,849
                # files: 37 s). A file done but not recorded when the process dies is ingested again next time,
                # to the same outputs.
                if done % STATE_EVERY_FILES == 0:
                    io.atomic_write_json(state, state_path)
        finally:  # also when a bad file stops the run: the files done before it stay done
            io.atomic_write_json(state, state_path)
    elif state != previous or not state_path.exists():
        io.atomic_write_json(state, state_path)

    report = IngestReport([accounts[n] for n in names], sorted(turns_dir.glob("*.parquet")))
    report.totals()
    return report


def _ingest_stage(ctx: Context, logs: str) -> dict:
    return {"ingest_report": ingest(logs, ctx.layout.out, ctx.cfg, progress=ctx.cfg.run.progress)}


# logs (a path, folder or glob) -> ingest_report; curated turns, quarantine and the ledger under out/
INGEST = Stage("ingest", inputs=("logs",), outputs=("ingest_report",), run=_ingest_stage)


def _account_fields(recorded: dict) -> dict:
    return {k: recorded[k] for k in ("source_file", "status", "fingerprint", *COUNTS)}


def settings_fingerprint(config: Config) -> str:
    """What curated turns depend on besides the input files (the salt as a hash): a change re-ingests all."""
    settings = {"ingest_version": INGEST_VERSION, "contract": LOG_CONTRACT_VERSION,
                "max_utterance_chars": config.ingest.max_utterance_chars,
                "pii_patterns": config.privacy.pii_patterns,
                "salt": hashlib.sha256(config.privacy.user_salt.encode()).hexdigest()}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _load_state(path: Path) -> dict:
    if not path.exists():
        return {"settings": None, "files": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return {"settings": state["settings"], "files": dict(state["files"])}
    except (ValueError, KeyError, TypeError):
        log.warning("ingest state %s is unreadable: re-ingesting every input file", path)
        return {"settings": None, "files": {}}


def _event_ids(curated: Iterable[Path]) -> set[str]:
    seen: set[str] = set()
    for path in curated:
        seen.update(pq.read_table(path, columns=["event_id"])["event_id"].to_pylist())
    return seen


def _ingest_file(path: Path, name: str, turns_dir: Path, quarantine_dir: Path, config: Config,
                 seen: set[str], texts: _TextCache) -> FileAccount:
    """Curate one file a batch of rows at a time (memory follows BATCH_ROWS, not the file), streaming both
    outputs into place atomically."""
    key = file_key(name)
    turns_path, quarantine_path = turns_dir / f"{key}.parquet", quarantine_dir / f"{key}.parquet"
    fp = "unreadable"
    kept_ids: list[pa.Array] = []  # to forget again if the file turns out bad halfway
    counts = {"kept": 0, "quarantined": 0, "duplicates": 0}
    turns_out = io.AtomicParquetWriter(turns_path, TURNS_SCHEMA)
    quarantine_out = io.AtomicParquetWriter(quarantine_path, QUARANTINE_SCHEMA)
    try:
        try:
            fp = io.fingerprint_file(path)
        except OSError as exc:
            raise _BadFile("bad_file", f"cannot be read ({exc.strerror or exc})") from None
        rows_in = 0
        for offset, columns, rows_in in _contract_batches(path):
            turns, quarantine, duplicates = _curate(columns, name, config, seen, texts, offset)
            kept_ids.append(turns["event_id"].combine_chunks())
            counts["kept"] += turns.num_rows
            counts["quarantined"] += quarantine.num_rows
            counts["duplicates"] += duplicates
            turns_out.write(turns)
            if quarantine.num_rows:
                quarantine_out.write(quarantine)
    except _BadFile as bad:
        turns_out.abort(), quarantine_out.abort()
        for ids in kept_ids:
            seen.difference_update(ids.to_pylist())
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


# ------------------------------------------------------------------------------------------------ contract

def _contract_batches(path: Path) -> Iterator[tuple[int, dict[str, pa.Array], int]]:
    """(offset of the batch's first row, its columns cast to LOG_SCHEMA (missing optional ones null, extra ones
    dropped, strings valid UTF-8), the file's row count) per batch of at most BATCH_ROWS rows; _BadFile when
    the bytes or the schema break the contract, also halfway through."""
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
    except Exception as exc:  # pyarrow raises several types for non-Parquet bytes
        raise _BadFile("bad_file", f"not a readable Parquet file ({_first_line(exc)})") from None
    with parquet:
        rows = parquet.metadata.num_rows
        missing = [c for c in REQUIRED_LOG_COLUMNS if c not in schema.names]
        if missing:
            cols = ", ".join(repr(c) for c in missing)
            raise _BadFile("missing_column", f"missing required column{'s' * (len(missing) > 1)} {cols} "
                           f"(the log contract needs {', '.join(REQUIRED_LOG_COLUMNS)})", rows)
        present = [f for f in LOG_SCHEMA if f.name in schema.names]
        for f in present:
            found = schema.field(f.name).type
            if not _castable(found, f.type):
                raise _BadFile("bad_type", f"column {f.name!r} has type {found}, "
                               f"expected {_EXPECTED.get(f.name, 'string')}", rows)
        batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=[f.name for f in present])
        offset = 0
        while True:
            try:
                batch = next(batches, None)
            except Exception as exc:
                raise _BadFile("bad_file", f"not a readable Parquet file ({_first_line(exc)})", rows) from None
            if batch is None:
                return
            columns = {}
            for f in LOG_SCHEMA:
                if f.name not in batch.schema.names:
                    columns[f.name] = pa.nulls(batch.num_rows, f.type)
                    continue
                try:
                    columns[f.name] = _valid_utf8(_cast(batch.column(f.name), f.type))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise _BadFile("bad_type", f"column {f.name!r} of type {batch.schema.field(f.name).type} "
                                   f"cannot be cast to {f.type} ({_first_line(exc)})", rows) from None
            yield offset, columns, rows
            offset += batch.num_rows


def _first_line(exc: Exception) -> str:
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


def _lenient_utf8(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Decode error handler for bad UTF-8: a surrogate pair encoded separately (CESU-8, as Java writes it)
    becomes its character, a lone encoded surrogate is dropped, any other bad byte becomes U+FFFD."""
    b, i = exc.object, exc.start

    def surrogate(at: int) -> int | None:
        if at + 3 <= len(b) and b[at] == 0xED and 0xA0 <= b[at + 1] <= 0xBF and 0x80 <= b[at + 2] <= 0xBF:
            return 0xD000 | (b[at + 1] & 0x3F) << 6 | (b[at + 2] & 0x3F)
        return None

    high = surrogate(i)
    if high is None:
        return "\ufffd", exc.end
    low = surrogate(i + 3)
    if high < 0xDC00 and low is not None and low >= 0xDC00:
        return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)), i + 6
    return "", i + 3


codecs.register_error("selflearn-lenient", _lenient_utf8)


def _valid_utf8(arr: pa.Array) -> pa.Array:
    """Arrow does not check UTF-8 when reading Parquet; repair invalid strings so no output carries them."""
    try:
        arr.validate(full=True)
        return arr
    except pa.ArrowInvalid:
        pass
    if pa.types.is_list(arr.type):
        values = arr.values
        slots = pa.StructArray.from_arrays([_valid_utf8(child) for child in values.flatten()],
                                           fields=list(values.type), mask=values.is_null())
        return pa.ListArray.from_arrays(arr.offsets, slots, type=arr.type, mask=arr.is_null())
    raw = arr.cast(pa.binary()).to_pylist()
    return pa.array([None if b is None else b.decode("utf-8", "selflearn-lenient") for b in raw], arr.type)


# ------------------------------------------------------------------------------------------------ rows

class _TextCache:
    """Per distinct utterance (and set of configured PII patterns): cleaned text, empty/too-long flags, display
    and matching forms (computed once)."""

    def __init__(self, max_chars: int, pii_patterns: dict[str, list[str]] | None = None, limit: int = 500_000):
        self.max_chars, self.limit, self.memo = max_chars, limit, {}
        self.patterns = {key: tuple(re.compile(p, re.IGNORECASE) for p in values)
                         for key, values in (pii_patterns or {}).items()}

    def patterns_for(self, locale: str | None) -> tuple[re.Pattern, ...]:
        """privacy.pii_patterns that apply to a (normalized) locale: '*', its language, the locale itself."""
        keys = ["*"] + ([] if locale is None else [locale.split("-")[0], locale] if "-" in locale else [locale])
        return tuple(p for key in dict.fromkeys(keys) for p in self.patterns.get(key, ()))

    def get(self, raw: str, extra: tuple[re.Pattern, ...] = ()) -> tuple[str, str | None, str | None, str | None]:
        hit = self.memo.get((raw, extra))
        if hit is None:
            clean = text.strip_controls(raw)
            if not clean.translate(_INVISIBLE).strip():
                hit = (clean, "empty_utterance", None, None)
            elif len(clean) > self.max_chars:
                hit = (clean, "utterance_too_long", None, None)
            else:
                display = text.display_text(clean, extra)
                hit = (clean, None, display, text.match_key(display))  # == text.normalize(clean)
            if len(self.memo) >= self.limit:
                self.memo.clear()
            self.memo[raw, extra] = hit
        return hit


def _blank(arr: pa.Array) -> np.ndarray:
    return _np(pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(arr)), 0), True))


def _np(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _map_distinct(arr: pa.Array, fn: Callable[[list], list]) -> pa.Array:
    """fn (a list of distinct values -> a list of strings) applied once per distinct value; nulls stay null."""
    encoded = pc.dictionary_encode(arr)
    return pc.take(pa.array(fn(encoded.dictionary.to_pylist()), pa.string()), encoded.indices)


def _bad_slot_names(slots: pa.Array) -> np.ndarray:
    """Per row: some slot of nlu_slots has a null name or one that is not SAFE_NAME."""
    bad = np.zeros(len(slots), bool)
    names = pc.list_flatten(slots).field("name")
    if len(names):
        wrong = _np(pc.invert(pc.fill_null(pc.match_substring_regex(names, SAFE_NAME), False)))
        rows = _np(pc.list_parent_indices(slots))
        bad[rows[wrong]] = True
    return bad


def _distinct_texts(utterance: pa.Array, locale: pa.Array, texts: _TextCache) -> tuple[list, pa.Array]:
    """(_TextCache.get of each distinct (utterance, PII pattern set), its index per row; null for a null text).
    Without per-locale patterns every row of one text shares one entry."""
    utter = pc.dictionary_encode(utterance)
    values = utter.dictionary.to_pylist()
    if not any(key != "*" for key in texts.patterns):
        extra = texts.patterns_for(None)
        return [texts.get(v, extra) for v in values], utter.indices
    sets: dict[tuple, int] = {}  # pattern set -> its number
    locales = pc.dictionary_encode(locale)
    per_locale = [sets.setdefault(texts.patterns_for(x), len(sets)) for x in locales.dictionary.to_pylist()]
    per_locale.append(sets.setdefault(texts.patterns_for(None), len(sets)))  # index -1: a row without a locale
    row_set = np.asarray(per_locale, np.int64)[_np(pc.fill_null(locales.indices, -1)).astype(np.int64)]
    row_text = _np(pc.fill_null(utter.indices, -1)).astype(np.int64)
    keys, inverse = np.unique(np.where(row_text < 0, -1, row_text * len(sets) + row_set), return_inverse=True)
    pattern_sets = list(sets)
    distinct = [(None,) * 4 if k < 0 else texts.get(values[k // len(sets)], pattern_sets[k % len(sets)])
                for k in keys]
    return distinct, pa.array(inverse, pa.int64(), mask=keys[inverse] < 0)


def _curate(col: dict[str, pa.Array], name: str, config: Config, seen: set[str],
            texts: _TextCache, offset: int = 0) -> tuple[pa.Table, pa.Table, int]:
    """(curated turns, quarantine rows, duplicates) of one batch of a file's contract columns, whose first row is
    row `offset` of the file; adds kept ids to seen."""
    locale = _map_distinct(col["locale"], lambda values: [normalize_locale(v) for v in values])
    distinct, text_index = _distinct_texts(col["utterance"], locale, texts)

    def per_row(i: int) -> pa.Array:  # field i of _TextCache.get for every row
        return pc.take(pa.array([d[i] for d in distinct], pa.string()), text_index)

    utter_problem = _np(pc.if_else(col["utterance"].is_null(), "empty_utterance", per_row(1)))
    status = pc.utf8_lower(pc.utf8_trim_whitespace(col["response_status"]))
    status = pc.if_else(pc.equal(status, ""), pa.scalar(None, pa.string()), status)  # blank means unknown
    confidence = col["nlu_confidence"]
    blank_locale = _blank(col["locale"])
    checks = {
        "null_event_id": _blank(col["event_id"]),
        "null_user_id": _blank(col["user_id"]),
        "null_locale": blank_locale,
        "invalid_locale": ~blank_locale & _np(locale.is_null()),
        "null_ts": _np(col["ts"].is_null()),
        "empty_utterance": utter_problem == "empty_utterance",
        "utterance_too_long": utter_problem == "utterance_too_long",
        "invalid_status": _np(pc.and_(status.is_valid(), pc.invert(pc.is_in(status, pa.array(RESPONSE_STATUSES))))),
        "invalid_confidence": _np(pc.fill_null(pc.or_(pc.is_nan(confidence), pc.or_(
            pc.less(confidence, 0.0), pc.greater(confidence, 1.0))), False)),
        # a blank intent means "none" (as before); anything else must be a plain name
        "invalid_intent": _np(pc.fill_null(pc.and_(pc.not_equal(col["nlu_intent"], ""), pc.invert(
            pc.match_substring_regex(col["nlu_intent"], SAFE_NAME))), False)),
        "invalid_slot_name": _bad_slot_names(col["nlu_slots"]),
    }
    reason = np.full(len(col["event_id"]), -1, np.int16)
    for code in reversed(range(len(ROW_REASONS))):  # the first failing check in REASONS order wins
        reason[checks[ROW_REASONS[code]]] = code

    # dedup after the checks, so an invalid first copy of an event does not hide a valid second one
    valid = np.flatnonzero(reason < 0)
    duplicate = np.zeros(len(valid), bool)
    for j, event_id in enumerate(col["event_id"].take(pa.array(valid, pa.int64())).to_pylist()):
        duplicate[j] = event_id in seen
        seen.add(event_id)
    keep = pa.array(valid[~duplicate], pa.int64())

    ts_us = _np(col["ts"].take(keep).cast(pa.int64())).astype(np.int64)
    turns = pa.table({
        "event_id": col["event_id"].take(keep),
        "user_key": _map_distinct(col["user_id"].take(keep),
                                  lambda values: privacy.hash_users(values, config.privacy.user_salt)),
        "session_id": col["session_id"].take(keep),
        "locale": locale.take(keep),
        "day": pa.array(np.floor_divide(ts_us, 86_400_000_000).astype(np.int32), pa.date32()).cast(pa.string()),
        "ts_ms": pa.array(np.floor_divide(ts_us, 1000), pa.int64()),
        "utterance": per_row(0).take(keep),
        "utt": per_row(2).take(keep),
        "utt_norm": per_row(3).take(keep),
        "nlu_intent": col["nlu_intent"].take(keep),
        "nlu_slots": col["nlu_slots"].take(keep),
        "nlu_confidence": confidence.take(keep),
        "response_status": status.take(keep),
        "barge_in": col["barge_in"].take(keep),
        "source_file": pa.repeat(pa.scalar(name, pa.string()), len(keep)),
    }, schema=TURNS_SCHEMA)
    quarantine = _quarantine_rows(col, name, reason, checks, distinct, text_index, config, offset)
    return turns, quarantine, int(duplicate.sum())


def _quarantine_rows(col: dict[str, pa.Array], name: str, reason: np.ndarray, checks: dict[str, np.ndarray],
                     distinct: list, utter_index: pa.Array, config: Config, offset: int) -> pa.Table:
    """Private rows for operators, found again by file and row number: no user key, no event id, and every
    logged string cut, then scrubbed."""
    rows = np.flatnonzero(reason >= 0)
    if not len(rows):
        return QUARANTINE_SCHEMA.empty_table()
    take = pa.array(rows, pa.int64())
    part = {c: col[c].take(take).to_pylist() for c in ("locale", "response_status", "nlu_confidence")}
    out = []
    for k, (row, index) in enumerate(zip(rows, utter_index.take(take).to_pylist(), strict=True)):
        code = ROW_REASONS[reason[row]]
        clean = None if index is None else distinct[index][0]
        also = [c for c in ROW_REASONS if c != code and checks[c][row]]
        detail = _detail(code, {c: v[k] for c, v in part.items()}, clean, config)
        locale = part["locale"][k]
        out.append({"source_file": name, "row_number": offset + int(row), "reason": code,
                    "detail": detail + (f" (also: {', '.join(also)})" if also else ""),
                    "locale": None if locale is None else text.preview(locale, QUARANTINE_FIELD_CHARS),
                    "utterance": None if clean is None else text.preview(clean, QUARANTINE_UTTERANCE_CHARS)})
    return pa.Table.from_pylist(out, schema=QUARANTINE_SCHEMA)


def quarantine_summary(quarantine_dir: Path) -> list[dict]:
    """Quarantined rows per (locale, reason) over every quarantine file: what the manifest, the report and the
    catalog show instead of the private rows. A locale that is not a tag reads '(invalid)', a blank one '(none)'."""
    counts: dict[tuple[str, str], int] = {}
    for path in sorted(Path(quarantine_dir).glob("*.parquet")):
        table = pq.read_table(path, columns=["locale", "reason"])
        for locale, code in zip(table["locale"].to_pylist(), table["reason"].to_pylist()):
            shown = "(none)" if not (locale or "").strip() else normalize_locale(locale) or "(invalid)"
            counts[shown, code] = counts.get((shown, code), 0) + 1
    return [{"locale": loc, "reason": code, "rows": n} for (loc, code), n in sorted(counts.items())]


def _detail(code: str, row: dict, clean: str | None, config: Config) -> str:
    if code == "invalid_locale":
        return f"locale {_quoted(row['locale'])} is not a BCP-47 tag such as en-US or zh-Hant-TW"
    if code == "utterance_too_long":
        return (f"utterance has {len(clean or '')} characters "
                f"(ingest.max_utterance_chars = {config.ingest.max_utterance_chars})")
    if code == "invalid_status":
        return f"response_status {_quoted(row['response_status'])} is not one of {', '.join(RESPONSE_STATUSES)}"
    if code == "invalid_confidence":
        return f"nlu_confidence {row['nlu_confidence']!r} is outside [0, 1]"
    return REASONS[code]


def _quoted(value: str) -> str:
    return repr(text.preview(value, QUARANTINE_FIELD_CHARS))

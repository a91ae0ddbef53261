"""The private quarantine: rejected rows found again by file and row number, cut and scrubbed; and its
summary per (locale, reason), which is all the manifest, report and catalog show."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import text
from selflearn.config import Config
from selflearn.contract import QUARANTINE_SCHEMA, RESPONSE_STATUSES
from selflearn.stages.ingest.rules import REASONS, ROW_REASONS, normalize_locale


QUARANTINE_UTTERANCE_CHARS = 200


QUARANTINE_FIELD_CHARS = 40  # a logged locale or status quoted in the private quarantine


def quarantine_rows(col: dict[str, pa.Array], name: str, reason: np.ndarray, checks: dict[str, np.ndarray],
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

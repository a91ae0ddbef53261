"""Row checks and dedup: one batch of contract columns -> curated turns, quarantined rows, duplicates."""
from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selflearn import privacy, text
from selflearn.config import Config
from selflearn.contract import RESPONSE_STATUSES, TURNS_SCHEMA
from selflearn.stages.ingest.ledger import EventIds
from selflearn.stages.ingest.quarantine import quarantine_rows
from selflearn.stages.ingest.rules import ROW_REASONS, SAFE_NAME, normalize_locale


_INVISIBLE = dict.fromkeys([0x200C, 0x200D, *range(0xFE00, 0xFE10)])  # joiners and variation selectors


class TextCache:
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


def _distinct_texts(utterance: pa.Array, locale: pa.Array, texts: TextCache) -> tuple[list, pa.Array]:
    """(TextCache.get of each distinct (utterance, PII pattern set), its index per row; null for a null text).
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


def curate(col: dict[str, pa.Array], name: str, config: Config, seen: EventIds,
            texts: TextCache, offset: int = 0) -> tuple[pa.Table, pa.Table, int]:
    """(curated turns, quarantine rows, duplicates) of one batch of a file's contract columns, whose first row is
    row `offset` of the file; adds kept ids to seen."""
    locale = _map_distinct(col["locale"], lambda values: [normalize_locale(v) for v in values])
    distinct, text_index = _distinct_texts(col["utterance"], locale, texts)

    def per_row(i: int) -> pa.Array:  # field i of TextCache.get for every row
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
    duplicate = seen.mark(col["event_id"].take(pa.array(valid, pa.int64())))
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
    quarantine = quarantine_rows(col, name, reason, checks, distinct, text_index, config, offset)
    return turns, quarantine, int(duplicate.sum())

"""What the log contract (v1) accepts row by row, the reason code of each rejection, and ingest's errors."""
from __future__ import annotations

import re

from selflearn.contract import RESPONSE_STATUSES

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


# language, optional script, optional region (2 letters or 3 digits); '_' is read as '-'. Variants and
# extensions (ca-ES-valencia, en-US-u-ca-gregory) are rejected: assistant locales never need them.
_LOCALE = re.compile(r"([a-z]{2,3})(?:-([a-z]{4}))?(?:-([a-z]{2}|\d{3}))?")


class IngestError(Exception):
    """A one-line, human message naming the file (and column or row where relevant)."""


class BadFile(Exception):
    def __init__(self, reason: str, message: str, rows: int = 0):
        super().__init__(message)
        self.reason, self.rows = reason, rows


def normalize_locale(raw: str) -> str | None:
    """'en_us' -> 'en-US', 'zh_hant_tw' -> 'zh-Hant-TW'; None when not a BCP-47-like tag."""
    m = _LOCALE.fullmatch(raw.strip().replace("_", "-").lower())
    if not m:
        return None
    lang, script, region = m.groups()
    return lang + (f"-{script.title()}" if script else "") + (f"-{region.upper()}" if region else "")

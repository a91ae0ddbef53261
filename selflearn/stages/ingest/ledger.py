"""The incremental ledger (curated/_ingested.json): what each input file gave, so unchanged files are skipped,
and the accounting every file must balance: rows_in == rows_kept + rows_quarantined + duplicates."""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn.config import Config
from selflearn.contract import LOG_CONTRACT_VERSION

log = logging.getLogger(__name__)


# Bump when ingest or selflearn.text changes what lands in curated turns: a new version re-ingests every file.
INGEST_VERSION = "2"


COUNTS = ("rows_in", "rows_kept", "rows_quarantined", "duplicates")


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


def account_fields(recorded: dict) -> dict:
    return {k: recorded[k] for k in ("source_file", "status", "fingerprint", *COUNTS)}


def settings_fingerprint(config: Config) -> str:
    """What curated turns depend on besides the input files (the salt as a hash): a change re-ingests all."""
    settings = {"ingest_version": INGEST_VERSION, "contract": LOG_CONTRACT_VERSION,
                "max_utterance_chars": config.ingest.max_utterance_chars,
                "pii_patterns": config.privacy.pii_patterns,
                "salt": hashlib.sha256(config.privacy.user_salt.encode()).hexdigest()}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def load_state(path: Path) -> dict:
    if not path.exists():
        return {"settings": None, "files": {}}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        return {"settings": state["settings"], "files": dict(state["files"])}
    except (ValueError, KeyError, TypeError):
        log.warning("ingest state %s is unreadable: re-ingesting every input file", path)
        return {"settings": None, "files": {}}


class EventIds:
    """The event ids ingested so far, for dropping duplicates: the curated files' ids as one Arrow array, tested
    a batch at a time in Arrow (pc.is_in), and the ids this run added as a set. A daily run used to turn every
    curated file's ids into Python strings and a set (all of history, every run); now only the new files' ids
    become Python objects."""

    def __init__(self, curated: Iterable[Path]):
        chunks = [c for path in curated for c in pq.read_table(path, columns=["event_id"])["event_id"].chunks]
        self._before = pa.chunked_array(chunks, pa.string()).combine_chunks() if chunks else pa.array([], pa.string())
        self._added: set[str] = set()

    def mark(self, ids: pa.Array) -> np.ndarray:
        """Per id: whether it was seen before (in a curated file, earlier in this run, or earlier in `ids`);
        every id is seen from now on."""
        if len(self._before):
            before = pc.is_in(ids.cast(pa.string()), value_set=self._before).to_numpy(zero_copy_only=False)
        else:
            before = np.zeros(len(ids), bool)
        duplicate = np.zeros(len(ids), bool)
        for j, event_id in enumerate(ids.to_pylist()):
            duplicate[j] = bool(before[j]) or event_id in self._added
            self._added.add(event_id)
        return duplicate

    def forget(self, ids: list[str]) -> None:
        """Unsee ids this run added (a file that turned out bad halfway)."""
        self._added.difference_update(ids)

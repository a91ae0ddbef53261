"""Which files a run ingests, and the stem of each file's outputs."""
from __future__ import annotations

import hashlib
from pathlib import Path

from selflearn import io
from selflearn.stages.ingest.rules import IngestError


def discover_inputs(logs: str) -> list[Path]:
    """Input files: one Parquet file, a folder (recursive; hive partitions such as day=2026-11-01/ are fine;
    hidden and _-prefixed names skipped) or a glob; sorted by name relative to the logs root."""
    return find_log_files(logs)[1]


def find_log_files(logs: str) -> tuple[Path, list[Path]]:
    root, files = io.find_inputs(str(logs))
    if not files:
        raise IngestError(f"no Parquet files match {str(logs)!r}")
    return root, files


def file_key(source_file: str) -> str:
    """Output file stem for an input, from its name relative to the logs root."""
    return hashlib.sha1(source_file.encode("utf-8")).hexdigest()[:16]

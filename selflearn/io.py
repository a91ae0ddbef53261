"""File I/O shared by stages: finding input files, fingerprinting them, writing outputs atomically.

An output is written to a hidden temporary file in its own folder and moved into place with os.replace,
so a reader (or a re-run after a crash) sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
_GLOB_CHARS = re.compile(r"[*?\[]")
_HIVE_DIR = re.compile(r"^[^=]+=[^=]*$")  # day=2026-11-01


def is_glob(pattern: str) -> bool:
    return bool(_GLOB_CHARS.search(pattern))


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def inputs_root(logs: str) -> Path:
    """The folder that input names are relative to: the given folder, the file's folder or the glob's fixed
    prefix, raised above hive-style key=value folders so a partition has one name however it was addressed
    (logs/, logs/day=2026-11-01/ and logs/day=2026-11-01/part-0.parquet all name it day=2026-11-01/part-0.parquet).
    """
    path = Path(logs)
    if is_glob(logs):
        fixed = []
        for part in path.parts:
            if is_glob(part):
                break
            fixed.append(part)
        base = Path(*fixed) if fixed else Path(".")
    elif path.is_dir():
        base = path
    else:
        base = path.parent
    base = Path(os.path.abspath(base))
    while _HIVE_DIR.match(base.name) and base.parent != base:
        base = base.parent
    return base


def _walk_parquet(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        found += [Path(dirpath, f) for f in filenames
                  if f.lower().endswith(PARQUET_SUFFIXES) and not f.startswith((".", "_"))]
    return found


def find_inputs(logs: str) -> tuple[Path, list[Path]]:
    """(root, files sorted by their path relative to root). A file path is taken whatever its name; a folder
    contributes its *.parquet/*.parq/*.pq files, recursively; a glob contributes what it matches (folders it
    matches are walked like a folder). Hidden and _-prefixed files and folders are skipped. May be empty."""
    root = inputs_root(logs)
    path = Path(logs)
    if is_glob(logs):
        files: list[Path] = []
        for match in glob.glob(logs, recursive=True):
            m = Path(os.path.abspath(match))
            files += _walk_parquet(m) if m.is_dir() else [m] if m.is_file() else []
    elif path.is_dir():
        files = _walk_parquet(Path(os.path.abspath(path)))
    elif path.is_file():
        return root, [Path(os.path.abspath(path))]
    else:
        files = []
    rels = {f: f.relative_to(root) for f in set(files)}
    return root, sorted((f for f, rel in rels.items() if not _is_hidden(rel)), key=lambda f: rels[f].as_posix())


def relative_name(path: Path, root: Path) -> str:
    return Path(os.path.abspath(path)).relative_to(root).as_posix()


def fingerprint(data: bytes) -> str:
    """size:sha256 of a file's bytes; equal fingerprints mean the same content."""
    return f"{len(data)}:{hashlib.sha256(data).hexdigest()}"


def fingerprint_file(path: Path, chunk: int = 1 << 20) -> str:
    """fingerprint() of a file's content, read a chunk at a time (a large log file is never held whole)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
            size += len(block)
    return f"{size}:{digest.hexdigest()}"


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Run `write` on a temp file beside `path`, fsync, then rename over `path` (readers never see half a file)."""
    path = Path(path)
    if path.is_symlink():  # a published output (selflearn.outdir): update the run's file, keep the link
        path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _replace(tmp, path)
    return path


def atomic_write_parquet(table: pa.Table, path: Path, **write_options: Any) -> Path:
    """Write `table` to `path` atomically. Options go to pyarrow.parquet.write_table (zstd by default).
    Deterministic: the same table gives the same bytes."""
    write_options.setdefault("compression", "zstd")
    return _atomic_write(path, lambda fh: pq.write_table(table, fh, **write_options))


def atomic_write_json(obj: Any, path: Path) -> Path:
    """Write `obj` as pretty, key-sorted UTF-8 JSON atomically (stable bytes for equal objects)."""
    return atomic_write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", path)


def atomic_write_arrays(path: Path, **arrays: np.ndarray) -> Path:
    """Write named numpy arrays as one uncompressed .npz file atomically (read back with np.load)."""
    return _atomic_write(path, lambda fh: np.savez(fh, **arrays))


def atomic_write_text(content: str, path: Path) -> Path:
    """Write UTF-8 text atomically (temp file in the same folder, fsync, rename)."""
    return _atomic_write(path, lambda fh: fh.write(content.encode("utf-8")))


class AtomicParquetWriter:
    """Stream tables into one Parquet file atomically: a temporary file beside `path`, opened at the first
    write, fsynced and renamed over `path` by close(); abort() (or an exception inside `with`) removes it and
    leaves `path` as it was. close() returns whether anything was written (nothing written: nothing changes).
    Deterministic: the same tables in the same order give the same bytes."""

    def __init__(self, path: Path, schema: pa.Schema, **write_options: Any):
        self.path, self.schema = Path(path), schema
        self.options = {"compression": "zstd", **write_options}
        self._tmp: Path | None = None
        self._fh: BinaryIO | None = None
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = _temp_path(self.path)
            self._fh = open(self._tmp, "wb")
            self._writer = pq.ParquetWriter(self._fh, self.schema, **self.options)
        self._writer.write_table(table)

    def close(self) -> bool:
        if self._writer is None:
            return False
        try:
            self._writer.close()
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        except BaseException:
            self.abort()
            raise
        _replace(self._tmp, self.path)
        self._writer = None
        return True

    def abort(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._writer = None

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.abort()

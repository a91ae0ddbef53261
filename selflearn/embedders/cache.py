"""Persistent, content-addressed embedding cache: a text is encoded once per model, ever.

Layout: `<cache_dir>/<sanitised embedder name>-<8 hex of sha1(name)>/shard-<time>-<pid>-<rand>.npz`,
each shard holding `keys` (n, 20) uint8 = sha1(utf-8 text), `vectors` (n, dim) float32, `name`, `dim`.
A shard is written to a dot-prefixed `.tmp` file and renamed into place (os.replace), so readers see
whole shards or nothing; leftover tmp files from a crash are ignored, and an unreadable shard is
skipped with a warning (its texts are simply encoded again). Shards are append-only, so several
processes may share a cache; new shards from other processes are picked up on every `embed` call.
Many small shards are merged by `compact()` (called automatically past MAX_SHARDS).

In memory: one dict sha1 digest -> row. Vectors stay on disk: each shard's `vectors` member is stored
uncompressed, so it is memory-mapped in place and only the rows a run gathers are read (a cache of
millions of texts costs page cache, not process memory). 1M lookups take well under a second (sha1 per
text is the only per-row Python work).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from selflearn.embedders.base import Embedder, check_texts

log = logging.getLogger(__name__)

KEY_BYTES = 20
SHARD_GLOB = "shard-*.npz"
MAX_SHARDS = 32  # compact() beyond this many shard files
ENCODE_CHUNK = 2048  # texts per encode() call: progress granularity; backends batch further inside
FILL_CHUNK = 8192    # cached rows copied into a result at a time


def text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


def model_folder_name(name: str) -> str:
    """Filesystem-safe and collision-free: 'st:org/model' and 'st:org_model' get different folders."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "model"
    return f"{safe}-{hashlib.sha1(name.encode('utf-8')).hexdigest()[:8]}"


class EmbeddingCache:
    def __init__(self, cache_dir: Path, embedder: Embedder, shard_size: int = 16384):
        self.embedder = embedder
        self.folder = Path(cache_dir) / model_folder_name(embedder.name)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size  # also how much work a crash can lose
        self.stats: dict = {"hits": 0, "misses": 0}
        self._dim: int | None = None  # read lazily from the embedder (st backends load the model for it)
        self._index: dict[bytes, int] = {}
        self._blocks: list[np.ndarray] = []
        self._block_starts: list[int] = []
        self._seen_shards: set[str] = set()
        self._refresh()

    def __len__(self) -> int:
        return len(self._index)

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embedder.dim)
        return self._dim

    def embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """float32 (len(texts), dim) in input order; encodes only texts not cached yet."""
        texts = check_texts(texts)
        self._refresh()
        sha1 = hashlib.sha1
        keys = [sha1(t.encode("utf-8")).digest() for t in texts]  # == text_key, inlined: 1M texts ~0.6 s
        rows = np.fromiter((self._index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
        missing = np.flatnonzero(rows < 0)

        # The result is filled in place: cached rows straight from their (memory-mapped) shards, new texts as
        # they are encoded. Each new shard is mapped back from disk once written, so the process holds the
        # vectors once (the result), not twice (result and cache) as when new vectors stayed in memory.
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        cached = np.flatnonzero(rows >= 0)
        self._fill(out, cached, rows[cached])

        # encode each distinct missing text once, in chunks, persisting every `shard_size` vectors
        todo: dict[bytes, int] = {}
        for pos in missing:
            todo.setdefault(keys[pos], int(pos))
        todo_keys = list(todo)
        bar = _progress_bar(len(todo_keys), self.embedder.name, progress)
        pending_keys: list[bytes] = []
        for start in range(0, len(todo_keys), ENCODE_CHUNK):
            chunk = todo_keys[start:start + ENCODE_CHUNK]
            at = [todo[k] for k in chunk]
            out[at] = self._encode([texts[pos] for pos in at])
            pending_keys += chunk
            if bar is not None:
                bar.update(len(chunk))
            if len(pending_keys) >= self.shard_size:
                self._add_shard(pending_keys, out[[todo[k] for k in pending_keys]])
                pending_keys = []
        if pending_keys:
            self._add_shard(pending_keys, out[[todo[k] for k in pending_keys]])
        if bar is not None:
            bar.close()

        if len(missing):  # a new text given more than once: every position gets the vector encoded for it
            first = np.fromiter((todo[keys[pos]] for pos in missing), dtype=np.int64, count=len(missing))
            out[missing] = out[first]
        self.stats = {"hits": int(len(texts) - len(missing)), "misses": len(todo_keys)}
        if len(self._seen_shards) > MAX_SHARDS:
            self.compact()
        return out

    def compact(self) -> None:
        """Merge every shard this process knows into one (written first, then the old ones removed)."""
        if len(self._seen_shards) <= 1 or not self._index:
            return
        old = sorted(self._seen_shards)
        keys = list(self._index)  # dict order == row order
        merged = self._write_shard(keys, self._gather(np.arange(len(keys))))
        for shard in old:
            try:
                (self.folder / shard).unlink()
            except FileNotFoundError:  # another process compacted first
                pass
        self._seen_shards = {merged}
        log.info("embedding cache %s: compacted %d shards into %s", self.folder, len(old), merged)

    # -- internals -------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.ascontiguousarray(self.embedder.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise ValueError(f"embedder {self.embedder.name} returned shape {vectors.shape}, "
                             f"expected ({len(texts)}, {self.dim})")
        return vectors

    def _add_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        name = self._write_shard(keys, vectors)
        self._seen_shards.add(name)
        try:  # mapped from disk like every shard read back: on disk and in page cache, not in this process
            vectors = _mapped_member(self.folder / name, "vectors.npy")
        except FileNotFoundError:  # compacted away by another process already: keep the rows we have
            pass
        self._append(keys, vectors)

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> str:
        name = f"shard-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.folder / f".{name}.tmp"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=key_array, vectors=vectors, name=np.array(self.embedder.name), dim=np.array(self.dim))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / name)
        return name

    def _refresh(self) -> None:
        """Map shards not seen yet (ours from earlier runs, or written meanwhile by other processes)."""
        for path in sorted(self.folder.glob(SHARD_GLOB)):
            if path.name in self._seen_shards:
                continue
            self._seen_shards.add(path.name)
            loaded = self._read_shard(path)
            if loaded is not None:
                self._append(*loaded)   # one block per shard: compaction keeps them few

    def _read_shard(self, path: Path) -> tuple[list[bytes], np.ndarray] | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                name, key_array = str(z["name"]), z["keys"]
            vectors = _mapped_member(path, "vectors.npy")
        except FileNotFoundError:  # compacted away by another process between glob and open
            return None
        except Exception as exc:  # truncated or corrupt: ignore it, its texts get re-encoded
            log.warning("embedding cache: skipping unreadable shard %s (%s)", path, exc)
            return None
        if (name != self.embedder.name or key_array.ndim != 2 or key_array.shape[1] != KEY_BYTES
                or vectors.dtype != np.float32 or vectors.shape != (len(key_array), self.dim)):
            log.warning("embedding cache: skipping shard %s (model %r, shape %s) not matching %r dim %d",
                        path, name, vectors.shape, self.embedder.name, self.dim)
            return None
        flat = key_array.tobytes()
        keys = [flat[i:i + KEY_BYTES] for i in range(0, len(flat), KEY_BYTES)]
        return keys, vectors

    def _append(self, keys: list[bytes], vectors: np.ndarray) -> None:
        """Index rows whose key is new (overlapping shards from concurrent writers are fine)."""
        index = self._index
        fresh = [i for i, k in enumerate(keys) if k not in index]
        if not fresh:
            return
        if len(fresh) < len(keys):
            keys = [keys[i] for i in fresh]
            vectors = vectors[fresh]
        start = len(index)
        index.update(zip(keys, range(start, start + len(keys))))
        self._block_starts.append(start)
        self._blocks.append(vectors)

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        self._fill(out, np.arange(len(rows)), rows)
        return out

    def _fill(self, out: np.ndarray, positions: np.ndarray, rows: np.ndarray) -> None:
        """out[positions[i]] = the vector of cache row rows[i], block by block and a slice of rows at a time
        (reading a block's rows copies them once on their way into `out`: FILL_CHUNK rows, not all of them)."""
        if len(rows) == 0:
            return
        block_of = np.searchsorted(np.asarray(self._block_starts), rows, side="right") - 1
        for b in np.unique(block_of):
            sel = np.flatnonzero(block_of == b)
            for start in range(0, len(sel), FILL_CHUNK):
                part = sel[start:start + FILL_CHUNK]
                out[positions[part]] = self._blocks[b][rows[part] - self._block_starts[b]]


def _mapped_member(path: Path, member: str) -> np.ndarray:
    """A read-only memory map of an uncompressed .npy member inside an .npz (np.savez stores, never deflates);
    loaded into memory instead when the member is compressed or Fortran-ordered."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED:
        with np.load(path, allow_pickle=False) as z:
            return z[member.removesuffix(".npy")]
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local_header = fh.read(30)   # fixed part of a zip local file header; name and extra field follow
        if local_header[:4] != b"PK\x03\x04":
            raise ValueError(f"{member}: not a zip local file header")
        name_len, extra_len = struct.unpack("<HH", local_header[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(fh)
        offset = fh.tell()
    if fortran_order or dtype.hasobject:
        with np.load(path, allow_pickle=False) as z:
            return z[member.removesuffix(".npy")]
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset)


def _progress_bar(total: int, name: str, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"embedding ({name})", unit="text")

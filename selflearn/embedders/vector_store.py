"""The embedding cache as a Parquet dataset, for engines whose workers embed (Spark): joined, never collected.

Layout: `<cache_dir>/<model folder (cache.model_folder_name)>/vectors/part-<rows>-<first key>-<last key>.parquet`, rows
(model, text_key = sha1 hex of the UTF-8 text, vector list<float32>). Content-addressed (a text's key says
which text it is, the folder and `model` which model), append-only (a run adds one part holding the texts no
part held yet) and atomic (a part is written under a hidden name and renamed into place: readers see whole
parts or none; Spark and this module skip hidden files). The same model folder holds the in-process cache's
`shard-*.npz` (embedders/cache.py): `npz_shards_to_import` lists those whose vectors the dataset has not taken
over yet, so a cache filled by DuckDB runs serves Spark runs with the very same vectors.

`encode_batch` runs in the engine's Python workers: the embedder is built once per worker process
(`get_embedder` keeps one instance per setting) and encodes one Arrow batch of new texts at a time.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from selflearn.config import EmbeddingConfig
from selflearn.embedders.cache import KEY_BYTES, SHARD_GLOB, model_folder_name

VECTORS_SCHEMA = pa.schema([("model", pa.string()), ("text_key", pa.string()), ("vector", pa.list_(pa.float32()))])
TEXTS_SCHEMA = pa.schema([("utt_norm", pa.string()), ("text_key", pa.string())])
VECTORS_FOLDER = "vectors"
PART_GLOB = "part-*.parquet"
CHUNK_VALUES = 1 << 28        # floats per list chunk: int32 offsets stay below 2**31
IMPORTED_PREFIX = "part-npz-"   # the part that took over an npz shard's vectors: `part-npz-<shard stem>.parquet`


class VectorStore:
    """The Parquet vectors of one model under `cache_dir`."""

    def __init__(self, cache_dir: Path, model_name: str):
        self.model_name = model_name
        self.model_folder = Path(cache_dir) / model_folder_name(model_name)
        self.folder = self.model_folder / VECTORS_FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)

    def parts(self) -> list[Path]:
        """Every published part, in name order (hidden temp files of a run in progress or killed are not)."""
        return sorted(self.folder.glob(PART_GLOB))

    def staging_path(self) -> Path:
        """Where a run writes its new part before `publish` names it (hidden: readers skip it)."""
        return self.folder / f".staging-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"

    def publish(self, staged: Path) -> Path:
        """Give a written part its name, atomically. The name comes from what the part holds (row count, first
        and last text key, from the Parquet footer), so two runs that add the same texts from fresh caches end
        with the same files. A part already there under that name is never replaced (a concurrent run that
        added a different set with the same count and extremes keeps its part): this one then gets a name no
        other process picks."""
        name = _content_name(staged)
        if name is not None:
            target = self.folder / name
            try:
                os.link(staged, target)   # fails if the name exists: no silent replacement
            except FileExistsError:
                pass
            except OSError:   # a file system without hard links: rename, unless the name is taken
                if not target.exists():
                    os.replace(staged, target)
                    return target
            else:
                staged.unlink()
                return target
        unique = self.folder / f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        os.replace(staged, unique)
        return unique

    def npz_shards_to_import(self) -> list[Path]:
        """The in-process cache's shards of this model whose vectors no part has taken over yet."""
        taken = {p.name.removeprefix(IMPORTED_PREFIX).removesuffix(".parquet") for p in self.parts()
                 if p.name.startswith(IMPORTED_PREFIX)}
        return [p for p in sorted(self.model_folder.glob(SHARD_GLOB)) if p.stem not in taken]

    def imported_part(self, shard: Path) -> Path:
        return self.folder / f"{IMPORTED_PREFIX}{shard.stem}.parquet"


def _content_name(part: Path) -> str | None:
    """`part-<rows>-<first key>-<last key>.parquet` from the file's footer statistics; None without them."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(part).metadata
    column = meta.schema.names.index("text_key")
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lows.append(stats.min)
        highs.append(stats.max)
    if not lows:
        return None
    low, high = (v.decode() if isinstance(v, bytes) else v for v in (min(lows), max(highs)))
    return f"part-{meta.num_rows}-{low}-{high}.parquet"


def npz_shard_vectors(shard: Path, model_name: str) -> pa.Table | None:
    """An in-process cache shard as VECTORS_SCHEMA rows; None when it is unreadable or of another model
    (the in-process cache skips those too)."""
    try:
        with np.load(shard, allow_pickle=False) as z:
            name, keys, vectors = str(z["name"]), z["keys"], z["vectors"]
    except Exception:  # noqa: BLE001 - truncated, or compacted away meanwhile: its texts get embedded again
        return None
    if name != model_name or keys.ndim != 2 or keys.shape[1] != KEY_BYTES or vectors.dtype != np.float32:
        return None
    return vectors_table(model_name, [bytes(k).hex() for k in keys], vectors)


def vectors_table(model_name: str, text_keys: list[str], vectors: np.ndarray) -> pa.Table:
    """VECTORS_SCHEMA rows; the vector column in chunks of at most CHUNK_VALUES floats (a list array's offsets
    are int32: a compacted npz shard can hold more)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    step = max(1, CHUNK_VALUES // max(dim, 1))
    chunks = [pa.ListArray.from_arrays(pa.array(np.arange(len(block) + 1, dtype=np.int32) * dim),
                                       pa.array(block.reshape(-1)))
              for block in (vectors[start:start + step] for start in range(0, len(text_keys), step))]
    column = pa.chunked_array(chunks, type=VECTORS_SCHEMA.field("vector").type)
    return pa.table([pa.array([model_name] * len(text_keys), pa.string()), pa.array(text_keys, pa.string()), column],
                    schema=VECTORS_SCHEMA)


def encode_batch(batch: pa.RecordBatch, embedding: EmbeddingConfig) -> pa.RecordBatch:
    """TEXTS_SCHEMA batch -> VECTORS_SCHEMA batch: the texts encoded by the configured embedder (built once
    per process and reused by every later batch and task the process runs)."""
    from selflearn.embedders import get_embedder

    embedder = get_embedder(embedding)
    texts = batch.column("utt_norm").to_pylist()
    vectors = embedder.encode(texts) if texts else np.empty((0, 0), dtype=np.float32)
    table = vectors_table(embedder.name, batch.column("text_key").to_pylist(), vectors)
    if not table.num_rows:
        return pa.RecordBatch.from_pylist([], schema=VECTORS_SCHEMA)
    (rows,) = table.to_batches()   # one chunk: an engine's batch holds far fewer than CHUNK_VALUES floats
    return rows


def vector_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A list<float32> column of equal-length vectors as a C-contiguous (n, dim) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if len(column) == 0:
        return np.empty((0, 0), dtype=np.float32)
    if column.null_count:
        raise ValueError("a text has no vector: the cache join lost it")
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat.reshape(len(column), -1), dtype=np.float32)


class ChunkedVectors:
    """(n, dim) float32 vectors indexed by row arrays, kept in the memory of the collected Arrow chunks (each a
    zero-copy view): gathering rows copies only those rows, so the driver never holds a second full copy
    (concatenating the chunks would, for a moment, hold two)."""

    def __init__(self, column: pa.ChunkedArray):
        self.blocks = [vector_matrix(chunk) for chunk in column.chunks if len(chunk)]
        self.starts = np.cumsum([0, *(len(block) for block in self.blocks)])
        self.dim = self.blocks[0].shape[1] if self.blocks else 0

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, rows) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        block_of = np.searchsorted(self.starts, rows, side="right") - 1
        for block in np.unique(block_of):
            at = np.flatnonzero(block_of == block)
            out[at] = self.blocks[block][rows[at] - self.starts[block]]
        return out

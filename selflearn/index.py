"""FAISS k-nearest-neighbour search over unit vectors (cosine = inner product).

Exact (flat) search up to `exact_max_vectors`, an IVF index above that. On a GPU when faiss was built with
CUDA and a device is visible, otherwise on the CPU. The chosen index is reported so runs are explainable.
`KnnCache` keeps each search's result in the output folder and hands it back while the search's inputs stay
the same (a re-run over the same days); faiss's similarities depend on how a search is batched (to ~1e-7), so
results are reused whole, per search, never merged from other searches.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from selflearn.io import atomic_write_arrays


@dataclass
class KnnResult:
    similarities: np.ndarray  # (n_queries, k) float32, -inf where fewer than k neighbours exist
    neighbours: np.ndarray    # (n_queries, k) int64, -1 where missing
    index_kind: str           # e.g. "flat-cpu", "ivf1024-gpu"


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def build_index(vectors: np.ndarray, exact_max_vectors: int = 50_000, use_gpu: bool = True,
                seed: int = 1234) -> tuple[faiss.Index, str]:
    n, dim = vectors.shape
    if n <= exact_max_vectors:
        index, kind = faiss.IndexFlatIP(dim), "flat"
    else:
        nlist = int(min(4 * math.sqrt(n), n // 39))  # faiss wants >= 39 training points per list
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = vectors[rng.choice(n, size=min(n, nlist * 64), replace=False)]
        index.cp.seed = seed  # deterministic k-means: re-runs give identical neighbours
        index.train(sample)
        index.nprobe = min(nlist, 10)  # recall@10 ~0.98 vs exact at 100k MASSIVE-like vectors (benchmarks/knn.py)
        kind = f"ivf{nlist}"
    if use_gpu and gpu_available():
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, 0, index)
        kind += "-gpu"
    else:
        kind += "-cpu"
    index.add(vectors)
    return index, kind


def knn(vectors: np.ndarray, queries: np.ndarray, k: int, exact_max_vectors: int = 50_000,
        use_gpu: bool = True) -> KnnResult:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if len(vectors) == 0 or len(queries) == 0:
        empty = np.zeros((len(queries), 0))
        return KnnResult(empty.astype(np.float32), empty.astype(np.int64), "none")
    index, kind = build_index(vectors, exact_max_vectors, use_gpu)
    k = min(k, len(vectors))
    sims, ids = index.search(queries, k)
    return KnnResult(sims, ids, kind)


def _options_key(k: int, exact_max_vectors: int, use_gpu: bool) -> bytes:
    # the faiss build and thread count too: its BLAS sums differ in the last bit across them
    return repr((faiss.__version__, faiss.omp_get_max_threads(), use_gpu and gpu_available(), k,
                 exact_max_vectors)).encode()


@dataclass
class KnnCache:
    """kNN searches over rows of one set of vectors, each result kept under `folder` (one .npz per search,
    named by a digest of its inputs) and read back while they are unchanged. `prune()` removes the results
    this cache object did not hand out, so the folder holds the last run's searches only."""
    folder: Path
    used: set[str] = field(default_factory=set)
    hits: int = 0

    def searcher(self, vectors, rows: np.ndarray):
        """(target_rows, query_rows, k, exact_max_vectors, use_gpu) -> `knn(vectors[target_rows],
        vectors[query_rows], ...)`, for searches over `rows` of `vectors` (anything `vectors[rows]` gathers
        from). The content of vectors[rows] is hashed once here; a search's key adds its row numbers, so the
        vectors are not hashed again per search (~600 MB over a 1 M-turn run's searches)."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        content = hashlib.blake2b(digest_size=20)
        searched = np.ascontiguousarray(vectors[rows], dtype=np.float32)
        content.update(repr((len(vectors), searched.shape)).encode())
        content.update(rows.tobytes())
        if searched.size:  # a memoryview of an empty array cannot be cast to bytes
            content.update(memoryview(searched).cast("B"))
        covered = np.zeros(len(vectors), dtype=bool)
        covered[rows] = True

        def search(target_rows: np.ndarray, query_rows: np.ndarray, k: int, exact_max_vectors: int = 50_000,
                   use_gpu: bool = True) -> KnnResult:
            target_rows = np.asarray(target_rows, dtype=np.int64)
            query_rows = np.asarray(query_rows, dtype=np.int64)
            if not (covered[target_rows].all() and covered[query_rows].all()):
                raise ValueError("a cached search reads rows outside those its cache key covers")
            key = content.copy()
            key.update(_options_key(k, exact_max_vectors, use_gpu))
            key.update(repr((len(target_rows), len(query_rows))).encode())
            key.update(target_rows.tobytes())
            key.update(query_rows.tobytes())
            return self._read_or_search(f"{key.hexdigest()}.npz", lambda: knn(
                vectors[target_rows], vectors[query_rows], k, exact_max_vectors, use_gpu))

        return search

    def _read_or_search(self, name: str, run_search) -> KnnResult:
        self.used.add(name)
        try:
            with np.load(self.folder / name, allow_pickle=False) as kept:
                found = KnnResult(kept["similarities"], kept["neighbours"], str(kept["index_kind"]))
            self.hits += 1
            return found
        except (OSError, ValueError, KeyError):  # not there yet, or unreadable: search again
            pass
        result = run_search()
        atomic_write_arrays(self.folder / name, similarities=result.similarities, neighbours=result.neighbours,
                            index_kind=np.array(result.index_kind))
        return result

    def prune(self) -> None:
        for path in self.folder.glob("*.npz") if self.folder.is_dir() else []:
            if path.name not in self.used:
                path.unlink(missing_ok=True)

"""FAISS k-nearest-neighbour search over unit vectors (cosine = inner product).

Exact (flat) search up to `exact_max_vectors`, an IVF index above that. On a GPU when faiss was built with
CUDA and a device is visible, otherwise on the CPU. The chosen index is reported so runs are explainable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np


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

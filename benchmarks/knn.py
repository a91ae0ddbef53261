"""FAISS kNN vs sentence-transformers util.paraphrase_mining on the same unit vectors.

    .venv/bin/python benchmarks/knn.py --sizes 10000 100000 --k 10

Vectors: real USE-multilingual embeddings of MASSIVE dev utterances, topped up with noisy copies to reach
the size (so the neighbourhood structure is realistic). Exact search is the reference for recall@k.
Reports time and recall@10 for: paraphrase_mining (exact, torch), FAISS flat (exact) and FAISS IVF (approx).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from selflearn import index as knn_index

ROOT = Path(__file__).resolve().parent.parent
MASSIVE = ROOT.parent / "shared" / "data" / "massive-dev" / "massive_dev.parquet"


def base_vectors() -> np.ndarray:
    from selflearn.config import EmbeddingConfig
    from selflearn.embedders import get_embedder
    if MASSIVE.exists():
        texts = pd.read_parquet(MASSIVE)["utt"].tolist()
    else:
        texts = pd.read_parquet(ROOT / "selflearn" / "data" / "massive_excerpt.parquet")["utt"].tolist()
    return get_embedder(EmbeddingConfig()).encode(texts)


def grow(vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = vectors[rng.integers(0, len(vectors), n)]
    # per-dimension noise 0.02 (norm ~0.45 in 512-d): copies stay near their sentence, like paraphrases do
    noisy = picks + rng.normal(scale=0.02, size=picks.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    return np.ascontiguousarray(noisy, dtype=np.float32)


def paraphrase_mining_knn(vectors: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    """util.paraphrase_mining_embeddings returns the top pairs; rebuild per-query neighbour lists from them."""
    from sentence_transformers import util
    emb = torch.from_numpy(vectors)
    start = time.perf_counter()
    pairs = util.paraphrase_mining_embeddings(emb, top_k=k, max_pairs=len(vectors) * k * 2)
    elapsed = time.perf_counter() - start
    neighbours = [[] for _ in range(len(vectors))]
    for _, i, j in pairs:
        neighbours[i].append(j)
        neighbours[j].append(i)
    out = np.full((len(vectors), k), -1, dtype=np.int64)
    for i, row in enumerate(neighbours):
        row = row[:k]
        out[i, :len(row)] = row
    return elapsed, out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(1, (truth >= 0).sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    base = base_vectors()
    rows = []
    for n in args.sizes:
        vecs = grow(base, n)
        k = args.k
        # exact reference: FAISS flat, dropping self matches
        t = time.perf_counter()
        res = knn_index.knn(vecs, vecs, k + 1, exact_max_vectors=n + 1, use_gpu=False)
        flat_s = time.perf_counter() - t
        exact = np.array([[j for j in row if j != i][:k] for i, row in enumerate(res.neighbours)])
        t = time.perf_counter()
        ivf = knn_index.knn(vecs, vecs, k + 1, exact_max_vectors=0, use_gpu=False)
        ivf_s = time.perf_counter() - t
        approx = np.array([[j for j in row if j != i][:k] for i, row in enumerate(ivf.neighbours)])
        pm_s, pm = paraphrase_mining_knn(vecs, k)
        row = {"n": n, "k": k, "paraphrase_mining_s": round(pm_s, 2), "paraphrase_mining_recall": round(recall(pm, exact), 4),
               "faiss_flat_s": round(flat_s, 2), "faiss_flat_recall": 1.0, "faiss_ivf_s": round(ivf_s, 2),
               "faiss_ivf_recall": round(recall(approx, exact), 4), "ivf_index": ivf.index_kind,
               "speedup_flat": round(pm_s / flat_s, 1), "speedup_ivf": round(pm_s / ivf_s, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "knn.json").write_text(json.dumps({"date": date.today().isoformat(), "machine":
        f"{platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}", "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

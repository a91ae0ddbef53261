"""Embed each distinct normalized text of the window once (sql/unique_texts.sql), through the cache.

    embed: turn_friction -> embedder, text_vectors (rephrase.VectorLookup), embed_stats (for the manifest)
"""
from __future__ import annotations

from pathlib import Path

from selflearn.embedders import EmbeddingCache, get_embedder
from selflearn.stages.base import Context, Stage
from selflearn.stages.rephrase import VectorLookup


def _embed(ctx: Context, turn_friction) -> dict:
    cfg = ctx.cfg.embedding
    embedder = get_embedder(cfg)
    cache = EmbeddingCache(Path(cfg.cache_dir) if cfg.cache_dir else ctx.layout.embedding_cache, embedder)
    texts = ctx.engine.to_arrow(ctx.engine.sql("unique_texts", {"turn_friction": turn_friction}))
    texts = texts.column("utt_norm").to_pylist()
    vectors = cache.embed(texts, progress=ctx.cfg.run.progress)
    stats = {"unique_texts": len(texts), "embedded": cache.stats.get("misses", 0),
             "cache_hits": cache.stats.get("hits", 0), "embedder": embedder.name}
    ctx.say(f"      embedded {stats['embedded']} new of {len(texts)} unique texts with {embedder.name}")
    return {"embedder": embedder, "text_vectors": VectorLookup(texts, vectors), "embed_stats": stats}


EMBED = Stage("embed", inputs=("turn_friction",), outputs=("embedder", "text_vectors", "embed_stats"), run=_embed)

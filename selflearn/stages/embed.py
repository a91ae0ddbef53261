"""Embed each distinct normalized text of the window once (sql/unique_texts.sql), through the cache.

    embed: day_texts -> embedder, text_vectors, embed_stats (for the manifest)

Where the engine runs batch functions in this process (DuckDB), the texts come to the driver and go through the
in-process cache (embedders/cache.py); `text_vectors` is a rephrase.VectorLookup. Where the engine's workers run
them (Spark), nothing per text reaches the driver: the cache is a Parquet dataset (embedders/vector_store.py),
`sql/new_texts.sql` anti-joins it to find the texts to embed, the workers encode them (`map_batches`, the model
loaded once per worker), the engine writes them as one new part, and `sql/window_vectors.sql` joins the window's
texts to their vectors; `text_vectors` is that engine relation (utt_norm, vector), which rephrase and variants join.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from selflearn.embedders import EmbeddingCache, get_embedder
from selflearn.embedders import vector_store
from selflearn.stages.base import Context, Stage
from selflearn.stages.rephrase import VectorLookup


def _embed(ctx: Context, day_texts) -> dict:
    cfg = ctx.cfg.embedding
    embedder = get_embedder(cfg)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else ctx.layout.embedding_cache
    if not ctx.engine.batches_in_process:
        return _embed_on_workers(ctx, day_texts, embedder.name, cache_dir)
    cache = EmbeddingCache(cache_dir, embedder)
    texts = ctx.engine.to_arrow(ctx.engine.sql("unique_texts", {"day_texts": day_texts}))
    texts = texts.column("utt_norm").to_pylist()
    vectors = cache.embed(texts, progress=ctx.cfg.run.progress)
    stats = {"unique_texts": len(texts), "embedded": cache.stats.get("misses", 0),
             "cache_hits": cache.stats.get("hits", 0), "embedder": embedder.name}
    ctx.say(f"      embedded {stats['embedded']} new of {len(texts)} unique texts with {embedder.name}")
    return {"embedder": embedder, "text_vectors": VectorLookup(texts, vectors), "embed_stats": stats}


def _embed_on_workers(ctx: Context, day_texts, model_name: str, cache_dir: Path) -> dict:
    engine, store = ctx.engine, vector_store.VectorStore(cache_dir, model_name)
    _import_npz_shards(ctx, store)
    window_texts = engine.sql("unique_texts", {"day_texts": day_texts})
    new_texts = engine.sql("new_texts", {"window_texts": window_texts, "cached_vectors": _cached(ctx, store)})
    encode = partial(vector_store.encode_batch, embedding=ctx.cfg.embedding)
    new_vectors = engine.map_batches(new_texts, encode, vector_store.VECTORS_SCHEMA)
    embedded = engine.count(new_vectors)
    if embedded:
        staged = store.staging_path()
        engine.write_parquet(new_vectors, staged)   # hidden until published: a failed run publishes no part
        store.publish(staged)
    text_vectors = engine.sql("window_vectors", {"window_texts": window_texts, "cached_vectors": _cached(ctx, store)})
    unique = engine.count(window_texts)
    stats = {"unique_texts": unique, "embedded": embedded, "cache_hits": unique - embedded, "embedder": model_name}
    ctx.say(f"      embedded {embedded} new of {unique} unique texts with {model_name} on the engine's workers")
    return {"embedder": get_embedder(ctx.cfg.embedding), "text_vectors": text_vectors, "embed_stats": stats}


def _cached(ctx: Context, store: vector_store.VectorStore):
    return ctx.engine.load_parquet(store.parts(), vector_store.VECTORS_SCHEMA)


def _import_npz_shards(ctx: Context, store: vector_store.VectorStore) -> None:
    """Take over the in-process cache's shards of this model (runs on DuckDB filled them), one shard at a time:
    only keys no part holds yet, so each (model, text) stays once in the dataset and keeps the vector it had
    (encoders that batch can differ in the last bits from one batch to another)."""
    for shard in store.npz_shards_to_import():
        table = vector_store.npz_shard_vectors(shard, store.model_name)
        if table is None:
            continue
        fresh = ctx.engine.sql("new_vectors", {"shard_vectors": ctx.engine.from_arrow(table),
                                               "cached_vectors": _cached(ctx, store)})
        ctx.engine.write_parquet(fresh, store.imported_part(shard))   # the marker that this shard is taken over


EMBED = Stage("embed", inputs=("day_texts",), outputs=("embedder", "text_vectors", "embed_stats"), run=_embed)

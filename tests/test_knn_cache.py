"""The kNN cache: a search whose inputs are unchanged is read back whole, with the result faiss gave."""
import numpy as np
import pandas as pd
import pytest

from selflearn import index as knn_index
from selflearn.stages import variants


def _unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_unchanged_search_is_read_back_and_a_changed_one_searched_again(tmp_path):
    vectors = _unit(400, 1)
    targets, queries = np.arange(0, 300), np.arange(300, 340)
    options = dict(k=7, exact_max_vectors=1000, use_gpu=False)
    fresh = knn_index.knn(vectors[targets], vectors[queries], **options)
    first = knn_index.KnnCache(tmp_path).searcher(vectors, np.arange(340))(targets, queries, **options)
    again = knn_index.KnnCache(tmp_path)
    second = again.searcher(vectors, np.arange(340))(targets, queries, **options)
    assert again.hits == 1
    for result in (first, second):
        assert np.array_equal(result.similarities, fresh.similarities)
        assert np.array_equal(result.neighbours, fresh.neighbours)
        assert result.index_kind == fresh.index_kind == "flat-cpu"
    # one target moved, or a different k, or another target set: searched, not read back
    moved = vectors.copy()
    moved[5] = vectors[300]
    changed = knn_index.KnnCache(tmp_path)
    near = changed.searcher(moved, np.arange(340))(targets, queries, **options)
    search = changed.searcher(vectors, np.arange(340))
    search(targets, queries, **{**options, "k": 8})
    search(targets[1:], queries, **options)
    assert changed.hits == 0 and near.neighbours[0, 0] == 5
    # prune keeps what this cache object handed out: the three new searches, not the first
    changed.prune()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(changed.used)
    assert len(changed.used) == 3
    # a search outside the rows its key covers is refused, not keyed wrongly
    with pytest.raises(ValueError):
        search(np.arange(0, 350), queries, **options)


def test_variants_searches_read_back_give_the_same_neighbours(tmp_path):
    rng = np.random.default_rng(5)
    n = 120
    nodes = pd.DataFrame({"node_id": [f"n{i:03d}" for i in range(n)],
                          "locale": rng.choice(["en-US", "de-DE", "hi-IN"], n),
                          "defect_rate": rng.choice([0.0, 0.9], n), "n_users": 5,
                          "top_intent": rng.choice(["a", "b"], n), "top_intent_share": 1.0})
    vectors = _unit(n, 6)
    masks = dict(is_failing=variants.failing_mask(nodes, 0.5, 2), is_target=variants.target_mask(nodes, 0.3, 0.8, 2))

    def searches(search=None):
        return (variants.find_variants(nodes, vectors, **masks, k=4, min_similarity=0.0,
                                       cross_lingual_min_similarity=0.0, exact_max_vectors=1000, use_gpu=False,
                                       search=search)[0],
                variants.nearest_reliable(nodes, vectors, **masks, k=3, exact_max_vectors=1000, use_gpu=False,
                                          search=search),
                variants.nearest_reliable_abroad(nodes, vectors, queries=masks["is_failing"],
                                                 is_target=masks["is_target"], k=3, exact_max_vectors=1000,
                                                 use_gpu=False, search=search))

    uncached = searches()
    for run in range(2):
        cache = knn_index.KnnCache(tmp_path)
        got = searches(cache.searcher(vectors, np.arange(n)))
        assert cache.hits == (len(cache.used) if run else 0) and len(cache.used) == 7  # 1 + 3 locales + 3 locales
        for frame, want in zip(got, uncached):
            assert len(want) and frame.equals(want)


def test_a_window_with_nothing_to_search_builds_its_searcher(tmp_path):
    cache = knn_index.KnnCache(tmp_path)
    search = cache.searcher(_unit(5, 3), np.array([], dtype=np.int64))
    with pytest.raises(ValueError):   # no row is covered, so no search may run under this key
        search(np.arange(2), np.arange(2, 4), k=1, exact_max_vectors=10, use_gpu=False)
    knn_index.KnnCache(tmp_path).searcher(np.zeros((0, 32), dtype=np.float32), np.array([], dtype=np.int64))

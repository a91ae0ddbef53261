"""The kNN cache: a search whose inputs are unchanged is read back whole, with the result faiss gave."""
import numpy as np
import pandas as pd

from selflearn import index as knn_index
from selflearn.stages import variants


def _unit(rows: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, 32)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_an_unchanged_search_is_read_back_and_a_changed_one_searched_again(tmp_path):
    targets, queries = _unit(300, 1), _unit(40, 2)
    first = knn_index.KnnCache(tmp_path).knn(targets, queries, k=7, exact_max_vectors=1000, use_gpu=False)
    again = knn_index.KnnCache(tmp_path)
    second = again.knn(targets, queries, k=7, exact_max_vectors=1000, use_gpu=False)
    fresh = knn_index.knn(targets, queries, k=7, exact_max_vectors=1000, use_gpu=False)
    assert again.hits == 1
    for result in (first, second):
        assert np.array_equal(result.similarities, fresh.similarities)
        assert np.array_equal(result.neighbours, fresh.neighbours)
        assert result.index_kind == fresh.index_kind == "flat-cpu"
    # one target moved, a different k: searched, not read back
    moved = targets.copy()
    moved[5] = queries[0]
    changed = knn_index.KnnCache(tmp_path)
    near = changed.knn(moved, queries, k=7, exact_max_vectors=1000, use_gpu=False)
    changed.knn(targets, queries, k=8, exact_max_vectors=1000, use_gpu=False)
    assert changed.hits == 0 and near.neighbours[0, 0] == 5
    # prune keeps what this cache object handed out: the two new searches, not the first
    changed.prune()
    assert sorted(p.name for p in tmp_path.glob("*.npz")) == sorted(changed.used)
    assert len(changed.used) == 2


def test_variants_searches_read_back_give_the_same_neighbours(tmp_path):
    rng = np.random.default_rng(5)
    n = 120
    nodes = pd.DataFrame({"node_id": [f"n{i:03d}" for i in range(n)],
                          "locale": rng.choice(["en-US", "de-DE", "hi-IN"], n),
                          "defect_rate": rng.choice([0.0, 0.9], n), "n_users": 5,
                          "top_intent": rng.choice(["a", "b"], n), "top_intent_share": 1.0})
    vectors = _unit(n, 6)
    masks = dict(is_failing=variants.failing_mask(nodes, 0.5, 2), is_target=variants.target_mask(nodes, 0.3, 0.8, 2))
    outputs = []
    for run in range(2):
        cache = knn_index.KnnCache(tmp_path)
        edges, _ = variants.find_variants(nodes, vectors, **masks, k=4, min_similarity=0.0,
                                          cross_lingual_min_similarity=0.0, exact_max_vectors=1000, use_gpu=False,
                                          search=cache.knn)
        near = variants.nearest_reliable(nodes, vectors, **masks, k=3, exact_max_vectors=1000, use_gpu=False,
                                         search=cache.knn)
        abroad = variants.nearest_reliable_abroad(nodes, vectors, queries=masks["is_failing"],
                                                  is_target=masks["is_target"], k=3, exact_max_vectors=1000,
                                                  use_gpu=False, search=cache.knn)
        outputs.append((edges, near, abroad))
        assert cache.hits == (len(cache.used) if run else 0)
    uncached = (variants.find_variants(nodes, vectors, **masks, k=4, min_similarity=0.0,
                                       cross_lingual_min_similarity=0.0, exact_max_vectors=1000, use_gpu=False)[0],
                variants.nearest_reliable(nodes, vectors, **masks, k=3, exact_max_vectors=1000, use_gpu=False),
                variants.nearest_reliable_abroad(nodes, vectors, queries=masks["is_failing"],
                                                 is_target=masks["is_target"], k=3, exact_max_vectors=1000,
                                                 use_gpu=False))
    for frames in outputs:
        for got, want in zip(frames, uncached):
            assert len(want) and got.equals(want)

"""Deterministic character-n-gram hashing vectors: no model, no download, tens of thousands of texts
per second. For fast tests and as a quality floor in the bake-off; it measures spelling overlap, not
meaning, so it finds almost no cross-lingual matches.
"""
from __future__ import annotations

import numpy as np

from selflearn.embedders.base import MissingBackendError, check_texts, l2_normalize

DIM = 1024
NGRAMS = (2, 4)


class HashingEmbedder:
    def __init__(self, dim: int = DIM, ngram_range: tuple[int, int] = NGRAMS):
        try:
            from sklearn.feature_extraction.text import HashingVectorizer
        except ImportError:
            raise MissingBackendError("embedding backend 'hashing' needs: pip install scikit-learn") from None
        self.dim = dim
        self.name = f"hashing:char_wb{ngram_range[0]}-{ngram_range[1]}:d{dim}"
        # murmurhash3 with a fixed seed: identical vectors in every process and on every machine
        self._vectorizer = HashingVectorizer(analyzer="char_wb", ngram_range=ngram_range, n_features=dim,
                                             alternate_sign=False, norm=None, lowercase=True,
                                             dtype=np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        counts = self._vectorizer.transform(texts).toarray()
        return l2_normalize(np.sqrt(counts))  # sqrt damps repeated n-grams

"""Multiturn rephrase detection: score each consecutive turn pair in [0, 1].

A pair (a, b) is a rephrase when turn a went wrong and turn b asks for the same thing again. The score is a
logistic model over interpretable evidence: friction on a, success of b, time gap, lexical similarity
(character trigrams, tokens), embedding similarity and a change of the system's interpretation.
Weights come from `rephrase_weights.json` (fitted on simulator ground truth by
`benchmarks/calibrate.py` across evaluation worlds, signs checked against intuition) or fall back to hand-set
ones. A quick, close, differently interpreted next turn is evidence on its own: friction is often not logged.
"""
from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from selflearn import contract, text
from selflearn.embedders import vector_store
from selflearn.fitted import fitted_weights
from selflearn.progress import counted, progress_bar
from selflearn.stages import daily
from selflearn.stages.base import Context, Stage

FEATURES = ("friction_a", "success_b", "quick", "char_sim", "token_sim", "embed_sim", "intent_changed", "same_text",
            "changed_close", "changed_quick")
# Hand-set fallback (log-odds per unit of evidence), used when no fitted weights exist for the embedder.
HAND_WEIGHTS = {
    "bias": -6.0, "friction_a": 3.5, "success_b": 1.0, "quick": 1.0, "char_sim": 2.0,
    "token_sim": 1.0, "embed_sim": 3.0, "intent_changed": 0.8, "same_text": 1.0,
    "changed_close": 0.0, "changed_quick": 0.0,
}
WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "rephrase_weights.json"


@lru_cache(maxsize=None)
def weights_for(embedder_name: str) -> dict[str, float]:
    return fitted_weights(WEIGHTS_FILE.name, embedder_name, HAND_WEIGHTS)


class VectorLookup:
    """Unit vectors of unique normalized texts, looked up by text."""

    def __init__(self, texts: list[str], vectors: np.ndarray):
        self.index = {t: i for i, t in enumerate(texts)}
        self.vectors = vectors

    def cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        ia = np.fromiter((self.index[t] for t in a), dtype=np.int64, count=len(a))
        ib = np.fromiter((self.index[t] for t in b), dtype=np.int64, count=len(b))
        if len(ia) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.einsum("ij,ij->i", self.vectors[ia], self.vectors[ib]).astype(np.float64)


def lexical_similarity(a: list[str], b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Character-trigram and token Jaccard of each pair (a[i], b[i]), as sparse set arithmetic.

    Each distinct text becomes a binary row of its n-grams (built once per text); each distinct pair's
    intersection is a row-wise product, its union |A| + |B| - |A & B|. Same values as text.jaccard on sets,
    without a Python loop over pairs (a 1 M-turn run has ~1 M pairs but far fewer distinct texts).
    """
    texts = sorted(set(a) | set(b))
    index = {t: i for i, t in enumerate(texts)}
    ia = np.fromiter((index[t] for t in a), dtype=np.int64, count=len(a))
    ib = np.fromiter((index[t] for t in b), dtype=np.int64, count=len(b))
    codes, inverse = np.unique(ia * max(len(texts), 1) + ib, return_inverse=True)
    ua, ub = np.divmod(codes, max(len(texts), 1))
    chars = _set_jaccard(_membership([text.char_ngrams(t) for t in texts]), ua, ub)
    toks = _set_jaccard(_membership([set(text.tokens(t)) for t in texts]), ua, ub)
    return chars[inverse], toks[inverse]


def _membership(sets: list[set]) -> sparse.csr_matrix:
    """Binary texts x items matrix: row i holds the items of sets[i]."""
    vocabulary: dict[str, int] = {}
    columns = [vocabulary.setdefault(item, len(vocabulary)) for items in sets for item in items]
    indptr = np.concatenate([[0], np.cumsum([len(items) for items in sets])]).astype(np.int64)
    data = np.ones(len(columns), dtype=np.float32)
    return sparse.csr_matrix((data, np.asarray(columns, dtype=np.int64), indptr),
                             shape=(len(sets), max(len(vocabulary), 1)))


def _set_jaccard(members: sparse.csr_matrix, ua: np.ndarray, ub: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """|A & B| / |A | B| per row pair (ua[k], ub[k]); two empty sets are identical (1.0)."""
    sizes = np.diff(members.indptr).astype(np.float64)
    inter = np.empty(len(ua), dtype=np.float64)
    for start in range(0, len(ua), chunk):   # bounded memory: two sliced row blocks at a time
        end = start + chunk
        product = members[ua[start:end]].multiply(members[ub[start:end]])
        inter[start:end] = np.asarray(product.sum(axis=1)).ravel()
    union = sizes[ua] + sizes[ub] - inter
    return np.where(union > 0, inter / np.maximum(union, 1.0), 1.0)


def pair_features(pairs: pa.RecordBatch | pa.Table, vectors: VectorLookup) -> dict[str, np.ndarray]:
    a = pairs.column("utt_norm_a").to_pylist()
    b = pairs.column("utt_norm_b").to_pylist()
    char_sim, token_sim = lexical_similarity(a, b)
    gap = np.asarray(pairs.column("gap_s").to_numpy(zero_copy_only=False), dtype=np.float64)
    quick = np.exp(-gap / 20.0)  # rephrases follow within seconds; evidence decays with the gap
    embed_sim = vectors.cosine(a, b)
    # unhandled (null) on either side counts as a change of interpretation
    changed = _as_float(pc.fill_null(pc.not_equal(pairs.column("intent_a"), pairs.column("intent_b")), True))
    return {
        "friction_a": np.asarray(pairs.column("friction_a").to_numpy(zero_copy_only=False), dtype=np.float64),
        "success_b": np.asarray(pairs.column("success_b").to_numpy(zero_copy_only=False), dtype=np.float64),
        "quick": quick,
        "char_sim": char_sim,
        "token_sim": token_sim,
        "embed_sim": embed_sim,
        "intent_changed": changed,
        "same_text": _as_float(pc.fill_null(pc.equal(pairs.column("utt_norm_a"), pairs.column("utt_norm_b")), False)),
        # A quick, close, differently interpreted next turn is evidence on its own, logged friction or not:
        # a user who hears the wrong action says the same thing again and gets another reading. Related-but-
        # different follow-ups change the interpretation too, but are less close in meaning.
        "changed_close": changed * embed_sim,
        "changed_quick": changed * quick,
    }


def _as_float(flags: pa.Array) -> np.ndarray:
    return np.asarray(flags.to_numpy(zero_copy_only=False), dtype=np.float64)


def score(features: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    z = np.full(len(features["friction_a"]), weights["bias"], dtype=np.float64)
    for name in FEATURES:
        z += weights.get(name, 0.0) * features[name]
    return 1.0 / (1.0 + np.exp(-z))


def score_pairs(pairs: pa.RecordBatch, vectors: VectorLookup, embedder_name: str, threshold: float) -> pa.RecordBatch:
    """PAIRS_SCHEMA batch -> REPHRASE_PAIRS_SCHEMA batch (adds similarities, rephrase_score, is_rephrase)."""
    feats = pair_features(pairs, vectors)
    scores = score(feats, weights_for(embedder_name))
    columns = [pairs.column(f.name) for f in contract.PAIRS_SCHEMA]
    columns += [pa.array(feats["char_sim"]), pa.array(feats["token_sim"]), pa.array(feats["embed_sim"]),
                pa.array(scores), pa.array(scores >= threshold)]
    return pa.RecordBatch.from_arrays(columns, schema=contract.REPHRASE_PAIRS_SCHEMA)


class PairVectors:
    """Both texts' vectors of each pair of one batch (sql/pair_vectors.sql's vector_a, vector_b), row-aligned:
    the cosine is VectorLookup's, without a lookup of every text's vector."""

    def __init__(self, vectors_a: np.ndarray, vectors_b: np.ndarray):
        self.vectors_a, self.vectors_b = vectors_a, vectors_b

    def cosine(self, a: list[str], b: list[str]) -> np.ndarray:
        if len(a) == 0:
            return np.zeros(0, dtype=np.float64)
        return np.einsum("ij,ij->i", self.vectors_a, self.vectors_b).astype(np.float64)


def score_pairs_with_vectors(pairs: pa.RecordBatch, embedder_name: str, threshold: float) -> pa.RecordBatch:
    """score_pairs on a PAIRS_SCHEMA batch that carries both texts' vectors (sql/pair_vectors.sql)."""
    vectors = PairVectors(vector_store.vector_matrix(pairs.column("vector_a")),
                          vector_store.vector_matrix(pairs.column("vector_b")))
    return score_pairs(pairs, vectors, embedder_name, threshold)


def _rephrase(ctx: Context, turn_pairs, text_vectors, embedder, day_plan) -> dict:
    if isinstance(text_vectors, VectorLookup):   # every vector in this process (embed's in-process path)
        scorer = partial(score_pairs, vectors=text_vectors, embedder_name=embedder.name,
                         threshold=ctx.cfg.rephrase.threshold)
    else:   # an engine relation (utt_norm, vector): each pair gets its two vectors by a join on the engine
        turn_pairs = ctx.engine.sql("pair_vectors", {"turn_pairs": turn_pairs, "text_vectors": text_vectors})
        scorer = partial(score_pairs_with_vectors, embedder_name=embedder.name, threshold=ctx.cfg.rephrase.threshold)
    # a bar only where batches run in this process (DuckDB); Spark scores in its executors (see its UI)
    enabled = ctx.cfg.run.progress and getattr(ctx.engine, "batches_in_process", False)
    with progress_bar(ctx.engine.count(turn_pairs) if enabled else None, "rephrase scoring", "pair", enabled) as bar:
        fresh = ctx.engine.map_batches(turn_pairs, counted(scorer, bar) if enabled else scorer,
                                       contract.REPHRASE_PAIRS_SCHEMA)
    # internal, not released: per-turn-pair scores, one file a day (layout.scored_pairs), for `selflearn eval`
    daily.store(ctx, day_plan, "scored_pairs", fresh)
    return {"fresh_scored_pairs": fresh}


# turn_pairs (the days this run computes) -> fresh_scored_pairs (REPHRASE_PAIRS_SCHEMA), stored per day:
# work/daily/scored_pairs/ holds the window's, with the other days' files linked from the previous run
REPHRASE = Stage("rephrase", inputs=("turn_pairs", "text_vectors", "embedder", "day_plan"),
                 outputs=("fresh_scored_pairs",), run=_rephrase)

"""Cross-user and cross-lingual variants: link failing utterances to similar utterances that succeed.

Same locale: a failing utterance's nearest successful neighbours (other phrasings that worked for other
users). Across locales: neighbours in other languages, weaker evidence, used to help low-traffic locales.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa

from selflearn import index as knn_index
from selflearn.embedders import thresholds_for
from selflearn.stages import knn_on_engine
from selflearn.stages.base import Context, Stage
from selflearn.stages.rephrase import VectorLookup
from selflearn.stages.transfer import small_locales


def failing_mask(nodes: pd.DataFrame, failing_defect_rate: float, min_users: int,
                 rephrased_away: pd.Series | None = None, rephrased_away_share: float = 1.0) -> pd.Series:
    """Failing: enough users, and friction on most turns or users who keep rephrasing it (friction unlogged).

    rephrased_away: per node (row-aligned), the expected share of its users who rephrased it into another text.
    """
    failing = nodes["defect_rate"] >= failing_defect_rate
    if rephrased_away is not None:
        failing |= rephrased_away.to_numpy() >= rephrased_away_share
    return failing & (nodes["n_users"] >= min_users)


def rephrased_away(nodes: pd.DataFrame, rephrase_edges: pd.DataFrame) -> pd.Series:
    """Per node: expected number of its users who rephrased it (soft votes on its out-edges) / its users."""
    soft = rephrase_edges.groupby(["locale", "utt_norm_a"])["soft_users"].sum()
    keys = pd.MultiIndex.from_arrays([nodes["locale"], nodes["utt_norm"]])
    per_node = soft.reindex(keys).fillna(0.0).to_numpy() if len(soft) else np.zeros(len(nodes))
    return pd.Series(per_node / np.maximum(nodes["n_users"].to_numpy(dtype=float), 1.0), index=nodes.index)


def target_mask(nodes: pd.DataFrame, success_defect_rate: float, min_target_share: float, min_users: int) -> pd.Series:
    """Utterances whose interpretation reliably works: low defect rate, one stable intent, enough users."""
    return ((nodes["defect_rate"] <= success_defect_rate) & (nodes["top_intent_share"] >= min_target_share)
            & nodes["top_intent"].notna() & (nodes["n_users"] >= min_users))


def find_variants(nodes: pd.DataFrame, vectors: np.ndarray, *, is_failing: pd.Series, is_target: pd.Series,
                  k: int, min_similarity: float, cross_lingual_min_similarity: float,
                  exact_max_vectors: int, use_gpu: bool, search=None,
                  floors: dict[str, float] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """nodes (row-aligned with vectors) -> variant edges (src, dst, kind, similarity) and index kinds used.
    `search`: (target rows, query rows, k, ...) -> knn_index.knn over those rows of `vectors` (`plain_search`,
    the default), or a KnnCache's searcher (the same results, read back while the inputs stay the same).
    `floors`: `noise_floors(vectors, locales)` when the caller has them (computed where the vectors are)."""
    edges: list[pd.DataFrame] = []
    kinds: list[str] = []
    queries = np.flatnonzero(is_failing.to_numpy())
    targets = np.flatnonzero(is_target.to_numpy())
    if len(queries) == 0 or len(targets) == 0:
        return _empty_edges(), kinds
    search = search or plain_search(vectors)
    locales = nodes["locale"].to_numpy()
    ids = nodes["node_id"].to_numpy()
    # One index over every target; same-locale and cross-lingual hits are told apart afterwards.
    # k is widened because hits in busy locales would otherwise crowd out the other languages.
    result = search(targets, queries, k=k * 4, exact_max_vectors=exact_max_vectors, use_gpu=use_gpu)
    kinds.append(result.index_kind)
    rows_q, cols = np.nonzero(result.neighbours >= 0)
    src = queries[rows_q]
    dst = targets[result.neighbours[rows_q, cols]]
    sim = result.similarities[rows_q, cols].astype(np.float64)
    same_locale = locales[src] == locales[dst]
    floors = noise_floors(vectors, locales) if floors is None else floors
    same_floor = np.maximum(min_similarity, pd.Series(locales[src]).map(floors).fillna(0.0).to_numpy(np.float64))
    keep_same = same_locale & (sim >= same_floor) & (src != dst)
    keep_cross = ~same_locale & (sim >= max(cross_lingual_min_similarity, floors.get("*", 0.0)))
    for keep, kind in ((keep_same, "cross_user"), (keep_cross, "cross_lingual")):
        frame = pd.DataFrame({"src": ids[src[keep]], "dst": ids[dst[keep]], "kind": kind, "similarity": sim[keep]})
        # at most k neighbours of each kind per failing utterance, best first
        frame = frame.sort_values(["src", "similarity", "dst"], ascending=[True, False, True])
        edges.append(frame.groupby("src", sort=False).head(k))
    out = pd.concat(edges, ignore_index=True).sort_values(["src", "kind", "dst"]).reset_index(drop=True)
    return out, kinds


def nearest_reliable(nodes: pd.DataFrame, vectors: np.ndarray, *, is_failing: pd.Series, is_target: pd.Series,
                     k: int, exact_max_vectors: int, use_gpu: bool, search=None) -> pd.DataFrame:
    """Each failing utterance's k closest reliably successful utterances in its own language, at any cosine.

    Unlike `find_variants` (a neighbour close enough to vote), these only say where the failing text's
    meaning lies: the label model asks how much of this neighbourhood shares the mined intent. A users'
    "rephrase" into a related-but-different request ("play X" -> "louder") lands outside it.
    Returns (src, dst, similarity), closest first per src.
    """
    frames = [_empty_edges()[["src", "dst", "similarity"]]]
    search = search or plain_search(vectors)
    failing, target = is_failing.to_numpy(), is_target.to_numpy()
    locales, ids = nodes["locale"].to_numpy(), nodes["node_id"].to_numpy()
    for locale in sorted(set(locales[failing].tolist())):
        queries = np.flatnonzero(failing & (locales == locale))
        targets = np.flatnonzero(target & (locales == locale))
        if not len(targets):
            continue
        # one more than k: a failing utterance can be a target too, and is not its own neighbour
        result = search(targets, queries, k=min(k + 1, len(targets)),
                        exact_max_vectors=exact_max_vectors, use_gpu=use_gpu)
        rows_q, cols = np.nonzero(result.neighbours >= 0)
        src, dst = queries[rows_q], targets[result.neighbours[rows_q, cols]]
        keep = src != dst
        frame = pd.DataFrame({"src": ids[src[keep]], "dst": ids[dst[keep]],
                              "similarity": result.similarities[rows_q, cols].astype(np.float64)[keep]})
        frame = frame.sort_values(["src", "similarity", "dst"], ascending=[True, False, True])
        frames.append(frame.groupby("src", sort=False).head(k))
    return pd.concat(frames, ignore_index=True).reset_index(drop=True)


def nearest_reliable_abroad(nodes: pd.DataFrame, vectors: np.ndarray, *, queries: pd.Series, is_target: pd.Series,
                            k: int, exact_max_vectors: int, use_gpu: bool, search=None,
                            chance: dict[tuple[str, str], float] | None = None) -> pd.DataFrame:
    """Each query utterance's k closest reliably successful utterances in the *other* locales, at any cosine.

    Cross-locale transfer (stages/transfer.py) reads what these neighbours agree on as the reading a launch
    locale's failing text borrows; the busy locales' labelled failing texts calibrate it. One search per
    query locale, over the targets of every other locale, so a busy locale never crowds out the rest.
    Returns (src, dst, similarity, chance: the median cosine of random pairs of src's and dst's locales),
    closest first per src. `chance`: `chance_between_locales(vectors, locales)` when the caller has it.
    """
    frames = [_empty_edges()[["src", "dst", "similarity"]].assign(chance=pd.Series(dtype=float))]
    search = search or plain_search(vectors)
    asked, target = queries.to_numpy(), is_target.to_numpy()
    locales, ids = nodes["locale"].to_numpy(), nodes["node_id"].to_numpy()
    chance = chance_between_locales(vectors, locales) if chance is None else chance
    for locale in sorted(set(locales[asked].tolist())):
        rows_query = np.flatnonzero(asked & (locales == locale))
        rows_target = np.flatnonzero(target & (locales != locale))
        if not len(rows_target):
            continue
        result = search(rows_target, rows_query, k=min(k, len(rows_target)),
                        exact_max_vectors=exact_max_vectors, use_gpu=use_gpu)
        rows_q, cols = np.nonzero(result.neighbours >= 0)
        dst = rows_target[result.neighbours[rows_q, cols]]
        frame = pd.DataFrame({"src": ids[rows_query[rows_q]], "dst": ids[dst],
                              "similarity": result.similarities[rows_q, cols].astype(np.float64),
                              "chance": pd.Series(locales[dst]).map(
                                  {other: chance.get((locale, other), 0.0) for other in set(locales[dst].tolist())})
                              .to_numpy(np.float64)})
        frames.append(frame.sort_values(["src", "similarity", "dst"], ascending=[True, False, True]))
    return pd.concat(frames, ignore_index=True).reset_index(drop=True)


def plain_search(vectors):
    """(target rows, query rows, k, exact_max_vectors, use_gpu) -> knn_index.knn over those rows of `vectors`."""
    def search(target_rows, query_rows, **options) -> knn_index.KnnResult:
        return knn_index.knn(vectors[target_rows], vectors[query_rows], **options)
    return search


def chance_pairs(locales: np.ndarray, pairs: int = 2000, seed: int = 0) -> dict[tuple[str, str], tuple]:
    """(locale a, locale b), a < b -> random rows of a and of b (row arrays), drawn from the locales alone."""
    rng = np.random.default_rng(seed)
    rows = {locale: np.flatnonzero(locales == locale) for locale in sorted(set(locales.tolist()))}
    drawn: dict[tuple[str, str], tuple] = {}
    for a, rows_a in rows.items():
        for b, rows_b in rows.items():
            if a < b and len(rows_a) and len(rows_b):
                drawn[(a, b)] = (rng.choice(rows_a, pairs), rng.choice(rows_b, pairs))
    return drawn


def chance_between_locales(vectors: np.ndarray, locales: np.ndarray, pairs: int = 2000,
                           seed: int = 0, cosines=None) -> dict[tuple[str, str], float]:
    """(locale a, locale b) -> the median cosine of random pairs of their utterances.

    Languages sit at different distances in an embedder's space (Hindi is farther from English than German
    is), so a cross-lingual neighbour's cosine is read above the chance of its own pair of languages.
    `cosines`: drawn pairs -> their cosines (`pair_cosines` over `vectors`, the default; the Spark path
    computes them on the workers)."""
    found = (cosines or partial(pair_cosines, vectors))(chance_pairs(locales, pairs, seed))
    out: dict[tuple[str, str], float] = {}
    for (a, b), cos in found.items():
        out[(a, b)] = out[(b, a)] = float(np.median(cos))
    return out


def pair_cosines(vectors, drawn: dict) -> dict:
    """key -> the cosines of its (rows a, rows b) pairs, row by row (einsum: each row's sum alone, so a
    pair's cosine does not depend on which other pairs are computed with it)."""
    return {key: np.einsum("ij,ij->i", vectors[a], vectors[b]) for key, (a, b) in drawn.items()}


def _empty_edges() -> pd.DataFrame:
    return pd.DataFrame({"src": pd.Series(dtype=str), "dst": pd.Series(dtype=str),
                         "kind": pd.Series(dtype=str), "similarity": pd.Series(dtype=float)})


def noise_floor_pairs(locales: np.ndarray, pairs: int = 4000, seed: int = 0) -> dict[str, tuple]:
    """The random pairs `noise_floors` reads: per locale with at least 20 utterances, pairs of two different
    rows of it; "*": pairs of rows of different locales (when at least 20 are drawn). From the locales alone."""
    rng = np.random.default_rng(seed)
    drawn: dict[str, tuple] = {}
    for locale in sorted(set(locales.tolist())):
        rows = np.flatnonzero(locales == locale)
        if len(rows) < 20:
            continue
        a, b = rng.choice(rows, pairs), rng.choice(rows, pairs)
        keep = a != b
        drawn[locale] = (a[keep], b[keep])
    if len(locales) == 0:  # no utterance in the window: nothing to sample pairs from
        return drawn
    a, b = rng.integers(0, len(locales), pairs), rng.integers(0, len(locales), pairs)
    keep = locales[a] != locales[b]
    if keep.sum() >= 20:
        drawn["*"] = (a[keep], b[keep])
    return drawn


def noise_floors(vectors: np.ndarray, locales: np.ndarray, quantile: float = 0.99, pairs: int = 4000,
                 seed: int = 0, cosines=None) -> dict[str, float]:
    """Cosine that random pairs of utterances reach only 1% of the time, per locale ("*" across locales).

    An embedder can crowd one language into a small cone (USE on Hindi: unrelated sentences at 0.8), so a
    single global threshold links everything there; a neighbour must beat the language's own noise floor.
    `cosines`: as in `chance_between_locales`.
    """
    found = (cosines or partial(pair_cosines, vectors))(noise_floor_pairs(locales, pairs, seed))
    return floor_quantiles(found, quantile)


def floor_quantiles(floor_cosines: dict[str, np.ndarray], quantile: float) -> dict[str, float]:
    """`noise_floors` from cosines already drawn (`noise_floor_pairs`): one draw serves several quantiles."""
    return {key: float(np.quantile(cos, quantile)) for key, cos in floor_cosines.items()}


class NodeVectors:
    """Each node's text vector (row `rows[i]` of the window's text vectors), gathered when indexed: the kNN
    searches and samples read subsets, so every node's vector is never copied out at once."""

    def __init__(self, vectors: np.ndarray, rows: np.ndarray):
        self.vectors, self.rows = vectors, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index) -> np.ndarray:
        return self.vectors[self.rows[index]]


def node_vectors_of(nodes: pd.DataFrame, text_vectors: VectorLookup) -> NodeVectors:
    """The nodes' vectors, row-aligned with `nodes`, from embed's in-process lookup, gathered when indexed."""
    return NodeVectors(text_vectors.vectors, np.fromiter((text_vectors.index[t] for t in nodes["utt_norm"]),
                                                         dtype=np.int64, count=len(nodes)))


def _masks(cfg, nodes: pd.DataFrame, rephrase_edges: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """is_failing, is_target, asked_abroad (the texts searched in the other locales)."""
    min_users = cfg.privacy.min_users
    away = rephrased_away(nodes, rephrase_edges)
    is_failing = failing_mask(nodes, cfg.labels.failing_defect_rate, min_users, rephrased_away=away,
                              rephrased_away_share=cfg.labels.rephrased_away_share)
    is_target = target_mask(nodes, cfg.labels.success_defect_rate, cfg.labels.min_target_share, min_users)
    # the small locales' failing texts, whatever their users (those below k are only counted, never released),
    # and every locale's failing texts with enough users (the busy ones calibrate transfer)
    failing_any_users = failing_mask(nodes, cfg.labels.failing_defect_rate, 1, rephrased_away=away,
                                     rephrased_away_share=cfg.labels.rephrased_away_share)
    in_small = nodes["locale"].isin(small_locales(nodes, cfg.labels.transfer_max_locale_share))
    return is_failing, is_target, is_failing | (failing_any_users & in_small)


def _neighbours(cfg, nodes: pd.DataFrame, vectors, masks, search, floors=None, chance=None) -> dict:
    """The three searches' edges: variant edges (and index kinds), reliable neighbours, and abroad."""
    is_failing, is_target, asked_abroad = masks
    # the embedder's calibrated cosines, unless the config sets its own
    same_default, cross_default = thresholds_for(cfg.embedding)
    use_gpu = cfg.variants.use_gpu == "auto"
    variant_edges, index_kinds = find_variants(
        nodes, vectors, is_failing=is_failing, is_target=is_target, k=cfg.variants.k,
        min_similarity=cfg.variants.min_similarity or same_default,
        cross_lingual_min_similarity=cfg.variants.cross_lingual_min_similarity or cross_default,
        exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=use_gpu, search=search, floors=floors)
    neighbours = nearest_reliable(
        nodes, vectors, is_failing=is_failing, is_target=is_target, k=cfg.variants.neighbourhood_k,
        exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=use_gpu, search=search)
    abroad = neighbours.iloc[:0].assign(chance=pd.Series(dtype=float))
    if cfg.labels.transfer:
        abroad = nearest_reliable_abroad(
            nodes, vectors, queries=asked_abroad, is_target=is_target, k=cfg.variants.transfer_k,
            exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=use_gpu, search=search, chance=chance)
    return {"variant_edges": variant_edges, "knn_index": index_kinds, "reliable_neighbours": neighbours,
            "reliable_neighbours_abroad": abroad}


def _variants(ctx: Context, utterance_stats: pd.DataFrame, rephrase_edges: pd.DataFrame, text_vectors) -> dict:
    cfg, nodes = ctx.cfg, utterance_stats
    masks = _masks(cfg, nodes, rephrase_edges)
    locales = nodes["locale"].to_numpy()
    if not isinstance(text_vectors, VectorLookup):
        # the vectors stay on the engine (Spark): searches and sampled cosines run in its workers
        return {"is_failing": masks[0], **_variants_on_engine(ctx, nodes, text_vectors, masks, locales)}
    node_vectors = node_vectors_of(nodes, text_vectors)
    is_failing, is_target, asked_abroad = masks
    # searches whose inputs are those of the previous run (a re-run over the same days) are read back
    cache = knn_index.KnnCache(ctx.layout.knn_cache)
    search = cache.searcher(node_vectors, np.flatnonzero((is_target | asked_abroad).to_numpy()))
    # the cosine a random pair of utterances reaches in each language: label evidence is read as
    # similarity above chance (the median), which differs by embedder, language and domain; variants must
    # beat the 99th percentile. One draw serves both.
    floor_cosines = pair_cosines(node_vectors, noise_floor_pairs(locales))
    chance_similarity = floor_quantiles(floor_cosines, 0.5)
    found = _neighbours(cfg, nodes, node_vectors, masks, search, floors=floor_quantiles(floor_cosines, 0.99))
    cache.prune()  # the folder keeps this run's searches only
    if cache.hits:
        ctx.say(f"      kNN: {cache.hits} of {len(cache.used)} searches read back (inputs as in the last run)")
    return {"is_failing": is_failing, "chance_similarity": chance_similarity, **found}


def _variants_on_engine(ctx: Context, nodes: pd.DataFrame, text_vectors, masks, locales: np.ndarray) -> dict:
    """The same outputs with no node vector in this process (stages/knn_on_engine.py): the sampled pairs'
    cosines and the searches run in the engine's workers; the driver plans them and keeps their results."""
    all_node_vectors = knn_on_engine.node_vectors(ctx, nodes, text_vectors)
    cosines = knn_on_engine.engine_cosines(ctx, all_node_vectors)
    floor_cosines = cosines(noise_floor_pairs(locales))   # one draw serves both quantiles
    chance_similarity = floor_quantiles(floor_cosines, 0.5)
    floors = floor_quantiles(floor_cosines, 0.99)
    chance = chance_between_locales(None, locales, cosines=cosines) if ctx.cfg.labels.transfer else {}
    planned = knn_on_engine.PlannedSearches()
    _neighbours(ctx.cfg, nodes, None, masks, planned, floors=floors, chance=chance)   # the dry run: plan only
    planned.results = knn_on_engine.run_searches(ctx, nodes, text_vectors, all_node_vectors, planned.searches)
    return {"chance_similarity": chance_similarity,
            **_neighbours(ctx.cfg, nodes, None, masks, planned, floors=floors, chance=chance)}


# utterance_stats, rephrase_edges, text_vectors -> is_failing (mask over utterance_stats), chance_similarity
# (per locale), variant_edges (src, dst, kind, similarity), knn_index (the FAISS index kinds used),
# reliable_neighbours (src, dst, similarity: each failing utterance's nearest reliable ones, for the label model),
# reliable_neighbours_abroad (src, dst, similarity, chance: the same in other locales, for cross-locale transfer;
# empty when labels.transfer is off)
VARIANTS = Stage("variants", inputs=("utterance_stats", "rephrase_edges", "text_vectors"),
                 outputs=("is_failing", "chance_similarity", "variant_edges", "knn_index", "reliable_neighbours",
                          "reliable_neighbours_abroad"),
                 run=_variants)

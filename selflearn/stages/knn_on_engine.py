"""Variants' kNN searches and random-pair cosines in the engine's workers (Spark; issue 17 item 3).

Where embed left the vectors on the engine (`text_vectors` a relation, not a VectorLookup), no node vector
reaches the driver. The driver keeps the nodes and their masks, which decide every search: the stage's own
functions (variants.find_variants, nearest_reliable, nearest_reliable_abroad) run twice with a
`PlannedSearches` as their `search`: a dry run records the searches they ask for (target rows, query rows, k),
`run_searches` runs them all in one pass on the workers, and the second run reads each result in the order it
was asked, so what is kept and ranked is the code DuckDB runs.

- Targets: the vectors of every kNN target (reliable utterances) are written once by the engine's writer
  (`work/knn_targets.parquet`, never collected, removed after the search pass); each Python worker reads the file once and builds each
  search's index over its target rows (`index.build_index`: exact `IndexFlatIP` up to
  `variants.exact_max_vectors` targets, the same seeded IVF as the in-process path above it, trained by each
  worker that needs it). A worker keeps the last search's index: queries arrive sorted by search.
- Queries: the failing texts each search asks about, joined to their vectors on the engine
  (`sql/knn_query_vectors.sql`) and searched in `map_batches`. Rows back: (search, query, rank, neighbour,
  similarity), k per query: what the driver receives grows with failing texts x k, not with vectors.
- Noise floors and chance between locales: the random pairs are drawn from the locales alone
  (variants.noise_floor_pairs, chance_pairs) and their cosines computed beside the pair
  (`sql/node_pair_vectors.sql`, `pair_cosines_batch`); a few thousand floats per locale come back.

Same neighbours as the in-process search; faiss's float similarities depend on how the queries are batched
(which queries share a BLAS call, and its thread count: up to ~1.5e-7 here), so a search split across
partitions differently from the driver's single call can differ in the last bits. The KnnCache is not used on
this path: its key is a digest of the searched vectors, which the driver no longer holds.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import index as knn_index
from selflearn.embedders import vector_store

KNN_NEIGHBOURS_SCHEMA = pa.schema([
    ("search", pa.int32()),       # position of the search in the plan
    ("query", pa.int64()),        # row of the query in its search's query rows
    ("rank", pa.int32()),         # 0 = nearest
    ("neighbour", pa.int64()),    # row in the search's target rows (faiss's id), -1 where fewer than k exist
    ("similarity", pa.float32()),
    ("index_kind", pa.string()),  # e.g. flat-cpu: what the worker built
])
PAIR_COSINES_SCHEMA = pa.schema([("pair", pa.int64()), ("cosine", pa.float32())])


@dataclass(frozen=True)
class Search:
    target_rows: np.ndarray  # node rows, in the order the index holds them
    query_rows: np.ndarray
    k: int
    exact_max_vectors: int
    use_gpu: bool

    def same_as(self, other: "Search") -> bool:
        return (self.k, self.exact_max_vectors, self.use_gpu) == (other.k, other.exact_max_vectors, other.use_gpu) \
            and np.array_equal(self.target_rows, other.target_rows) and np.array_equal(self.query_rows, other.query_rows)


class PlannedSearches:
    """A `search` for variants' functions. Before `results` are set it records each search asked for and
    answers with no neighbours (the dry run); after, it answers each search with its result, in the order
    asked, and checks that the same search was asked (the searches must follow from the masks alone)."""

    def __init__(self):
        self.searches: list[Search] = []
        self.results: list[knn_index.KnnResult] | None = None
        self._answered = 0

    def __call__(self, target_rows, query_rows, k: int, exact_max_vectors: int = 50_000,
                 use_gpu: bool = True) -> knn_index.KnnResult:
        asked = Search(np.asarray(target_rows, dtype=np.int64), np.asarray(query_rows, dtype=np.int64), int(k),
                       int(exact_max_vectors), bool(use_gpu))
        if self.results is None:
            self.searches.append(asked)
            return _no_neighbours(len(asked.query_rows), "planned")
        if self._answered >= len(self.searches) or not self.searches[self._answered].same_as(asked):
            raise RuntimeError("variants asked for a search it did not plan: its searches must follow from the "
                               "nodes' masks alone")
        self._answered += 1
        return self.results[self._answered - 1]


def _no_neighbours(n_queries: int, kind: str) -> knn_index.KnnResult:
    empty = np.zeros((n_queries, 0))
    return knn_index.KnnResult(empty.astype(np.float32), empty.astype(np.int64), kind)


def node_vectors(ctx, nodes, text_vectors, rows: np.ndarray | None = None):
    """An engine relation (node_row, vector) of the nodes' rows `rows` (all when None), joined on the engine."""
    rows = np.arange(len(nodes), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    node_texts = pa.table({"node_row": rows,
                           "utt_norm": pa.array(nodes["utt_norm"].to_numpy()[rows].tolist(), pa.string())})
    return ctx.engine.sql("node_vectors", {"node_texts": ctx.engine.from_arrow(node_texts),
                                           "text_vectors": text_vectors})


def run_searches(ctx, nodes, text_vectors, all_node_vectors, searches: list[Search]) -> list[knn_index.KnnResult]:
    """Every planned search on the engine's workers; each result as `index.knn` would return it."""
    results: list[knn_index.KnnResult | None] = [
        _no_neighbours(len(s.query_rows), "none") if not (len(s.target_rows) and len(s.query_rows)) else None
        for s in searches]
    asked = [i for i, r in enumerate(results) if r is None]
    if not asked:
        return results
    targets = np.unique(np.concatenate([searches[i].target_rows for i in asked]))
    path = ctx.layout.knn_targets
    # sql/node_vectors.sql orders by node_row: the file's rows are the targets in ascending order
    ctx.engine.write_parquet(node_vectors(ctx, nodes, text_vectors, targets), path)
    queries = pa.table({
        "search": pa.array(np.concatenate([np.full(len(searches[i].query_rows), i, np.int32) for i in asked])),
        "query": pa.array(np.concatenate([np.arange(len(searches[i].query_rows), dtype=np.int64) for i in asked])),
        "node_row": pa.array(np.concatenate([searches[i].query_rows for i in asked]))})
    query_vectors = ctx.engine.sql("knn_query_vectors", {"knn_queries": ctx.engine.from_arrow(queries),
                                                         "node_vectors": all_node_vectors})
    plan = tuple((s.target_rows, s.k, s.exact_max_vectors, s.use_gpu) for s in searches)
    fn = partial(search_batch, targets=str(path), plan_key=_plan_key(path, plan), plan=plan)
    rows = ctx.engine.to_arrow(ctx.engine.map_batches(query_vectors, fn, KNN_NEIGHBOURS_SCHEMA))
    path.unlink()  # read by the search pass only (its result is materialised and collected): no copy stays in the run
    search_of = rows.column("search").to_numpy()
    order = np.argsort(search_of, kind="stable")
    bounds = np.searchsorted(search_of[order], np.arange(len(searches) + 1))
    for i in asked:
        part = order[bounds[i]:bounds[i + 1]]
        n, k = len(searches[i].query_rows), min(searches[i].k, len(searches[i].target_rows))
        if len(part) != n * k:
            raise ValueError(f"search {i}: {len(part)} neighbour rows from the workers, expected {n} x {k}")
        at = (rows.column("query").to_numpy()[part], rows.column("rank").to_numpy()[part])
        similarities, neighbours = np.empty((n, k), np.float32), np.empty((n, k), np.int64)
        similarities[at] = rows.column("similarity").to_numpy()[part]
        neighbours[at] = rows.column("neighbour").to_numpy()[part]
        results[i] = knn_index.KnnResult(similarities, neighbours, rows.column("index_kind")[int(part[0])].as_py())
    return results


def _plan_key(path: Path, plan: tuple) -> str:
    """Names this run's targets file and searches in a worker's caches (workers outlive a run)."""
    digest = hashlib.blake2b(digest_size=16)
    stat = Path(path).stat()
    digest.update(repr((str(path), stat.st_mtime_ns, stat.st_size)).encode())
    for target_rows, k, exact_max_vectors, use_gpu in plan:
        digest.update(repr((len(target_rows), k, exact_max_vectors, use_gpu)).encode())
        digest.update(target_rows.tobytes())
    return digest.hexdigest()


# Per Python worker: the targets file read once per run, and the last search's index (queries arrive sorted by
# search, so a worker rebuilds an index only when its partition moves on to the next search).
_worker_targets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_worker_index: dict[tuple[str, int], tuple] = {}


def search_batch(batch: pa.RecordBatch, targets: str, plan_key: str, plan: tuple) -> pa.RecordBatch:
    """Queries (search, query, vector) -> their k nearest targets (KNN_NEIGHBOURS_SCHEMA), in a worker."""
    if plan_key not in _worker_targets:
        _worker_targets.clear()
        table = pq.read_table(targets)
        _worker_targets[plan_key] = (table.column("node_row").to_numpy(),
                                     vector_store.vector_matrix(table.column("vector")))
    target_node_rows, target_vectors = _worker_targets[plan_key]
    search_of = batch.column("search").to_numpy()
    query_of = batch.column("query").to_numpy()
    query_vectors = vector_store.vector_matrix(batch.column("vector"))
    parts = []
    for search in np.unique(search_of).tolist():
        take = np.flatnonzero(search_of == search)
        target_rows, k, exact_max_vectors, use_gpu = plan[search]
        if (plan_key, search) not in _worker_index:
            _worker_index.clear()
            vectors = target_vectors[np.searchsorted(target_node_rows, target_rows)]
            _worker_index[(plan_key, search)] = knn_index.build_index(vectors, exact_max_vectors, use_gpu)
        index, kind = _worker_index[(plan_key, search)]
        k = min(k, len(target_rows))
        similarities, neighbours = index.search(np.ascontiguousarray(query_vectors[take]), k)
        parts.append(pa.record_batch({
            "search": pa.array(np.full(len(take) * k, search, np.int32)),
            "query": pa.array(np.repeat(query_of[take], k)),
            "rank": pa.array(np.tile(np.arange(k, dtype=np.int32), len(take))),
            "neighbour": pa.array(neighbours.ravel()),
            "similarity": pa.array(similarities.ravel()),
            "index_kind": pa.array([kind] * (len(take) * k), pa.string())}, schema=KNN_NEIGHBOURS_SCHEMA))
    if not parts:
        return pa.RecordBatch.from_pylist([], schema=KNN_NEIGHBOURS_SCHEMA)
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def engine_cosines(ctx, all_node_vectors):
    """drawn pairs {key: (rows a, rows b)} -> {key: cosines}, computed beside each pair in the workers."""
    def cosines(drawn: dict) -> dict:
        keys = list(drawn)
        if not keys:
            return {}
        sizes = [len(drawn[key][0]) for key in keys]
        pairs = pa.table({"pair": np.arange(sum(sizes), dtype=np.int64),
                          "row_a": np.concatenate([drawn[key][0] for key in keys]).astype(np.int64),
                          "row_b": np.concatenate([drawn[key][1] for key in keys]).astype(np.int64)})
        joined = ctx.engine.sql("node_pair_vectors", {"node_pairs": ctx.engine.from_arrow(pairs),
                                                      "node_vectors": all_node_vectors})
        got = ctx.engine.to_arrow(ctx.engine.map_batches(joined, pair_cosines_batch, PAIR_COSINES_SCHEMA))
        if got.num_rows != pairs.num_rows:
            raise ValueError(f"{pairs.num_rows - got.num_rows} drawn pair(s) have no vectors: embed missed a node")
        found = np.empty(pairs.num_rows, np.float32)
        found[got.column("pair").to_numpy()] = got.column("cosine").to_numpy()
        return dict(zip(keys, np.split(found, np.cumsum(sizes)[:-1])))
    return cosines


def pair_cosines_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """(pair, vector_a, vector_b) -> (pair, cosine): variants.pair_cosines's einsum, row by row."""
    a = vector_store.vector_matrix(batch.column("vector_a"))
    b = vector_store.vector_matrix(batch.column("vector_b"))
    cosine = np.einsum("ij,ij->i", a, b) if len(a) else np.zeros(0, np.float32)
    return pa.record_batch({"pair": batch.column("pair"), "cosine": pa.array(cosine, pa.float32())},
                           schema=PAIR_COSINES_SCHEMA)

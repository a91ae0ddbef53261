"""Synonymy graph over aggregated statistics: components, chains and the absorbing Markov chain.

Absorbing-chain view (after Alexa's feedback-based self-learning, Ponnusamy et al. 2020): every utterance is
a transient state. From an utterance the user either succeeds with some interpretation (absorbing state per
intent), rephrases to another utterance (transition weighted by observed rephrase events), or gives up
(absorbing "abandon"). Solving (I - Q) X = R gives, for every utterance, the probability that a path from it
ends in success and through which interpretation, so chains A -> B -> C credit C's interpretation to A.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.sparse import csgraph

from selflearn.stages.base import Context, Stage
from selflearn.stages.components import component_labels, component_numbers
from selflearn.stages.grouped import stack_parts, unstack_parts


ABANDON_PRIOR = 0.01  # pseudo-events: enough to keep cycles solvable, too little to move a label


@dataclass
class Absorption:
    node_ids: list[str]
    intents: list[str]
    success_by_intent: sp.csr_matrix  # (n_nodes, n_intents) absorption probabilities
    p_success: np.ndarray             # row sums

    def distribution(self, node_row: int) -> dict[str, float]:
        # the row's slice of the CSR arrays, as getrow() copies it (getrow's matrix costs ~100 us per call).
        # Not lists of the whole matrix made once: at 1 M turns it holds ~1.9 M entries and the labeler reads
        # ~53 k rows, so building the lists cost twice the slices (0.32-0.37 s vs 0.16-0.19 s, measured).
        matrix = self.success_by_intent
        start, end = matrix.indptr[node_row], matrix.indptr[node_row + 1]
        return {self.intents[j]: float(v) for j, v in zip(matrix.indices[start:end].tolist(),
                                                           matrix.data[start:end].tolist()) if v > 0}


def components(node_ids: list[str], src, dst) -> dict[str, int]:
    """Weakly connected components of the nodes and edges src[i] -> dst[i], numbered by size (largest first),
    ties by smallest node id: deterministic. scipy's union-find in C (networkx took ~5 s at 300 k nodes)."""
    return dict(zip(node_ids, component_of_each(node_ids, src, dst).tolist()))


def component_of_each(node_ids: list[str], src, dst) -> np.ndarray:
    """`components` as an array in `node_ids` order."""
    if not len(node_ids):
        return np.zeros(0, dtype=np.int64)
    # one hash lookup per end (`.loc` with a list of labels cost ~0.3 s per side at 300 k nodes)
    index = pd.Index(node_ids)
    rows_src, rows_dst = index.get_indexer(pd.Index(src)), index.get_indexer(pd.Index(dst))
    if (rows_src < 0).any() or (rows_dst < 0).any():
        raise KeyError("an edge names a node that is not in the graph")
    adjacency = sp.coo_matrix((np.ones(len(rows_src)), (rows_src, rows_dst)), shape=(len(node_ids),) * 2)
    count, found = csgraph.connected_components(adjacency, directed=True, connection="weak")
    # each id's rank among the sorted ids stands in for the id: the smallest rank is the smallest id
    # (a groupby min over the strings themselves runs in Python: 12 s at 300 k nodes)
    rank, _ = pd.factorize(np.asarray(node_ids, dtype=object), sort=True)
    smallest = np.full(count, len(node_ids), dtype=np.int64)
    np.minimum.at(smallest, found, rank)
    size = np.bincount(found, minlength=count)
    number = np.empty(count, dtype=np.int64)
    number[np.lexsort((smallest, -size))] = np.arange(count)
    return number[found]


def longest_chains(src, dst, limit: int = 20) -> list[list[str]]:
    """Rephrase chains A -> B -> C over the edges src[i] -> dst[i], longest first, for the report: from each
    node nothing leads to (in sorted order), follow the smallest next node not yet on the path, up to 6 nodes;
    chains of 3 or more. Plain dicts over the distinct edges: a networkx graph of the window's ~130 k multiturn
    edges cost ~3.5 s at 1 M turns (networkx stays the tests' oracle)."""
    successors: dict[str, list[str]] = {}
    for a, b in sorted(set(zip(src, dst))):
        successors.setdefault(a, []).append(b)
    led_to = {b for nexts in successors.values() for b in nexts}
    nodes = set(successors) | led_to
    chains = []
    for start in sorted(n for n in nodes if n not in led_to):
        path, on_path = [start], {start}
        while len(path) < 6:
            nxt = next((b for b in successors.get(path[-1], ()) if b not in on_path), None)
            if nxt is None:
                break
            path.append(nxt)
            on_path.add(nxt)
        if len(path) >= 3:
            chains.append(path)
    return sorted(chains, key=lambda p: (-len(p), p))[:limit]


def report_chains(joining: pd.DataFrame) -> list[list[str]]:
    """The report's longest rephrase chains over the edges that join components: only their multiturn edges
    can form a chain."""
    multiturn = joining[joining["kind"] == "multiturn"]
    return longest_chains(multiturn["src"].tolist(), multiturn["dst"].tolist())


def absorb(node_ids: list[str], node_intents: pd.DataFrame, node_index: dict[tuple[str, str], int],
           rephrase_edges: pd.DataFrame) -> Absorption:
    """Absorption probabilities into success-by-intent for every node.

    node_intents: locale, utt_norm, intent, n_events, n_defective (per interpretation of each utterance).
    rephrase_edges: locale, utt_norm_a, utt_norm_b, n_events (rephrase events a -> b, a != b).
    """
    n = len(node_ids)
    ok = node_intents[node_intents["intent"] != ""]
    intents = sorted(ok["intent"].unique().tolist())
    intent_col = {name: j for j, name in enumerate(intents)}
    rows_of = [node_index[(l, u)] for l, u in zip(node_intents["locale"], node_intents["utt_norm"])]
    defective = np.bincount(rows_of, weights=node_intents["n_defective"].to_numpy(float), minlength=n)
    success = (ok["n_events"] - ok["n_defective"]).to_numpy(float)
    success_rows = np.array([node_index[(l, u)] for l, u in zip(ok["locale"], ok["utt_norm"])], dtype=np.int64)
    success_cols = np.array([intent_col[i] for i in ok["intent"]], dtype=np.int64)

    src = np.array([node_index[(l, a)] for l, a in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_a"])],
                   dtype=np.int64)
    dst = np.array([node_index[(l, b)] for l, b in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_b"])],
                   dtype=np.int64)
    moves = rephrase_edges["n_events"].to_numpy(float)
    out_moves = np.bincount(src, weights=moves, minlength=n)
    # Defective turns that were not rephrased to another text ended in abandonment (or a same-text retry).
    # A small abandonment prior on every utterance: users can always give up, and it keeps (I - Q)
    # invertible when a rephrase cycle (A -> B -> A) has no observed exit.
    abandon = np.maximum(defective - out_moves, 0.0) + ABANDON_PRIOR
    total = np.bincount(success_rows, weights=success, minlength=n) + out_moves + abandon
    total[total == 0] = 1.0

    q = sp.csr_matrix((moves / total[src], (src, dst)), shape=(n, n))
    r = sp.csr_matrix((success / total[success_rows], (success_rows, success_cols)), shape=(n, len(intents)))
    lhs = (sp.identity(n, format="csc") - q.tocsc())
    if n and len(intents):
        x = spla.spsolve(lhs, r.tocsc())
        # spsolve returns a dense 1-D vector when there is a single intent column (a log where one
        # interpretation ever succeeded): keep it a column, not a row
        x = x.tocsr() if sp.issparse(x) else sp.csr_matrix(np.asarray(x).reshape(n, len(intents)))
        x.data[x.data < 1e-12] = 0.0
        x.eliminate_zeros()
    else:
        x = sp.csr_matrix((n, len(intents)))
    p_success = np.asarray(x.sum(axis=1)).ravel()
    return Absorption(node_ids, intents, x, p_success)


def edge_table(nodes: pd.DataFrame, node_index: dict[tuple[str, str], int], rephrase_edges: pd.DataFrame,
               variant_edges: pd.DataFrame) -> pd.DataFrame:
    """Rephrase (multiturn) and variant edges as one table by node id (EDGES_SCHEMA columns and the
    per-user rephrase evidence the label model reads), sorted by (src, kind, dst)."""
    ids = nodes["node_id"].to_numpy()
    multiturn = pd.DataFrame({
        "src": ids[[node_index[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_a"])]]
        if len(rephrase_edges) else [],
        "dst": ids[[node_index[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_b"])]]
        if len(rephrase_edges) else [],
        "kind": "multiturn",
        "n_users": rephrase_edges["n_users"].to_numpy(),
        "n_events": rephrase_edges["n_events"].to_numpy(),
        "weight": rephrase_edges["mean_score"].to_numpy(),
        "llr": rephrase_edges["llr"].to_numpy(),
        "pmi": rephrase_edges["pmi"].to_numpy(),
        "similarity": rephrase_edges["embed_sim"].to_numpy(),  # the two texts' embedding cosine
        # internal (not in EDGES_SCHEMA): per-user rephrase evidence for the label model
        "soft_users": rephrase_edges["soft_users"].to_numpy(),
        "strong_users": rephrase_edges["strong_users"].to_numpy(),
        "max_score": rephrase_edges["max_score"].to_numpy(),
    })
    similar = pd.DataFrame({
        "src": variant_edges["src"], "dst": variant_edges["dst"], "kind": variant_edges["kind"],
        "n_users": 0, "n_events": 0, "weight": variant_edges["similarity"], "llr": np.nan, "pmi": np.nan,
        "similarity": variant_edges["similarity"], "soft_users": np.nan, "strong_users": np.nan,
        "max_score": np.nan,
    })
    # variant edges carry no per-user votes: n_users is the target's user count, for readers of the graph
    users = dict(zip(nodes["node_id"], nodes["n_users"]))
    similar["n_users"] = similar["dst"].map(users).fillna(0).astype("int64")
    return pd.concat([multiturn, similar], ignore_index=True).sort_values(["src", "kind", "dst"]).reset_index(drop=True)


@dataclass
class SynonymyGraph:
    nodes: pd.DataFrame        # NODES_SCHEMA columns
    edges: pd.DataFrame        # EDGES_SCHEMA columns
    absorption: Absorption | None  # None on the engine path: the rows stay there (absorption_rows)
    row_of: dict[str, int]     # node_id -> row in nodes / absorption
    chains: list[list[str]]
    # engine path only: node_id -> the component of every edge its evidence crosses (rephrase, variant and
    # reliable-neighbour edges), the unit of work of the grouped absorbing-chain solve and label decisions
    solve_group: dict[str, str] | None = None
    # engine path only: the nonzero absorption probabilities (ABSORPTION_ROWS_SCHEMA) as the engine dataset the
    # solve produced, so the label payload joins them there instead of shipping the matrix back out
    absorption_rows: Any = None


def assemble(nodes: pd.DataFrame, node_intents: pd.DataFrame, rephrase_edges: pd.DataFrame,
             variant_edges: pd.DataFrame) -> SynonymyGraph:
    """Aggregated statistics -> graph with components, absorption probabilities and one edge table."""
    nodes = nodes.reset_index(drop=True).copy()
    node_ids = nodes["node_id"].tolist()
    node_index = {(l, u): i for i, (l, u) in enumerate(zip(nodes["locale"], nodes["utt_norm"]))}
    absorption = absorb(node_ids, node_intents, node_index, rephrase_edges)

    edges = edge_table(nodes, node_index, rephrase_edges, variant_edges)

    # weak multiturn edges (no user's pair above the rephrase threshold) are label evidence only: they
    # neither join components nor form chains, and are not released
    joining = edges[(edges["kind"] != "multiturn") | (edges["n_users"] > 0)]
    nodes["component"] = component_of_each(node_ids, joining["src"], joining["dst"]).astype("int64")
    nodes["p_success"] = absorption.p_success
    return SynonymyGraph(nodes, edges, absorption, {n: i for i, n in enumerate(node_ids)}, report_chains(joining))


# ---------------------------------------------------------------------- the same graph, solved per group
# One table per solve group for the engine's map_groups: the nodes' interpretations and the rephrase moves.
CHAIN_ROWS_SCHEMA = pa.schema([
    ("solve_group", pa.string()), ("part", pa.string()),
    ("node_id", pa.string()), ("locale", pa.string()), ("utt_norm", pa.string()),
    ("intent", pa.string()), ("n_events", pa.float64()), ("n_defective", pa.float64()),
    ("dst_id", pa.string()), ("dst_norm", pa.string()),
])
CHAIN_PARTS = {"intent": ["node_id", "locale", "utt_norm", "intent", "n_events", "n_defective"],
               "move": ["node_id", "locale", "utt_norm", "dst_id", "dst_norm", "n_events"]}
ABSORPTION_ROWS_SCHEMA = pa.schema([("node_id", pa.string()), ("intent", pa.string()),
                                    ("probability", pa.float64())])


def absorb_group(rows: pa.Table) -> pa.Table:
    """The absorbing-chain solve of one group (CHAIN_ROWS_SCHEMA) -> its nonzero absorption probabilities.

    Every rephrase move stays inside its connected component, so (I - Q) is block diagonal and solving one
    block gives the rows the whole-graph solve gives (to rounding)."""
    parts = unstack_parts(rows, CHAIN_PARTS)
    intents, moves = parts["intent"], parts["move"]
    key_of = dict(zip(intents["node_id"], zip(intents["locale"], intents["utt_norm"])))
    key_of.update(zip(moves["node_id"], zip(moves["locale"], moves["utt_norm"])))
    key_of.update(zip(moves["dst_id"], zip(moves["locale"], moves["dst_norm"])))
    node_ids = sorted(key_of)
    node_index = {key_of[node]: row for row, node in enumerate(node_ids)}
    absorption = absorb(node_ids, intents, node_index,
                        moves.rename(columns={"utt_norm": "utt_norm_a", "dst_norm": "utt_norm_b"}))
    found = absorption.success_by_intent.tocoo()
    return pa.table({"node_id": [node_ids[r] for r in found.row.tolist()],
                     "intent": [absorption.intents[c] for c in found.col.tolist()],
                     "probability": found.data.astype(np.float64)}, schema=ABSORPTION_ROWS_SCHEMA)


def solve_on_engine(engine, node_intents: pd.DataFrame, rephrase_edges: pd.DataFrame, nodes: pd.DataFrame,
                    solve_group: dict[str, str]):
    """Each solve group's absorbing chain in `engine.map_groups` -> an engine dataset of the nonzero
    absorption probabilities (ABSORPTION_ROWS_SCHEMA), left on the engine for the label payload's joins."""
    node_ids = nodes["node_id"].tolist()
    id_of = dict(zip(zip(nodes["locale"], nodes["utt_norm"]), node_ids))
    intent_ids = [id_of[k] for k in zip(node_intents["locale"], node_intents["utt_norm"])]
    src_ids = [id_of[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_a"])]
    dst_ids = [id_of[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_b"])]
    chain_rows = stack_parts({
        "intent": node_intents[["locale", "utt_norm", "intent", "n_events", "n_defective"]].assign(
            node_id=intent_ids, solve_group=[solve_group[n] for n in intent_ids]),
        "move": pd.DataFrame({"node_id": src_ids, "locale": rephrase_edges["locale"].to_numpy(),
                              "utt_norm": rephrase_edges["utt_norm_a"].to_numpy(), "dst_id": dst_ids,
                              "dst_norm": rephrase_edges["utt_norm_b"].to_numpy(),
                              "n_events": rephrase_edges["n_events"].to_numpy(),
                              "solve_group": [solve_group[n] for n in src_ids]}),
    }, CHAIN_ROWS_SCHEMA)
    return engine.map_groups(engine.from_arrow(chain_rows), ["solve_group"], absorb_group, ABSORPTION_ROWS_SCHEMA)


def assemble_on_engine(engine, nodes: pd.DataFrame, node_intents: pd.DataFrame, rephrase_edges: pd.DataFrame,
                       variant_edges: pd.DataFrame, reliable_neighbours: pd.DataFrame | None = None,
                       say=None) -> SynonymyGraph:
    """`assemble` with the graph work on the engine: components by SQL label propagation, the absorbing
    chain solved per component in `map_groups`. Same nodes, edges, components and probabilities."""
    nodes = nodes.reset_index(drop=True).copy()
    node_ids = nodes["node_id"].tolist()
    node_index = {(l, u): i for i, (l, u) in enumerate(zip(nodes["locale"], nodes["utt_norm"]))}
    edges = edge_table(nodes, node_index, rephrase_edges, variant_edges)
    # Two labellings in one propagation loop (half the statements): the released components (weak multiturn
    # edges join nothing, as in `assemble`) and the solve groups (every edge a node's absorption or label
    # evidence crosses). Each graph's node ids carry a one-letter prefix, so the graphs never touch and,
    # within one graph, the smallest prefixed id is the smallest id.
    joining = edges[(edges["kind"] != "multiturn") | (edges["n_users"] > 0)]
    neighbours = reliable_neighbours if reliable_neighbours is not None else pd.DataFrame(columns=["src", "dst"])
    src = [*("r" + joining["src"]), *("s" + edges["src"]), *("s" + neighbours["src"].astype(str))]
    dst = [*("r" + joining["dst"]), *("s" + edges["dst"]), *("s" + neighbours["dst"].astype(str))]
    tagged = engine.to_arrow(component_labels(
        engine, engine.from_arrow(pa.table({"node_id": pa.array([f"{tag}{n}" for tag in "rs" for n in node_ids],
                                                                 pa.string())})),
        engine.from_arrow(pa.table({"src": pa.array(src, pa.string()), "dst": pa.array(dst, pa.string())})), say))
    labelled = pd.DataFrame({"graph": [n[0] for n in tagged.column("node_id").to_pylist()],
                             "node_id": [n[1:] for n in tagged.column("node_id").to_pylist()],
                             "component": [c[1:] for c in tagged.column("component").to_pylist()]})
    released = labelled[labelled["graph"] == "r"][["node_id", "component"]]
    numbers = engine.to_arrow(component_numbers(engine, engine.from_arrow(
        pa.Table.from_pandas(released, preserve_index=False))))
    solve = labelled[labelled["graph"] == "s"]
    solve_group = dict(zip(solve["node_id"], solve["component"]))

    solved = solve_on_engine(engine, node_intents, rephrase_edges, nodes, solve_group)
    # the solve's rows (node x interpretation: 194k at 400k turns) stay on the engine for the label payload; the
    # driver takes one probability per node
    success = engine.to_arrow(engine.sql("node_success", {"absorption_rows": solved}))
    p_success = dict(zip(success.column("node_id").to_pylist(), success.column("p_success").to_pylist()))
    component = dict(zip(numbers.column("node_id").to_pylist(), numbers.column("component").to_pylist()))
    nodes["component"] = nodes["node_id"].map(component).astype("int64")
    nodes["p_success"] = nodes["node_id"].map(p_success).fillna(0.0).astype("float64")
    # the report's longest chains (top 20) still walk the strong multiturn edges here, on the driver
    return SynonymyGraph(nodes, edges, None, {n: i for i, n in enumerate(node_ids)}, report_chains(joining),
                         solve_group, absorption_rows=solved)


def _graph(ctx: Context, utterance_stats: pd.DataFrame, node_intents: pd.DataFrame, rephrase_edges: pd.DataFrame,
           variant_edges: pd.DataFrame, reliable_neighbours: pd.DataFrame) -> dict:
    if ctx.engine.batches_in_process:
        # in process the whole-graph solve is the fast one: per group pays pandas and a solve per component
        return {"synonymy_graph": assemble(utterance_stats, node_intents, rephrase_edges, variant_edges)}
    return {"synonymy_graph": assemble_on_engine(ctx.engine, utterance_stats, node_intents, rephrase_edges,
                                                 variant_edges, reliable_neighbours)}


# -> synonymy_graph (SynonymyGraph: nodes as NODES_SCHEMA, edges as EDGES_SCHEMA, absorption, chains; on an
# engine that runs work out of process, also each node's solve group)
GRAPH = Stage("graph", inputs=("utterance_stats", "node_intents", "rephrase_edges", "variant_edges",
                               "reliable_neighbours"),
              outputs=("synonymy_graph",), run=_graph)

"""Released outputs besides the training set (stages/training_set.py): rewrite pairs and the graph.

Every writer passes its rows through the one release filter (selflearn.release.ReleaseFilter): only text seen
from at least `privacy.min_users` distinct users is released; user keys never leave `work/`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from selflearn import contract
from selflearn.io import atomic_write_json, atomic_write_parquet
from selflearn.release import ReleaseFilter


def write_graph(nodes: pd.DataFrame, edges: pd.DataFrame, out: Path, release: ReleaseFilter) -> tuple[int, int]:
    """graph/nodes.parquet (releasable utterances) and graph/edges.parquet (edges between them)."""
    released, _ = release.keep("graph_nodes", nodes)
    ids = set(released["node_id"])
    released_edges = edges[edges["src"].isin(ids) & edges["dst"].isin(ids)
                           & ((edges["kind"] != "multiturn") | (edges["n_users"] > 0))]
    atomic_write_parquet(contract.conform(pa.Table.from_pandas(released, preserve_index=False),
                                          contract.NODES_SCHEMA, "graph"), out / "graph" / "nodes.parquet")
    atomic_write_parquet(contract.conform(pa.Table.from_pandas(released_edges, preserve_index=False),
                                          contract.EDGES_SCHEMA, "graph"), out / "graph" / "edges.parquet")
    return len(released), len(released_edges)


REWRITE_PAIRS_SCHEMA = pa.schema([
    ("locale", pa.string()), ("utt_a", pa.string()), ("utt_b", pa.string()),
    ("utt_norm_a", pa.string()), ("utt_norm_b", pa.string()),
    ("intent_a", pa.string()), ("intent_b", pa.string()),
    ("n_users", pa.int64()), ("n_events", pa.int64()), ("mean_score", pa.float64()),
    ("llr", pa.float64()), ("pmi", pa.float64()),
])


def write_rewrite_pairs(edges: pd.DataFrame, nodes: pd.DataFrame, out: Path, release: ReleaseFilter) -> int:
    """Aggregated failing -> fixing rewrites whose both texts are releasable."""
    info = nodes.set_index(["locale", "utt_norm"])[["utt", "top_intent", "n_users"]]
    frame = (edges.rename(columns={"n_users": "edge_users"})
             .join(info.add_suffix("_a"), on=["locale", "utt_norm_a"])
             .join(info.add_suffix("_b"), on=["locale", "utt_norm_b"]))
    # weak edges (no pair above the rephrase threshold) are label evidence, not released rewrites
    frame = frame[frame["edge_users"] > 0]
    result = pd.DataFrame({
        "locale": frame["locale"], "utt_a": frame["utt_a"], "utt_b": frame["utt_b"],
        "utt_norm_a": frame["utt_norm_a"], "utt_norm_b": frame["utt_norm_b"],
        "intent_a": frame["top_intent_a"], "intent_b": frame["top_intent_b"],
        "n_users": frame["edge_users"], "n_events": frame["n_events"], "mean_score": frame["mean_score"],
        "llr": frame["llr"], "pmi": frame["pmi"],
    }).sort_values(["locale", "n_users", "llr", "utt_norm_a", "utt_norm_b"], ascending=[True, False, False, True, True])
    result, _ = release.keep("rewrite_pairs", result)
    atomic_write_parquet(contract.conform(pa.Table.from_pandas(result, preserve_index=False),
                                          REWRITE_PAIRS_SCHEMA, "export"), out / "rephrases" / "pairs.parquet")
    return len(result)


def write_manifest(manifest: dict, out: Path) -> None:
    atomic_write_json(manifest, out / "manifest.json")

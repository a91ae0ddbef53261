"""Released outputs: weak labels, MASSIVE-format training files, rewrite pairs and the graph.

Every writer passes its rows through the one release filter (selflearn.release.ReleaseFilter): only text seen
from at least `privacy.min_users` distinct users is released; user keys never leave `work/`.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from selflearn import contract
from selflearn.io import atomic_write_json, atomic_write_parquet, atomic_write_text
from selflearn.release import ReleaseFilter


def scenario_of(intent: str) -> str:
    """MASSIVE intents are `<scenario>_<action>`; the scenario is everything before the first underscore."""
    return intent.split("_", 1)[0] if intent else ""


def write_weak_labels(labels: pd.DataFrame, out: Path, release: ReleaseFilter) -> tuple[pd.DataFrame, int]:
    """training/weak_labels.parquet; returns (the labels written, the number withheld)."""
    labels, withheld = release.keep("weak_labels", labels)
    table = pa.Table.from_pandas(labels, preserve_index=False) if len(labels) else contract.empty(
        contract.WEAK_LABELS_SCHEMA)
    atomic_write_parquet(contract.conform(table, contract.WEAK_LABELS_SCHEMA, "labels"),
                         out / "training" / "weak_labels.parquet")
    return labels, withheld


def write_massive_jsonl(labels: pd.DataFrame, out: Path, locales: list[str],
                        release: ReleaseFilter) -> dict[str, int]:
    """One MASSIVE-format file per locale (also for locales with no labels, so consumers see them all)."""
    labels, _ = release.keep("weak_labels", labels)  # the same rows as weak_labels.parquet
    counts = {}
    folder = out / "training" / "massive"
    for locale in sorted(set(locales)):
        rows = labels[labels["locale"] == locale] if len(labels) else labels
        lines = []
        for i, row in enumerate(rows.itertuples(index=False)):
            lines.append(json.dumps({
                "id": f"selflearn-{locale}-{i}", "locale": locale, "partition": "train",
                "scenario": scenario_of(row.intent), "intent": row.intent, "utt": row.utt,
                "annot_utt": row.annot_utt, "weak_label": {
                    "confidence": round(float(row.confidence), 6), "source": row.source,
                    "n_users": int(row.n_users), "n_events": int(row.n_events),
                    "target_utt": row.target_utt, "evidence": row.evidence},
            }, ensure_ascii=False))
        atomic_write_text("".join(line + "\n" for line in lines), folder / f"{locale}.jsonl")
        counts[locale] = len(lines)
    return counts


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

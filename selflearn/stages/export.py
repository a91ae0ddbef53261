"""Released outputs besides the training set (stages/training_set.py), the funnel, the manifest, publishing.

    export: every dataset the manifest reports -> released_labels, funnel, manifest
            writes training/, rephrases/pairs.parquet, graph/, manifest.json, catalog.duckdb, report.html
            into the run's staging folder, then switches it in (selflearn.outdir.publish)

Every writer passes its rows through the one release filter (selflearn.release.ReleaseFilter): only text seen
from at least `privacy.min_users` distinct users is released; user keys never leave `work/`.
"""
from __future__ import annotations

import platform
import time

import pandas as pd
import pyarrow as pa

import selflearn
from selflearn import contract, decision, outdir, privacy
from selflearn.catalog import write_catalog
from selflearn.io import atomic_write_json, atomic_write_parquet
from selflearn.layout import RunLayout
from selflearn.release import ReleaseFilter
from selflearn.report import write_report
from selflearn.stages import emerging, history, training_set, transfer
from selflearn.stages.base import Context, Stage
from selflearn.stages.ingest import quarantine_summary

FUNNEL_COLUMNS = ["locale", "turns", "pairs", "rephrases", "failing_utterances", "labels"]


def write_graph(nodes: pd.DataFrame, edges: pd.DataFrame, layout: RunLayout, release: ReleaseFilter) -> tuple[int, int]:
    """graph/nodes.parquet (releasable utterances) and graph/edges.parquet (edges between them)."""
    released, _ = release.keep("graph_nodes", nodes)
    ids = set(released["node_id"])
    released_edges = edges[edges["src"].isin(ids) & edges["dst"].isin(ids)
                           & ((edges["kind"] != "multiturn") | (edges["n_users"] > 0))]
    atomic_write_parquet(contract.conform(pa.Table.from_pandas(released, preserve_index=False),
                                          contract.NODES_SCHEMA, "graph"), layout.graph_nodes)
    atomic_write_parquet(contract.conform(pa.Table.from_pandas(released_edges, preserve_index=False),
                                          contract.EDGES_SCHEMA, "graph"), layout.graph_edges)
    return len(released), len(released_edges)


def write_rewrite_pairs(rephrase_edges: pd.DataFrame, nodes: pd.DataFrame, layout: RunLayout,
                        release: ReleaseFilter) -> int:
    """Aggregated failing -> fixing rewrites whose both texts are releasable (contract.REWRITE_PAIRS_SCHEMA)."""
    info = nodes.set_index(["locale", "utt_norm"])[["utt", "top_intent", "n_users"]]
    frame = (rephrase_edges.rename(columns={"n_users": "edge_users"})
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
                                          contract.REWRITE_PAIRS_SCHEMA, "export"), layout.rewrite_pairs)
    return len(result)


def write_manifest(manifest: dict, layout: RunLayout) -> None:
    atomic_write_json(manifest, layout.manifest)


def make_funnel(locale_counts: pd.DataFrame, nodes: pd.DataFrame, is_failing: pd.Series,
                weak: pd.DataFrame) -> pd.DataFrame:
    """turns -> pairs -> rephrases -> failing utterances -> labels, per locale."""
    failing = nodes[is_failing.to_numpy()].groupby("locale").size().rename("failing_utterances")
    labelled = weak.groupby("locale").size().rename("labels") if len(weak) else pd.Series(dtype="int64", name="labels")
    funnel = locale_counts.set_index("locale").join(failing).join(labelled).fillna(0).astype("int64").reset_index()
    return funnel[FUNNEL_COLUMNS]


def transfer_counts(report: dict, released_labels: pd.DataFrame) -> dict:
    """The manifest's account of cross-locale transfer: per small locale, the released labels that lean on it
    (`source` transfer or multiturn+transfer, as written in training/: after the release filter and the
    lifecycle), what the labeler borrowed before those (`labelled_*`), and what it left out and why."""
    out = {key: value for key, value in report.items() if key != "by_locale"}
    out["by_locale"] = {}
    sources = (transfer.SOURCE_TRANSFER, transfer.SOURCE_MULTITURN_TRANSFER)
    for locale, tally in report.get("by_locale", {}).items():
        mine = released_labels.loc[released_labels["locale"] == locale, "source"]
        counts = {f"released_{source}": int((mine == source).sum()) for source in sources}
        counts.update({f"labelled_{key}" if key in sources else key: value for key, value in tally.items()})
        out["by_locale"][locale] = counts
    return out


def _export(ctx: Context, ingest_report, day_plan, node_days, locale_days, utterance_stats: pd.DataFrame,
            rephrase_edges: pd.DataFrame, variant_edges: pd.DataFrame, is_failing: pd.Series, synonymy_graph,
            weak_labels: pd.DataFrame, abstained: dict, operating_point: dict, transfer_report: dict,
            embed_stats: dict, knn_index: list, embedder) -> dict:
    started = time.perf_counter()
    cfg, layout, nodes, min_users = ctx.cfg, ctx.layout, utterance_stats, ctx.cfg.privacy.min_users
    locales = sorted(nodes["locale"].unique().tolist()) if len(nodes) else []
    release = ReleaseFilter.from_nodes(nodes, min_users)  # the one gate every released file goes through
    released_labels, withheld_labels = release.keep("weak_labels", weak_labels)
    # the previous run is the published one (this run's folder is new until the switch)
    previous_run = outdir.published_dir(layout.out)
    # each label's life across runs: retired and contested labels leave the training set (stages/history.py)
    text_intent_days = ctx.engine.to_arrow(ctx.engine.sql("text_days", {"node_days": node_days})).to_pandas()
    text_days = text_intent_days.groupby(["locale", "utt_norm", "day"], as_index=False, sort=True)[
        ["n_events", "n_defective"]].sum()
    life, base, previous_history = history.advance_from(previous_run, released_labels, text_intent_days,
                                                        cfg.lifecycle)
    released_labels = life.emitted
    lifecycle = history.write(layout.run, life, base, previous_history, previous_run, release)
    # phrasings whose traffic or failure rate burst in the last days, with their live label (history/)
    emerging_phrasings = emerging.write(layout.run, text_days, nodes, released_labels, release, cfg.emerging)
    changes = decision.label_changes(training_set.read_previous_labels(previous_run), released_labels)
    fingerprint = privacy.config_fingerprint(cfg)
    training = training_set.write_training_set(
        released_labels, layout.run, locales, eval_share=cfg.training.eval_share, min_users=min_users,
        about={"selflearn_version": selflearn.__version__, "config_fingerprint": fingerprint,
               "embedder": embedder.name, "target_precision": cfg.labels.target_precision})
    released_nodes, released_edges = write_graph(synonymy_graph.nodes, synonymy_graph.edges, layout, release)
    n_rewrites = write_rewrite_pairs(rephrase_edges, nodes, layout, release)
    counts = ctx.engine.to_arrow(ctx.engine.sql("locale_counts", {"locale_days": locale_days}))
    funnel = make_funnel(counts.to_pandas(), nodes, is_failing, released_labels)
    # the manifest is written inside this stage: record the stage's time so far, or it would have none
    ctx.timings["export"] = round(time.perf_counter() - started, 3)
    manifest = {
        "selflearn_version": selflearn.__version__,
        "log_contract_version": contract.LOG_CONTRACT_VERSION,
        "engine": ctx.engine.name,
        "python": platform.python_version(),
        "config": privacy.redacted(cfg.model_dump()),  # the salt is a secret; outputs never carry it
        "config_fingerprint": fingerprint,
        "inputs": [vars(f) for f in ingest_report.files],
        "rows": ingest_report.totals(),
        "quarantine": quarantine_summary(layout.quarantine),  # kept across runs, not staged
        "embedding": embed_stats,
        "days": day_plan.summary(),  # which days this run computed and which it reused (stages/daily.py)
        "knn_index": knn_index,
        "counts": {
            "turns_in_window": int(funnel["turns"].sum()), "pairs": int(funnel["pairs"].sum()),
            "rephrases": int(funnel["rephrases"].sum()), "nodes": int(len(nodes)),
            "failing_nodes": int(is_failing.sum()), "rewrite_edges": int(len(rephrase_edges)),
            "variant_edges": int(len(variant_edges)), "released_nodes": released_nodes,
            "released_edges": released_edges, "released_rewrite_pairs": n_rewrites,
            "weak_labels": int(len(released_labels)), "labels_per_locale": training.per_locale(),
            "labels_withheld": withheld_labels,
            "abstained": abstained,
            "operating_point": operating_point,
            "transfer": transfer_counts(transfer_report, released_labels),
            "components": int(synonymy_graph.nodes["component"].nunique()) if len(nodes) else 0,
            "longest_chain": max((len(c) for c in synonymy_graph.chains), default=0),
        },
        "training": training.to_manifest(),
        "changes_since_previous_run": changes,
        "lifecycle": lifecycle,
        "emerging": emerging_phrasings,
        "funnel": funnel.to_dict(orient="records"),
        "outputs": layout.released_files(),
        "stages": list(ctx.timings),  # run order (timings_s is written with sorted keys)
        "timings_s": dict(ctx.timings),
    }
    write_manifest(manifest, layout)
    write_catalog(layout.out, run_dir=layout.run)  # views over every output, and the human-readable page
    write_report(layout.out, run_dir=layout.run)
    outdir.publish(layout.out, layout.run)  # the switch: readers now see this run
    return {"released_labels": released_labels, "funnel": funnel, "manifest": manifest}


EXPORT = Stage("export", inputs=("ingest_report", "day_plan", "node_days", "locale_days", "utterance_stats", "rephrase_edges",
                                 "variant_edges", "is_failing", "synonymy_graph", "weak_labels", "abstained",
                                 "operating_point", "transfer_report", "embed_stats", "knn_index", "embedder"),
               outputs=("released_labels", "funnel", "manifest"), run=_export)

"""The ordered stages of a run, on one engine, with timings, counts and a manifest.

ingest -> window -> friction & turn pairs -> embed unique texts -> rephrase scores -> node statistics
-> rewrite edges -> variants (kNN) -> synonymy graph & absorbing chain -> weak labels -> exports.
Every output is written atomically; a re-run over the same inputs gives byte-identical outputs, and a run
killed at any point and restarted ends with the same outputs (ingest skips finished files, the embedding
cache keeps finished vectors, everything else is recomputed from curated data).
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

import selflearn
from selflearn import contract
from selflearn.config import Config
from selflearn.embedders import DEFAULT_THRESHOLDS, EmbeddingCache, get_embedder
from selflearn.engines.base import get_engine
from selflearn.io import atomic_write_parquet
from selflearn.stages import export, friction, graph, labels, rephrase, variants
from selflearn.stages.ingest import ingest

STAGES = ("ingest", "window", "friction", "pairs", "embed", "rephrase", "nodes", "edges", "variants",
          "graph", "labels", "export")


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict
    labels: pd.DataFrame
    funnel: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


class _Clock:
    def __init__(self, say: Callable[[str], None]):
        self.timings: dict[str, float] = {}
        self.say = say

    @contextmanager
    def stage(self, name: str):
        number = STAGES.index(name) + 1
        self.say(f"[{number:>2}/{len(STAGES)}] {name} ...")
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 3)


def run(logs: str, out_dir: str | Path, cfg: Config, say: Callable[[str], None] = print,
        engine_options: dict | None = None) -> RunResult:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(say)
    progress = cfg.run.progress
    min_users = cfg.privacy.min_users

    with clock.stage("ingest"):
        report = ingest(logs, out, cfg, progress=progress)
    engine = get_engine(cfg.run.engine, **(engine_options or {}))
    try:
        with clock.stage("window"):
            all_turns = engine.load_parquet(report.curated_files, contract.TURNS_SCHEMA)
            turns = engine.sql("window_turns", {"turns": all_turns}, {"window_days": cfg.run.window_days})
        with clock.stage("friction"):
            turn_friction = friction.turn_friction(engine, turns, cfg)
        with clock.stage("pairs"):
            pairs = friction.turn_pairs(engine, turn_friction, cfg)

        with clock.stage("embed"):
            embedder = get_embedder(cfg.embedding)
            cache_dir = Path(cfg.embedding.cache_dir) if cfg.embedding.cache_dir else out / "cache" / "embeddings"
            cache = EmbeddingCache(cache_dir, embedder)
            texts = engine.to_arrow(engine.sql("unique_texts", {"turn_friction": turn_friction}))
            text_list = texts.column("utt_norm").to_pylist()
            vectors = cache.embed(text_list, progress=progress)
            lookup = rephrase.VectorLookup(text_list, vectors)
            embed_stats = {"unique_texts": len(text_list), **cache.stats, "embedder": embedder.name}
            say(f"      embedded {cache.stats.get('misses', 0)} new of {len(text_list)} unique texts "
                f"with {embedder.name}")

        with clock.stage("rephrase"):
            scorer = partial(rephrase.score_pairs, vectors=lookup, embedder_name=embedder.name,
                             threshold=cfg.rephrase.threshold)
            scored = engine.map_batches(pairs, scorer, contract.REPHRASE_PAIRS_SCHEMA)
            # internal (not released): per-turn-pair scores for evaluation and debugging
            engine.write_parquet(scored, out / "work" / "scored_pairs.parquet")

        with clock.stage("nodes"):
            intents_data = engine.sql("node_intents", {"turn_friction": turn_friction, "scored_pairs": scored})
            nodes = engine.to_arrow(engine.sql(
                "graph_nodes", {"turn_friction": turn_friction, "node_intents": intents_data})).to_pandas()
            node_intents = engine.to_arrow(intents_data).to_pandas()
        with clock.stage("edges"):
            rewrite_edges = engine.to_arrow(engine.sql("rephrase_edges", {"scored_pairs": scored})).to_pandas()

        with clock.stage("variants"):
            row_of_text = {t: i for i, t in enumerate(text_list)}
            node_vectors = vectors[[row_of_text[t] for t in nodes["utt_norm"]]] if len(nodes) else vectors[:0]
            same_default, cross_default = DEFAULT_THRESHOLDS.get(cfg.embedding.backend, (0.8, 0.8))
            is_failing = variants.failing_mask(nodes, cfg.labels.failing_defect_rate, min_users)
            is_target = variants.target_mask(nodes, cfg.labels.success_defect_rate, cfg.labels.min_target_share,
                                             min_users)
            variant_edges, index_kinds = variants.find_variants(
                nodes, node_vectors, is_failing=is_failing, is_target=is_target, k=cfg.variants.k,
                min_similarity=cfg.variants.min_similarity or same_default,
                cross_lingual_min_similarity=cfg.variants.cross_lingual_min_similarity or cross_default,
                exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=cfg.variants.use_gpu == "auto")

        with clock.stage("graph"):
            synonymy = graph.assemble(nodes, node_intents, rewrite_edges, variant_edges)

        with clock.stage("labels"):
            decisions, abstained = labels.decide(
                synonymy, is_failing, min_confidence=cfg.labels.min_confidence, min_users=min_users,
                variant_weight=cfg.labels.variant_weight, cross_lingual_weight=cfg.labels.cross_lingual_weight)
            target_slots = fetch_target_slots(engine, turn_friction, decisions, synonymy.nodes)
            weak = labels.finalize(decisions, synonymy.nodes, target_slots)

        with clock.stage("export"):
            locales = sorted(nodes["locale"].unique().tolist()) if len(nodes) else []
            export.write_weak_labels(weak, out)
            per_locale = export.write_massive_jsonl(weak, out, locales)
            n_nodes, n_edges = export.write_graph(synonymy.nodes, synonymy.edges, out, min_users)
            n_rewrites = export.write_rewrite_pairs(rewrite_edges, nodes, out, min_users)
            locale_counts = engine.to_arrow(engine.sql("locale_counts", {"turns": turns, "scored_pairs": scored}))
            funnel = make_funnel(locale_counts.to_pandas(), nodes, is_failing, weak)

        manifest = {
            "selflearn_version": selflearn.__version__,
            "log_contract_version": contract.LOG_CONTRACT_VERSION,
            "engine": engine.name,
            "python": platform.python_version(),
            "config": cfg.model_dump(),
            "config_fingerprint": hashlib.sha256(json.dumps(cfg.model_dump(), sort_keys=True).encode()).hexdigest()[:16],
            "inputs": [vars(f) for f in report.files],
            "rows": report.totals(),
            "embedding": embed_stats,
            "knn_index": index_kinds,
            "counts": {
                "turns_in_window": int(funnel["turns"].sum()), "pairs": int(funnel["pairs"].sum()),
                "rephrases": int(funnel["rephrases"].sum()),
                "nodes": int(len(nodes)), "failing_nodes": int(is_failing.sum()),
                "rewrite_edges": int(len(rewrite_edges)), "variant_edges": int(len(variant_edges)),
                "released_nodes": n_nodes, "released_edges": n_edges, "released_rewrite_pairs": n_rewrites,
                "weak_labels": int(len(weak)), "labels_per_locale": per_locale,
                "abstained": abstained,
                "components": int(synonymy.nodes["component"].nunique()) if len(nodes) else 0,
                "longest_chain": max((len(c) for c in synonymy.chains), default=0),
            },
            "funnel": funnel.to_dict(orient="records"),
            "timings_s": clock.timings,
        }
        export.write_manifest(manifest, out)
    finally:
        engine.close()
    return RunResult(out, manifest, weak, funnel, clock.timings)


def fetch_target_slots(engine, turn_friction, decisions: pd.DataFrame, nodes: pd.DataFrame) -> dict:
    """(locale, utt_norm) of each label target -> its slots as [{name, value}], via sql/target_slots.sql."""
    if decisions.empty:
        return {}
    info = nodes.set_index("node_id")
    targets = pd.DataFrame({
        "locale": info.loc[decisions["target"], "locale"].to_numpy(),
        "utt_norm": info.loc[decisions["target"], "utt_norm"].to_numpy(),
        "intent": decisions["intent"].to_numpy(),
    }).drop_duplicates(subset=["locale", "utt_norm"])
    found = engine.to_arrow(engine.sql(
        "target_slots", {"turn_friction": turn_friction, "targets": engine.from_arrow(pa.Table.from_pandas(
            targets, preserve_index=False))}))
    return {(l, u): s or [] for l, u, s in zip(found.column("locale").to_pylist(), found.column("utt_norm").to_pylist(),
                                               found.column("nlu_slots").to_pylist())}


def make_funnel(locale_counts: pd.DataFrame, nodes: pd.DataFrame, is_failing: pd.Series,
                weak: pd.DataFrame) -> pd.DataFrame:
    """turns -> pairs -> rephrases -> failing utterances -> labels, per locale."""
    failing = nodes[is_failing.to_numpy()].groupby("locale").size().rename("failing_utterances")
    labelled = weak.groupby("locale").size().rename("labels") if len(weak) else pd.Series(dtype="int64", name="labels")
    funnel = locale_counts.set_index("locale").join(failing).join(labelled).fillna(0).astype("int64").reset_index()
    return funnel[["locale", "turns", "pairs", "rephrases", "failing_utterances", "labels"]]

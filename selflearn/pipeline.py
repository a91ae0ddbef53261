"""The ordered stages of a run, on one engine, with timings, counts and a manifest.

ingest -> window -> friction -> pairs -> embed -> rephrase -> nodes -> edges -> variants -> graph -> labels
-> export. `PipelineRun` has one method per stage (Prefect wraps each in a task); `run()` calls them in order.
Every output is written atomically; a re-run over the same inputs gives identical outputs, and a run killed
at any point and restarted ends with the same outputs (ingest skips finished files, the embedding cache keeps
finished vectors, everything downstream is recomputed from curated data). A run holds the output folder's lock
from start to end, writes what it publishes into a staging folder and switches it in at the end of export
(selflearn.outdir): readers see the previous run or this one, never a mix.
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pyarrow as pa

import selflearn
from selflearn import contract, decision, outdir, privacy
from selflearn.catalog import write_catalog
from selflearn.config import Config
from selflearn.embedders import EmbeddingCache, get_embedder, thresholds_for
from selflearn.engines.base import get_engine
from selflearn.io import atomic_write_parquet
from selflearn.release import ReleaseFilter
from selflearn.report import write_report
from selflearn.stages import emerging, export, friction, graph, history, labels, rephrase, training_set, variants
from selflearn.stages.ingest import ingest, quarantine_summary

STAGES = ("ingest", "window", "friction", "pairs", "embed", "rephrase", "nodes", "edges", "variants",
          "graph", "labels", "export")


@dataclass
class RunResult:
    out_dir: Path
    manifest: dict
    labels: pd.DataFrame
    funnel: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)


class PipelineRun:
    """State of one run; each public method is one stage and records its wall time.

    `out` is the output folder (state kept across runs: curated turns, quarantine, the embedding cache);
    `stage_dir` is this run's staging folder under it, where every published output is written until export
    switches it in. `cfg` is validated on construction (pydantic), before the folder is touched."""

    def __init__(self, logs: str, out_dir: str | Path, cfg: Config, say: Callable[[str], None] = print,
                 engine_options: dict | None = None):
        self.logs, self.out, self.say = logs, Path(out_dir), say
        if self.out.exists() and not self.out.is_dir():
            raise FileNotFoundError(f"--out {self.out} is a file; give a folder (it is created if missing)")
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = outdir.OutputLock(self.out, say)
        self.engine = None
        try:
            outdir.sweep(self.out)
            self.cfg = privacy.with_salt(cfg, self.out, say)
            self.stage_dir = outdir.new_run_dir(self.out)
            options = dict(engine_options or {})
            if cfg.run.engine == "spark":
                options.setdefault("master", cfg.run.spark_master)
            self.engine = get_engine(cfg.run.engine, **options)
        except BaseException:
            self.close()
            raise
        self.min_users = cfg.privacy.min_users
        self.timings: dict[str, float] = {}
        self.data: dict[str, Any] = {}

    def _timed(self, name: str, fn: Callable[[], Any]) -> Any:
        self.say(f"[{STAGES.index(name) + 1:>2}/{len(STAGES)}] {name} ...")
        start = self._stage_started = time.perf_counter()
        result = fn()
        self.timings[name] = round(time.perf_counter() - start, 3)
        return result

    def stage(self, name: str) -> Any:
        return self._timed(name, getattr(self, f"_{name}"))

    def run_all(self) -> RunResult:
        try:
            for name in STAGES:
                self.stage(name)
            return self.result()
        finally:
            self.close()

    def close(self) -> None:
        """Free the engine and the lock; a run that did not publish removes its staging folder."""
        try:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
        finally:
            stage_dir = getattr(self, "stage_dir", None)
            if stage_dir is not None and not outdir.is_complete(stage_dir):
                shutil.rmtree(stage_dir, ignore_errors=True)
            self.lock.release()

    # ------------------------------------------------------------------ stages
    def _ingest(self):
        self.report = ingest(self.logs, self.out, self.cfg, progress=self.cfg.run.progress)
        return self.report.totals()

    def _window(self):
        all_turns = self.engine.load_parquet(self.report.curated_files, contract.TURNS_SCHEMA)
        self.turns = self.engine.sql("window_turns", {"turns": all_turns}, {"window_days": self.cfg.run.window_days})

    def _friction(self):
        self.turn_friction = friction.turn_friction(self.engine, self.turns, self.cfg)

    def _pairs(self):
        self.pairs = friction.turn_pairs(self.engine, self.turn_friction, self.cfg)

    def _embed(self):
        cfg = self.cfg.embedding
        self.embedder = get_embedder(cfg)
        cache = EmbeddingCache(Path(cfg.cache_dir) if cfg.cache_dir else self.out / "cache" / "embeddings",
                               self.embedder)
        texts = self.engine.to_arrow(self.engine.sql("unique_texts", {"turn_friction": self.turn_friction}))
        self.texts = texts.column("utt_norm").to_pylist()
        self.vectors = cache.embed(self.texts, progress=self.cfg.run.progress)
        self.lookup = rephrase.VectorLookup(self.texts, self.vectors)
        self.embed_stats = {"unique_texts": len(self.texts), "embedded": cache.stats.get("misses", 0),
                            "cache_hits": cache.stats.get("hits", 0), "embedder": self.embedder.name}
        self.say(f"      embedded {self.embed_stats['embedded']} new of {len(self.texts)} unique texts "
                 f"with {self.embedder.name}")

    def _rephrase(self):
        scorer = partial(rephrase.score_pairs, vectors=self.lookup,
                         embedder_name=self.embedder.name, threshold=self.cfg.rephrase.threshold)
        self.scored = self.engine.map_batches(self.pairs, scorer, contract.REPHRASE_PAIRS_SCHEMA)
        # internal, not released: per-turn-pair scores for evaluation and debugging
        self.engine.write_parquet(self.scored, self.stage_dir / "work" / "scored_pairs.parquet")

    def _nodes(self):
        intents = self.engine.sql("node_intents", {"turn_friction": self.turn_friction, "scored_pairs": self.scored})
        self.nodes = self.engine.to_arrow(self.engine.sql(
            "graph_nodes", {"turn_friction": self.turn_friction, "node_intents": intents})).to_pandas()
        self.node_intents = self.engine.to_arrow(intents).to_pandas()

    def _edges(self):
        self.rewrite_edges = self.engine.to_arrow(
            self.engine.sql("rephrase_edges", {"scored_pairs": self.scored},
                            friction.sql_params(self.cfg))).to_pandas()

    def _variants(self):
        cfg, nodes = self.cfg, self.nodes
        rows = [self.lookup.index[t] for t in nodes["utt_norm"]]
        node_vectors = self.vectors[rows] if rows else self.vectors[:0]
        same_default, cross_default = thresholds_for(cfg.embedding)
        self.is_failing = variants.failing_mask(
            nodes, cfg.labels.failing_defect_rate, self.min_users,
            rephrased_away=variants.rephrased_away(nodes, self.rewrite_edges),
            rephrased_away_share=cfg.labels.rephrased_away_share)
        is_target = variants.target_mask(nodes, cfg.labels.success_defect_rate, cfg.labels.min_target_share,
                                         self.min_users)
        # the cosine a random pair of utterances reaches in each language: label evidence is read as
        # similarity above chance, which differs by embedder, language and domain
        self.chance_similarity = variants.noise_floors(node_vectors, nodes["locale"].to_numpy(), quantile=0.5)
        self.variant_edges, self.index_kinds = variants.find_variants(
            nodes, node_vectors, is_failing=self.is_failing, is_target=is_target, k=cfg.variants.k,
            min_similarity=cfg.variants.min_similarity or same_default,
            cross_lingual_min_similarity=cfg.variants.cross_lingual_min_similarity or cross_default,
            exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=cfg.variants.use_gpu == "auto")
        self.neighbours = variants.nearest_reliable(
            nodes, node_vectors, is_failing=self.is_failing, is_target=is_target, k=cfg.variants.neighbourhood_k,
            exact_max_vectors=cfg.variants.exact_max_vectors, use_gpu=cfg.variants.use_gpu == "auto")

    def _graph(self):
        self.synonymy = graph.assemble(self.nodes, self.node_intents, self.rewrite_edges, self.variant_edges)

    def _labels(self):
        lc = self.cfg.labels
        decisions, self.abstained, self.operating_point, scored = labels.decide(
            self.synonymy, self.is_failing, weights=labels.label_weights_for(self.embedder.name),
            target_precision=lc.target_precision, min_confidence=lc.min_confidence, min_users=self.min_users,
            chance_similarity=self.chance_similarity, neighbours=self.neighbours,
            allow_variant_only=lc.allow_variant_only)
        # internal, not released (per-utterance texts of any user count): the precision-yield curve of `eval`
        atomic_write_parquet(pa.Table.from_pandas(scored, preserve_index=False),
                             self.stage_dir / "work" / "label_candidates.parquet")
        slots = fetch_target_slots(self.engine, self.turn_friction, decisions, self.synonymy.nodes)
        self.weak = labels.finalize(decisions, self.synonymy.nodes, slots)

    def _export(self):
        out, nodes = self.stage_dir, self.nodes
        locales = sorted(nodes["locale"].unique().tolist()) if len(nodes) else []
        release = ReleaseFilter.from_nodes(nodes, self.min_users)  # the one gate every released file goes through
        self.weak, self.withheld_labels = release.keep("weak_labels", self.weak)
        # the previous run is the published one (this run's folder is new until the switch)
        # each label's life across runs: retired and contested labels leave the training set (stages/history.py)
        previous_run = outdir.published_dir(self.out)
        text_days = self.engine.to_arrow(self.engine.sql(
            "text_days", {"turn_friction": self.turn_friction, "scored_pairs": self.scored})).to_pandas()
        life, base, previous_history = history.advance_from(previous_run, self.weak, text_days, self.cfg.lifecycle)
        self.weak = life.emitted
        self.lifecycle = history.write(out, life, base, previous_history, previous_run, release)
        # phrasings whose traffic or failure rate burst in the last days, with their live label (history/)
        self.emerging = emerging.write(out, text_days, nodes, self.weak, release, self.cfg.emerging)
        self.changes = decision.label_changes(training_set.read_previous_labels(previous_run), self.weak)
        self.training = training_set.write_training_set(
            self.weak, out, locales, eval_share=self.cfg.training.eval_share, min_users=self.min_users,
            about={"selflearn_version": selflearn.__version__, "config_fingerprint": self.config_fingerprint(),
                   "embedder": self.embedder.name, "target_precision": self.cfg.labels.target_precision})
        self.released = export.write_graph(self.synonymy.nodes, self.synonymy.edges, out, release)
        self.n_rewrites = export.write_rewrite_pairs(self.rewrite_edges, nodes, out, release)
        self.quarantine_summary = quarantine_summary(self.out / "quarantine")  # kept across runs, not staged
        counts = self.engine.to_arrow(self.engine.sql("locale_counts", {"turns": self.turns,
                                                                       "scored_pairs": self.scored}))
        self.funnel = make_funnel(counts.to_pandas(), nodes, self.is_failing, self.weak)
        # the manifest is written inside this stage: record the stage's time so far, or it would have none
        self.timings["export"] = round(time.perf_counter() - self._stage_started, 3)
        export.write_manifest(self.manifest(), out)
        write_catalog(self.out, run_dir=out)  # views over every output, and the human-readable page
        write_report(self.out, run_dir=out)
        outdir.publish(self.out, out)  # the switch: readers now see this run

    # ------------------------------------------------------------------ results
    def config_fingerprint(self) -> str:
        cfg = privacy.redacted(self.cfg.model_dump())  # a hash of the secret salt must not travel either
        return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]

    def manifest(self) -> dict:
        cfg = privacy.redacted(self.cfg.model_dump())  # the salt is a secret; outputs never carry it
        funnel = self.funnel
        return {
            "selflearn_version": selflearn.__version__,
            "log_contract_version": contract.LOG_CONTRACT_VERSION,
            "engine": self.engine.name,
            "python": platform.python_version(),
            "config": cfg,
            "config_fingerprint": self.config_fingerprint(),
            "inputs": [vars(f) for f in self.report.files],
            "rows": self.report.totals(),
            "quarantine": self.quarantine_summary,
            "embedding": self.embed_stats,
            "knn_index": self.index_kinds,
            "counts": {
                "turns_in_window": int(funnel["turns"].sum()), "pairs": int(funnel["pairs"].sum()),
                "rephrases": int(funnel["rephrases"].sum()), "nodes": int(len(self.nodes)),
                "failing_nodes": int(self.is_failing.sum()), "rewrite_edges": int(len(self.rewrite_edges)),
                "variant_edges": int(len(self.variant_edges)), "released_nodes": self.released[0],
                "released_edges": self.released[1], "released_rewrite_pairs": self.n_rewrites,
                "weak_labels": int(len(self.weak)), "labels_per_locale": self.training.per_locale(),
                "labels_withheld": self.withheld_labels,
                "abstained": self.abstained,
                "operating_point": self.operating_point,
                "components": int(self.synonymy.nodes["component"].nunique()) if len(self.nodes) else 0,
                "longest_chain": max((len(c) for c in self.synonymy.chains), default=0),
            },
            "training": self.training.to_manifest(),
            "changes_since_previous_run": self.changes,
            "lifecycle": self.lifecycle,
            "emerging": self.emerging,
            "funnel": funnel.to_dict(orient="records"),
            "timings_s": self.timings,
        }

    def result(self) -> RunResult:
        return RunResult(self.out, self.manifest(), self.weak, self.funnel, dict(self.timings))


def run(logs: str, out_dir: str | Path, cfg: Config, say: Callable[[str], None] = print,
        engine_options: dict | None = None) -> RunResult:
    return PipelineRun(logs, out_dir, cfg, say, engine_options).run_all()


def fetch_target_slots(engine, turn_friction, decisions: pd.DataFrame, nodes: pd.DataFrame) -> dict:
    """(locale, utt_norm) of each label target -> its slots as [{name, value}], via sql/target_slots.sql."""
    if decisions.empty:
        return {}
    info = nodes.set_index("node_id").loc[decisions["target"]]
    targets = pd.DataFrame({"locale": info["locale"].to_numpy(), "utt_norm": info["utt_norm"].to_numpy(),
                            "intent": decisions["intent"].to_numpy()}).drop_duplicates(["locale", "utt_norm"])
    found = engine.to_arrow(engine.sql("target_slots", {
        "turn_friction": turn_friction,
        "targets": engine.from_arrow(pa.Table.from_pandas(targets, preserve_index=False))}))
    return {(l, u): s or [] for l, u, s in zip(found.column("locale").to_pylist(),
                                               found.column("utt_norm").to_pylist(),
                                               found.column("nlu_slots").to_pylist())}


def make_funnel(locale_counts: pd.DataFrame, nodes: pd.DataFrame, is_failing: pd.Series,
                weak: pd.DataFrame) -> pd.DataFrame:
    """turns -> pairs -> rephrases -> failing utterances -> labels, per locale."""
    failing = nodes[is_failing.to_numpy()].groupby("locale").size().rename("failing_utterances")
    labelled = weak.groupby("locale").size().rename("labels") if len(weak) else pd.Series(dtype="int64", name="labels")
    funnel = locale_counts.set_index("locale").join(failing).join(labelled).fillna(0).astype("int64").reset_index()
    return funnel[["locale", "turns", "pairs", "rephrases", "failing_utterances", "labels"]]

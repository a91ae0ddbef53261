"""Where every output of a run lives: the one module that spells output paths.

    layout = RunLayout(out, run)           # out: the --out folder; run: one run's folder under it
    layout.rewrite_pairs                   # <run>/rephrases/pairs.parquet
    layout.ingest_state                    # <out>/curated/_ingested.json

Two kinds of place. State kept across runs lives under `out` (curated turns and the ingest ledger, the
quarantine, the embedding cache, eval.json); what one run publishes lives under its run folder, staged in
`out/.runs/<id>/` while the run works and then linked from `out/<name>` (selflearn.outdir). Readers of a
finished run read `RunLayout(out, outdir.published_dir(out))` (or `RunLayout(out)`: the published links);
a run writes through `RunLayout(out, staging_folder)`. Every other module asks this one for a path, so a
renamed file is renamed here only, and the manifest lists the released files (`released_files`) so that
tools never guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ------------------------------------------------------------------------------------------------ names
# Top-level names a run publishes under out/ (links to the run folder's entries; selflearn.outdir).
TRAINING, HISTORY, REPHRASES, GRAPH, WORK = "training", "history", "rephrases", "graph", "work"
MANIFEST_FILE, REPORT_FILE, CATALOG_FILE = "manifest.json", "report.html", "catalog.duckdb"
PUBLISHED = (TRAINING, HISTORY, REPHRASES, GRAPH, WORK, MANIFEST_FILE, REPORT_FILE, CATALOG_FILE)

# Inside training/: a Hugging Face-style dataset folder (selflearn.stages.training_set).
TRAINING_PARQUET, TRAINING_MASSIVE, TRAINING_CARD = "parquet", "massive", "README.md"
LEGACY_WEAK_LABELS = "weak_labels.parquet"  # training/ of the layout before the dataset folder

# Run outputs by dataset name, relative to the run folder.
RUN_FILES = {
    "rewrite_pairs": f"{REPHRASES}/pairs.parquet",
    "graph_nodes": f"{GRAPH}/nodes.parquet",
    "graph_edges": f"{GRAPH}/edges.parquet",
    "scored_pairs": f"{WORK}/daily/scored_pairs",            # internal: per turn pair, user keys; one file a day
    "label_candidates": f"{WORK}/label_candidates.parquet",  # internal: every utterance the labeler scored
    "label_history": f"{HISTORY}/labels.parquet",            # each label's life across runs (stages/history.py)
    "label_changes": f"{HISTORY}/changes.parquet",           # every change of state, run after run
    "emerging_phrasings": f"{HISTORY}/emerging.parquet",     # phrasings bursting in the last days (stages/emerging.py)
    "label_lifecycle": f"{WORK}/label_lifecycle.parquet",    # internal: the lifecycle state the next run carries on
    "label_lifecycle_base": f"{WORK}/label_lifecycle_base.parquet",  # internal: the state this run started from
    "knn_targets": f"{WORK}/knn_targets.parquet",             # internal: the kNN targets' vectors the workers index
    "daily": f"{WORK}/daily",                                # internal: per-day partitions (stages/daily.py)
    "manifest": MANIFEST_FILE,
    "report": REPORT_FILE,
    "catalog": CATALOG_FILE,
}
# State kept across runs, relative to the output folder.
STATE_FILES = {
    "curated_turns": "curated/turns",
    "ingest_state": "curated/_ingested.json",
    "ingest_staging": "curated/_staging",  # the engine path's per-file outputs before dedup across files
    "quarantine": "quarantine",
    "embedding_cache": "cache/embeddings",
    "knn_cache": "cache/knn",  # the variants stage's kNN results, reused while their inputs stay the same
    "eval_result": "eval.json",
}
# What a user gets besides training/: listed in the manifest's "outputs" and printed after a run (work/ is
# internal: per-turn-pair data with user keys).
RELEASED_FILES = ("rewrite_pairs", "graph_nodes", "graph_edges", "label_history", "label_changes", "emerging_phrasings",
                  "manifest", "report", "catalog")


@dataclass(frozen=True)
class RunLayout:
    """Paths of one run (`run`) inside one output folder (`out`)."""
    out: Path
    run: Path

    def __init__(self, out: str | Path, run: str | Path | None = None):
        object.__setattr__(self, "out", Path(out))
        object.__setattr__(self, "run", Path(run) if run is not None else Path(out))

    # -------------------------------------------------------------- one run (released, then internal)
    @property
    def rewrite_pairs(self) -> Path:
        return self.run / RUN_FILES["rewrite_pairs"]

    @property
    def graph_nodes(self) -> Path:
        return self.run / RUN_FILES["graph_nodes"]

    @property
    def graph_edges(self) -> Path:
        return self.run / RUN_FILES["graph_edges"]

    @property
    def manifest(self) -> Path:
        return self.run / RUN_FILES["manifest"]

    @property
    def report(self) -> Path:
        return self.run / RUN_FILES["report"]

    @property
    def catalog(self) -> Path:
        return self.run / RUN_FILES["catalog"]

    @property
    def scored_pairs(self) -> Path:
        return self.run / RUN_FILES["scored_pairs"]

    @property
    def label_candidates(self) -> Path:
        return self.run / RUN_FILES["label_candidates"]

    @property
    def knn_targets(self) -> Path:
        """The variants stage's kNN targets (node_row, vector), written by the engine for its workers to index."""
        return self.run / RUN_FILES["knn_targets"]

    @property
    def daily_ledger(self) -> Path:
        """Which inputs each day's partitions were computed from (stages/daily.py)."""
        return self.run / RUN_FILES["daily"] / "_days.json"

    def daily_partition(self, dataset: str, day: str) -> Path:
        """One day of a per-day dataset: <run>/work/daily/<dataset>/<day>.parquet."""
        return self.run / RUN_FILES["daily"] / dataset / f"{day}.parquet"

    # -------------------------------------------------------------- state across runs
    @property
    def curated_turns(self) -> Path:
        return self.out / STATE_FILES["curated_turns"]

    @property
    def ingest_state(self) -> Path:
        return self.out / STATE_FILES["ingest_state"]

    @property
    def ingest_staging(self) -> Path:
        return self.out / STATE_FILES["ingest_staging"]

    @property
    def ingest_duplicates(self) -> Path:
        """The engine path's (source_file, event_id) rows that an earlier file or run already kept."""
        return self.ingest_staging / "_duplicates.parquet"

    @property
    def quarantine(self) -> Path:
        return self.out / STATE_FILES["quarantine"]

    @property
    def embedding_cache(self) -> Path:
        return self.out / STATE_FILES["embedding_cache"]

    @property
    def knn_cache(self) -> Path:
        return self.out / STATE_FILES["knn_cache"]

    @property
    def eval_result(self) -> Path:
        return self.out / STATE_FILES["eval_result"]

    # -------------------------------------------------------------- the training set folder
    @property
    def training(self) -> Path:
        return self.run / TRAINING

    @property
    def training_labels(self) -> Path:
        """The folder of the training set's `parquet` config: one file per split."""
        return self.training / TRAINING_PARQUET

    def training_split(self, split: str) -> Path:
        return self.training_labels / f"{split}.parquet"

    def training_massive(self, split: str, locale: str) -> Path:
        return self.training / TRAINING_MASSIVE / split / f"{locale}.jsonl"

    @property
    def training_massive_dir(self) -> Path:
        return self.training / TRAINING_MASSIVE

    @property
    def training_card(self) -> Path:
        return self.training / TRAINING_CARD

    @property
    def legacy_weak_labels(self) -> Path:
        return self.training / LEGACY_WEAK_LABELS

    def curated_turns_file(self, file_key: str) -> Path:
        return self.curated_turns / f"{file_key}.parquet"

    def quarantine_file(self, file_key: str) -> Path:
        return self.quarantine / f"{file_key}.parquet"

    def relative(self, path: Path) -> str:
        """A path of this run as the manifest and the training set name it: relative to the run folder."""
        return Path(path).relative_to(self.run).as_posix()

    def released_files(self) -> dict[str, str]:
        """Dataset name -> path relative to the run folder (and to out/ once published), for the manifest."""
        folders = {"training": f"{TRAINING}/", "training_parquet": f"{TRAINING}/{TRAINING_PARQUET}/",
                   "training_massive": f"{TRAINING}/{TRAINING_MASSIVE}/"}
        return {**folders, **{name: RUN_FILES[name] for name in RELEASED_FILES}}

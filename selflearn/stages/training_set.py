"""The released training set: `<out>/training/` as a Hugging Face-style dataset folder.

    training/
      README.md                          dataset card (YAML `configs` header, labels, counts, how made)
      parquet/train.parquet              the card's config `parquet`: contract.WEAK_LABELS_SCHEMA
      parquet/test.parquet               only with eval_share > 0
      massive/train/<locale>.jsonl       MASSIVE format, one file per locale
      massive/test/<locale>.jsonl        only with eval_share > 0

`datasets.load_dataset("<out>/training")` (the card's Parquet config), `datasets.load_dataset(
"<out>/training/massive")` (splits from the folder names) and `pandas.read_parquet("<out>/training/parquet")`
read it as is. A label goes to the held-out `test` split when a hash of its (locale, normalized utterance)
falls below eval_share: the same utterance lands in the same split on every run, and re-runs write the same
bytes. Nothing else is left under training/ (files of an earlier layout or split are removed), so a reader
that globs the folder sees exactly this run's set.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import contract
from selflearn.io import atomic_write_parquet, atomic_write_text
from selflearn.layout import RunLayout
from selflearn.stages.dataset_card import render_card

TRAIN, TEST = "train", "test"


@dataclass
class TrainingSet:
    """What was written: labels per split and locale, and each file's path relative to the run folder."""
    eval_share: float
    per_split: dict[str, dict[str, int]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    estimated_precision: dict[str, float] = field(default_factory=dict)  # mean calibrated confidence per locale

    def per_locale(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for counts in self.per_split.values():
            for locale, n in counts.items():
                totals[locale] = totals.get(locale, 0) + n
        return dict(sorted(totals.items()))

    def to_manifest(self) -> dict:
        return {"eval_share": self.eval_share, "labels_per_split": self.per_split, "files": self.files,
                "estimated_precision": self.estimated_precision}


def scenario_of(intent: str) -> str:
    """MASSIVE intents are `<scenario>_<action>`; the scenario is everything before the first underscore."""
    return intent.split("_", 1)[0] if intent else ""


def held_out(locales: pd.Series, utt_norms: pd.Series, eval_share: float) -> pd.Series:
    """True for the labels of the test split: a stable hash of (locale, utt_norm) below eval_share. Hashing
    the utterance, not drawing at random, keeps a label's split fixed across runs and engines."""
    if eval_share <= 0 or not len(locales):
        return pd.Series(False, index=locales.index)

    def unit_interval(locale: str, utt_norm: str) -> float:
        digest = hashlib.sha256(f"{locale}\t{utt_norm}".encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    return pd.Series([unit_interval(l, u) < eval_share for l, u in zip(locales, utt_norms)], index=locales.index)


def write_training_set(labels: pd.DataFrame, out: Path, locales: list[str], *, eval_share: float,
                       min_users: int, about: dict) -> TrainingSet:
    """Write every split in both formats and the card; remove whatever else lies under training/.
    `about` carries what the card states about the run (selflearn version, embedder, config fingerprint,
    target precision)."""
    layout = RunLayout(out)
    labels = labels if len(labels) else contract.empty(contract.WEAK_LABELS_SCHEMA).to_pandas()
    test_mask = held_out(labels["locale"], labels["utt_norm"], eval_share)
    splits = {TRAIN: labels[~test_mask.to_numpy()]}
    if eval_share > 0:
        splits[TEST] = labels[test_mask.to_numpy()]
    result = TrainingSet(eval_share=eval_share, estimated_precision={
        str(locale): round(float(conf), 4) for locale, conf in labels.groupby("locale")["confidence"].mean().items()})
    written: list[Path] = []
    for split, rows in splits.items():
        parquet = layout.training_split(split)
        table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False) if len(rows) else \
            contract.empty(contract.WEAK_LABELS_SCHEMA)
        atomic_write_parquet(contract.conform(table, contract.WEAK_LABELS_SCHEMA, "labels"), parquet)
        written.append(parquet)
        result.per_split[split] = {}
        for locale in sorted(set(locales) | set(rows["locale"])):
            path = layout.training_massive(split, locale)
            lines = massive_lines(rows[rows["locale"] == locale], locale, split)
            atomic_write_text("".join(line + "\n" for line in lines), path)
            written.append(path)
            result.per_split[split][locale] = len(lines)
    card = layout.training_card
    atomic_write_text(render_card(labels, result.per_split, splits=list(splits), eval_share=eval_share,
                                  min_users=min_users, about=about), card)
    written.append(card)
    remove_everything_else(layout.training, set(written))
    result.files = sorted(p.relative_to(out).as_posix() for p in written)
    return result


def read_previous_labels(out: Path) -> pd.DataFrame | None:
    """The labels (locale, utt_norm, intent) a previous run left in this folder, None without a previous run
    (no manifest). Reads this layout or the one before it (training/weak_labels.parquet)."""
    layout = RunLayout(out)
    if not layout.manifest.is_file():
        return None
    files = sorted(layout.training_labels.glob("*.parquet")) or \
        [p for p in [layout.legacy_weak_labels] if p.is_file()]
    columns = ["locale", "utt_norm", "intent"]
    frames = [pq.read_table(f, columns=columns).to_pandas() for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def massive_lines(rows: pd.DataFrame, locale: str, split: str) -> list[str]:
    """MASSIVE records (`id, locale, partition, scenario, intent, utt, annot_utt`) plus `weak_label`."""
    return [json.dumps({
        "id": f"selflearn-{locale}-{i}" if split == TRAIN else f"selflearn-{locale}-{split}-{i}",
        "locale": locale, "partition": split,
        "scenario": scenario_of(row.intent), "intent": row.intent, "utt": row.utt,
        "annot_utt": row.annot_utt, "weak_label": {
            "confidence": round(float(row.confidence), 6), "source": row.source,
            "n_users": int(row.n_users), "n_events": int(row.n_events),
            "target_utt": row.target_utt, "evidence": row.evidence},
    }, ensure_ascii=False) for i, row in enumerate(rows.itertuples(index=False))]


def remove_everything_else(root: Path, keep: set[Path]) -> None:
    """Delete files under root that this run did not write (an older layout's weak_labels.parquet, a test
    split from a run with a larger eval_share), then the folders left empty."""
    for path in sorted(root.rglob("*"), reverse=True):
        if path.is_file() and path not in keep and not path.name.endswith(".tmp"):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()

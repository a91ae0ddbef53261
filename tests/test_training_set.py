"""training/ is a dataset folder that `datasets` and pandas load as is, with a stable held-out split."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from selflearn.stages.training_set import held_out, write_training_set

ABOUT = {"selflearn_version": "test", "config_fingerprint": "f" * 16, "embedder": "hashing",
         "target_precision": 0.98}
LOCALES = ["de-DE", "en-US", "ja-JP"]


def weak_labels(n_per_locale: int = 20) -> pd.DataFrame:
    rows = []
    for locale, (phrase, intent) in zip(LOCALES, [("wecker auf {} uhr stellen", "alarm_set"),
                                                   ("play song number {}", "play_music"),
                                                   ("{}時にアラームをセット", "alarm_set")]):
        for i in range(n_per_locale):
            utt = phrase.format(i)
            rows.append({"locale": locale, "utt": utt, "utt_norm": utt, "intent": intent,
                         "annot_utt": utt, "slots": [{"name": "time", "value": str(i)}],
                         "confidence": 0.9 + i / 1000, "source": "multiturn", "n_users": 3, "n_events": 5,
                         "target_utt": utt, "target_locale": locale, "system_intent": "fallback",
                         "evidence": "3 users rephrased", "state": "new", "first_seen": "2026-11-01",
                         "first_labelled": "2026-11-02", "last_evidence": "2026-11-02"})
    return pd.DataFrame(rows)


def write(out: Path, labels: pd.DataFrame, eval_share: float):
    return write_training_set(labels, out, LOCALES, eval_share=eval_share, min_users=2, about=ABOUT)


def test_datasets_and_pandas_load_the_folder_with_a_held_out_split(tmp_path):
    datasets = pytest.importorskip("datasets", reason="pip install 'selflearn[dev]' (datasets is a dev extra)")
    labels = weak_labels()
    written = write(tmp_path, labels, eval_share=0.25)
    training = tmp_path / "training"

    # the card's config by name, as a team would pin it; the default config is the same one
    parquet = datasets.load_dataset(str(training), name="parquet", cache_dir=str(tmp_path / "hf"))
    assert set(parquet) == {"train", "test"}
    default = datasets.load_dataset(str(training), cache_dir=str(tmp_path / "hf"))
    assert {s: default[s].num_rows for s in default} == {s: parquet[s].num_rows for s in parquet}
    assert parquet["train"].num_rows + parquet["test"].num_rows == len(labels)
    assert 0 < parquet["test"].num_rows < len(labels) / 2
    massive = datasets.load_dataset(str(training / "massive"), cache_dir=str(tmp_path / "hf"))
    assert {s: massive[s].num_rows for s in massive} == {s: parquet[s].num_rows for s in parquet}
    assert set(massive["test"]["partition"]) == {"test"} and massive["train"][0]["weak_label"]["n_users"] == 3

    frame = pd.read_parquet(training / "parquet")
    assert sorted(frame["utt"]) == sorted(labels["utt"])
    assert written.per_locale() == {locale: 20 for locale in LOCALES}
    assert sorted(p.relative_to(training).parts[0] for p in training.iterdir()) == ["README.md", "massive",
                                                                                   "parquet"]


def test_split_is_stable_per_utterance_and_reruns_write_the_same_bytes(tmp_path):
    labels = weak_labels()
    write(tmp_path / "a", labels, eval_share=0.25)
    # the same labels in another order and with more labels beside them: each utterance keeps its split
    write(tmp_path / "b", pd.concat([weak_labels(40), labels]).iloc[::-1].drop_duplicates("utt"), eval_share=0.25)
    test_a = set(pd.read_parquet(tmp_path / "a/training/parquet/test.parquet")["utt"])
    test_b = set(pd.read_parquet(tmp_path / "b/training/parquet/test.parquet")["utt"])
    assert test_a and test_a == test_b & set(labels["utt"])

    first = {p: p.read_bytes() for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()}
    write(tmp_path / "a", labels, eval_share=0.25)
    assert {p: p.read_bytes() for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()} == first


def test_nothing_but_this_runs_set_stays_under_training(tmp_path):
    old_layout = tmp_path / "training" / "weak_labels.parquet"
    old_layout.parent.mkdir(parents=True)
    old_layout.write_bytes(b"an earlier version's file")
    (tmp_path / "training" / "massive").mkdir()
    (tmp_path / "training" / "massive" / "en-US.jsonl").write_text("{}\n")
    write(tmp_path, weak_labels(), eval_share=0.3)
    written = write(tmp_path, weak_labels(), eval_share=0.0)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "training").rglob("*") if p.is_file())
    assert files == written.files == ["training/README.md", *(f"training/massive/train/{l}.jsonl" for l in LOCALES),
                                      "training/parquet/train.parquet"]
    assert "test" not in (tmp_path / "training" / "README.md").read_text().split("---")[1]


def test_the_card_states_labels_counts_and_confidence_but_no_utterance(tmp_path):
    write(tmp_path, weak_labels(), eval_share=0.25)
    card = (tmp_path / "training" / "README.md").read_text(encoding="utf-8")
    header, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "config_name: parquet" in header and "path: parquet/test.parquet" in header
    assert "license: other" in header and '- "ja"' in header
    assert "| alarm_set | alarm | 40 |" in body and "| play_music | play | 20 |" in body
    assert "## Confidence" in body and "calibrated" in body and "## Licence" in body
    assert "| all |" in body
    for utt in weak_labels()["utt"]:
        assert utt not in card


def test_held_out_share_is_close_to_the_requested_share():
    locales = pd.Series(["en-US"] * 4000)
    utts = pd.Series([f"utterance {i}" for i in range(4000)])
    assert not held_out(locales, utts, 0.0).any()
    assert abs(held_out(locales, utts, 0.1).mean() - 0.1) < 0.02


def test_massive_records_keep_the_massive_fields(tmp_path):
    write(tmp_path, weak_labels(2), eval_share=0.0)
    record = json.loads((tmp_path / "training/massive/train/de-DE.jsonl").read_text().splitlines()[0])
    assert record["id"] == "selflearn-de-DE-0" and record["partition"] == "train"
    assert record["scenario"] == "alarm" and record["intent"] == "alarm_set"

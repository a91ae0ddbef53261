"""Label lifecycle over growing windows of the drift world (real simulated logs, the real pipeline on DuckDB):
a label is confirmed while its text keeps failing and retired once the retrained NLU handles it; retired labels
leave the training set; a re-run over the same days, or another folder fed the same days, ends identical."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from selflearn import pipeline
from selflearn.config import load_config
from selflearn.simulate import simulate
from selflearn.text import match_key

pytestmark = pytest.mark.slow
WINDOWS = (5, 7, 10)        # days of the drift world fed to each run; the NLU is retrained on day 6
COMPARED = ("training/parquet/train.parquet", "history/labels.parquet", "history/changes.parquet")


def _run(logs: Path, out: Path) -> dict:
    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False, "privacy.user_salt": "t"})
    return pipeline.run(str(logs), out, cfg, say=lambda m: None).manifest


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("lifecycle")
    simulate(root / "world", turns=12000, seed=5, days=10, world="drift")
    days = sorted((root / "world" / "logs").glob("day=*"))
    states, manifests = {}, {}
    for n in WINDOWS:
        logs = root / f"logs{n}"
        for day in days[:n]:
            shutil.copytree(day, logs / day.name)
        manifests[n] = _run(logs, root / "out")
        states[n] = pd.read_parquet(root / "out" / "history" / "labels.parquet")
    truth = pd.read_parquet(root / "world" / "truth" / "drift_texts.parquet")
    truth["utt_norm"] = truth["utterance"].map(match_key)
    return {"root": root, "states": states, "manifests": manifests, "truth": truth}


def test_a_label_is_confirmed_then_retired_when_the_retrained_nlu_handles_it(runs):
    first, last = runs["states"][WINDOWS[0]], runs["states"][WINDOWS[-1]]
    key = ["locale", "utt_norm", "intent"]
    both = first.merge(last, on=key, suffixes=("_before", "_after"))
    went = both[(both["state_before"] == "confirmed") & (both["state_after"] == "retired")
                & both["reason_after"].str.startswith("the NLU now handles it")]
    assert len(went) >= 3, both.groupby(["state_before", "state_after"]).size()
    # retired because the retrained NLU handles the text, as the world's truth says
    fixed = went.merge(runs["truth"], on=["locale", "utt_norm"])
    assert fixed["retrained_nlu_correct"].mean() >= 0.8
    assert (went["first_labelled_after"] == went["first_labelled_before"]).all()
    changes = pd.read_parquet(runs["root"] / "out" / "history" / "changes.parquet")
    retired = changes[changes["change"] == "retired"].merge(went[key], on=key)
    assert len(retired) == len(went) and (retired["as_of"] > first["as_of"].max()).all()
    assert runs["manifests"][WINDOWS[-1]]["lifecycle"]["changes"].get("retired", 0) >= 1


def test_retired_labels_leave_the_training_set_and_labels_carry_their_life(runs):
    train = pd.read_parquet(runs["root"] / "out" / "training" / "parquet" / "train.parquet")
    assert set(train["state"]) <= {"new", "confirmed"} and len(train)
    assert (train["first_seen"] <= train["first_labelled"]).all()
    last = runs["states"][WINDOWS[-1]]
    retired = last[last["state"] == "retired"]
    assert not train.merge(retired[["locale", "utt_norm", "intent"]], on=["locale", "utt_norm", "intent"]).shape[0]


def test_no_label_comes_back_after_retirement(runs):
    key = ["locale", "utt_norm", "intent"]
    for a, b in zip(WINDOWS, WINDOWS[1:]):
        pair = runs["states"][a].merge(runs["states"][b], on=key, suffixes=("_a", "_b"))
        assert not ((pair["state_a"] == "retired") & (pair["state_b"] != "retired")).any()


def test_same_days_give_identical_outputs(runs, tmp_path):
    root = runs["root"]
    before = {rel: pq.read_table(root / "out" / rel) for rel in COMPARED}
    _run(root / f"logs{WINDOWS[-1]}", root / "out")           # the same days again, same folder
    for n in WINDOWS:                                          # the same days, another folder
        _run(root / f"logs{n}", tmp_path / "other")
    for rel, table in before.items():
        assert pq.read_table(root / "out" / rel).equals(table), rel
        assert pq.read_table(tmp_path / "other" / rel).equals(table), rel

"""The CLINC150 real-NLU world: contract conformance, a real classifier's error rate, truthful truth, the
friction knob, reproducibility."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from selflearn import contract
from selflearn.sim import clinc_nlu
from selflearn.sim.clinc_world import build_clinc_world
from selflearn.sim.output import EVAL_COLUMNS
from selflearn.text import normalize

pytestmark = pytest.mark.skipif(not clinc_nlu.DEFAULT_PATH.is_file(),
                                reason=f"CLINC150 not at {clinc_nlu.DEFAULT_PATH}")
TURNS = 3000


def _read(out: Path) -> dict[str, pd.DataFrame]:
    logs = pd.concat([pq.read_table(f).to_pandas() for f in sorted((out / "logs").glob("day=*/part-0.parquet"))],
                     ignore_index=True)
    tables = {name: pd.read_parquet(out / "truth" / f"{name}.parquet")
              for name in ("turns", "pairs", "nlu_seed", "nlu_test")}
    return {"logs": logs, **tables, "events": logs.merge(tables["turns"], on="event_id", validate="one_to_one")}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("clinc")
    summary = build_clinc_world(out, seed=3, turns=TURNS, friction_coverage=0.5)
    return {"out": out, "summary": summary, **_read(out)}


def test_every_clinc_intent_has_a_domain_and_ten_domains_hold_fifteen_each():
    intents = set(pd.read_parquet(clinc_nlu.DEFAULT_PATH, columns=["intent"])["intent"]) - {clinc_nlu.OOS}
    assert set(clinc_nlu.DOMAIN_OF) == intents
    assert len(clinc_nlu.DOMAINS) == 10 and {len(v) for v in clinc_nlu.DOMAINS.values()} == {15}


def test_files_match_the_log_contract_and_the_truth_schemas(world):
    out = world["out"]
    files = sorted((out / "logs").glob("day=*/part-0.parquet"))
    assert len(files) >= 5
    for f in files:
        assert pq.read_schema(f).remove_metadata().equals(contract.LOG_SCHEMA), f
        part = pq.read_table(f, columns=["user_id", "ts"]).to_pandas()
        assert (part["ts"].dt.strftime("%Y-%m-%d") == f.parent.name.removeprefix("day=")).all()
        assert part.equals(part.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True))
    for name, schema in (("turns", contract.TRUTH_TURNS_SCHEMA), ("pairs", contract.TRUTH_PAIRS_SCHEMA),
                         ("nlu_seed", EVAL_COLUMNS), ("nlu_test", EVAL_COLUMNS)):
        assert pq.read_schema(out / "truth" / f"{name}.parquet").remove_metadata().equals(schema), name
    logs = world["logs"]
    assert len(logs) == TURNS == world["summary"]["turns"]
    assert logs["event_id"].is_unique
    assert logs[contract.REQUIRED_LOG_COLUMNS].notna().all().all()
    assert set(logs["response_status"]) <= set(contract.RESPONSE_STATUSES)
    assert "CLINC150" in (readme := (out / "README.md").read_text()) and "Attribution 3.0" in readme


def test_the_nlu_is_a_real_classifier_deterministic_per_text_and_wrong_a_sane_share_of_the_time(world):
    ev, summary = world["events"], world["summary"]
    per_text = ev.groupby("utterance").agg(intents=("nlu_intent", lambda s: s.fillna("<none>").nunique()),
                                           scores=("nlu_confidence", "nunique"))
    assert (per_text["intents"] == 1).all() and (per_text["scores"] <= 1).all()
    in_scope = ev[ev["true_intent"] != clinc_nlu.OOS]
    misread = 1.0 - in_scope["system_correct"].mean()
    assert 0.08 < misread < 0.35, misread
    assert 0.10 < summary["classifier_error"] < 0.30
    assert (in_scope["system_correct"] == (in_scope["nlu_intent"] == in_scope["true_intent"])).all()
    # informative confidence: the classifier is surer when it is right
    assert in_scope.loc[in_scope["system_correct"], "nlu_confidence"].mean() > \
        in_scope.loc[~in_scope["system_correct"], "nlu_confidence"].mean() + 0.15
    oos = ev[ev["true_intent"] == clinc_nlu.OOS]
    assert oos["nlu_intent"].isna().all() and (oos["response_status"] == "unhandled").all()


def test_seed_and_test_sets_are_disjoint_from_each_other_and_from_the_logs(world):
    said = set(world["logs"]["utterance"].map(normalize))
    seed, test = world["nlu_seed"], world["nlu_test"]
    assert not said & set(test["utt"].map(normalize))
    assert not said & set(seed["utt"].map(normalize))
    assert not set(seed["utt"].map(normalize)) & set(test["utt"].map(normalize))
    assert (seed.groupby("intent").size() == clinc_nlu.SEED_PER_INTENT).all()
    assert seed["intent"].nunique() == 150 and (seed["annot_utt"] == seed["utt"]).all()
    assert (test["locale"] == "en-US").all() and len(test) == 1000 == world["summary"]["nlu_test_rows"]
    # drawn by traffic: the closed loop measures accuracy on what users ask
    most_asked = world["turns"]["true_intent"].value_counts().index[:15]   # a tenth of the intents
    assert test["intent"].isin(most_asked).mean() > 0.4


def test_truth_pairs_cover_every_consecutive_pair_and_rephrases_keep_the_intent(world):
    logs, pairs = world["logs"], world["pairs"]
    ordered = logs.sort_values(["user_id", "ts"], kind="stable")
    same_user = ordered["user_id"].to_numpy()[1:] == ordered["user_id"].to_numpy()[:-1]
    expected = set(zip(ordered["event_id"].to_numpy()[:-1][same_user], ordered["event_id"].to_numpy()[1:][same_user]))
    assert set(zip(pairs["event_id_a"], pairs["event_id_b"])) == expected
    assert pairs["is_rephrase"].equals(pairs["kind"].isin(["paraphrase", "repetition"]))
    ev = world["events"].set_index("event_id")
    a, b = ev.loc[pairs["event_id_a"]], ev.loc[pairs["event_id_b"]]
    gap_s = (b["ts"].to_numpy() - a["ts"].to_numpy()) / np.timedelta64(1, "s")
    kind = pairs["kind"].to_numpy()
    rephrase = pairs["is_rephrase"].to_numpy()
    assert rephrase.sum() > 100
    assert (a["true_intent"].to_numpy()[rephrase] == b["true_intent"].to_numpy()[rephrase]).all()
    assert (~a["system_correct"].to_numpy()[rephrase]).mean() > 0.9   # the rest retry after a backend error
    assert (gap_s[rephrase] <= 20).all()
    para, rep = kind == "paraphrase", kind == "repetition"
    assert (a["utterance"].to_numpy()[para] != b["utterance"].to_numpy()[para]).all()
    assert (a["utterance"].to_numpy()[rep] == b["utterance"].to_numpy()[rep]).all()
    related = kind == "related_different"
    assert (a["true_scenario"].to_numpy()[related] == b["true_scenario"].to_numpy()[related]).all()
    assert (a["true_intent"].to_numpy()[related] != b["true_intent"].to_numpy()[related]).all()
    quick = (kind == "unrelated_quick") & (a["true_intent"].to_numpy() != clinc_nlu.OOS)
    assert (a["true_scenario"].to_numpy()[quick] != b["true_scenario"].to_numpy()[quick]).all()


def test_misread_texts_recur_across_users(world):
    summary = world["summary"]
    assert summary["median_users_per_failing_text"] >= 2
    assert summary["max_users_per_failing_text"] >= 5


@pytest.mark.parametrize("coverage", [0.0, 0.5, 1.0])
def test_friction_coverage_sets_the_logged_share_of_failing_turns_and_nothing_else(world, tmp_path, coverage):
    summary = build_clinc_world(tmp_path, seed=3, turns=TURNS, friction_coverage=coverage)
    ev = _read(tmp_path)["events"]
    signal = ev["response_status"].ne("success") | ev["barge_in"].eq(True)
    share = signal[~ev["system_correct"]].mean()
    assert share == coverage if coverage in (0.0, 1.0) else abs(share - coverage) < 0.06, share
    assert abs(summary["logged_friction_share_of_failing"] - coverage) < 0.06
    # what happened is the same turns as in the 0.5 world: only the logged friction differs
    same = ["event_id", "user_id", "ts", "utterance", "nlu_intent", "nlu_confidence"]
    assert ev[same].equals(world["events"][same])


def test_confidence_modes(world, tmp_path):
    def text_auc(events: pd.DataFrame) -> float:   # per distinct text: a text said often weighs once
        texts = events[events["true_intent"] != clinc_nlu.OOS].drop_duplicates("utterance")
        return roc_auc_score(texts["system_correct"], texts["nlu_confidence"])

    absent = build_clinc_world(tmp_path / "a", seed=3, turns=TURNS, confidence="absent")
    assert _read(tmp_path / "a")["logs"]["nlu_confidence"].isna().all() and absent["confidence_auc"] is None
    build_clinc_world(tmp_path / "u", seed=3, turns=TURNS, confidence="uninformative")
    uninformative = _read(tmp_path / "u")["events"]
    assert abs(text_auc(uninformative) - 0.5) < 0.08 < text_auc(world["events"]) - 0.5 - 0.15
    with pytest.raises(ValueError, match="confidence"):
        build_clinc_world(tmp_path / "x", turns=10, confidence="sometimes")


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    build_clinc_world(tmp_path / "a", seed=5, turns=1500)
    clinc_nlu.production_nlu.cache_clear()   # the classifier is trained again, not taken from the cache
    build_clinc_world(tmp_path / "b", seed=5, turns=1500)
    build_clinc_world(tmp_path / "c", seed=6, turns=1500)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")

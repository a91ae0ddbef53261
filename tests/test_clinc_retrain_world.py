"""The CLINC150 world with a retrained NLU: the retrained classifier serves from its day, the drift truth says
per text what each NLU reads right, the retraining fixes some texts and breaks few, fixes similar phrasings
together (unlike the simulator's coin flips), and the world is deterministic under its seed."""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from selflearn.sim import clinc_nlu
from selflearn.sim.clinc_world import START_DATE, build_clinc_world
from selflearn.text import normalize

pytestmark = pytest.mark.skipif(not clinc_nlu.DEFAULT_PATH.is_file(),
                                reason=f"CLINC150 not at {clinc_nlu.DEFAULT_PATH}")
TURNS, DAYS, RETRAIN_DAY, SEED = 12000, 8, 4, 3


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("clinc-retrain")
    summary = build_clinc_world(out, seed=SEED, turns=TURNS, days=DAYS, retrain_day=RETRAIN_DAY)
    logs = pd.concat([pd.read_parquet(f) for f in sorted((out / "logs").glob("day=*/part-0.parquet"))])
    events = logs.merge(pd.read_parquet(out / "truth" / "turns.parquet"), on="event_id", validate="one_to_one")
    events["day"] = (events["ts"].dt.date - dt.date.fromisoformat(START_DATE)).map(lambda d: d.days)
    texts = pd.read_parquet(out / "truth" / "drift_texts.parquet")
    events = events.merge(texts, on=["locale", "utterance"], suffixes=("", "_text"), validate="many_to_one")
    return {"out": out, "summary": summary, "events": events, "texts": texts}


def test_the_truth_says_which_nlu_reads_each_text_right_and_the_retrained_one_serves_from_its_day(world):
    events, texts = world["events"], world["texts"]
    assert len(texts) == events["utterance"].nunique() and texts["emerging"].isna().all()
    assert (texts["fixed_by_retrain"] == (~texts["old_nlu_correct"] & texts["retrained_nlu_correct"])).all()
    in_scope = events[events["true_intent"] != clinc_nlu.OOS]
    assert (in_scope["system_correct"] == (in_scope["nlu_intent"] == in_scope["true_intent"])).all()
    # a session never starts before its planned day: before the retrain only the first NLU answers
    before = events[events["day"] < RETRAIN_DAY]
    assert len(before) > 1000 and (before["system_correct"] == before["old_nlu_correct"]).all()
    # from the day after, sessions pushed past midnight from before the retrain are rare
    after = events[events["day"] > RETRAIN_DAY]
    assert len(after) > 1000 and (after["system_correct"] == after["retrained_nlu_correct"]).mean() > 0.99
    # every turn is read by one of the two NLUs
    assert ((events["system_correct"] == events["old_nlu_correct"])
            | (events["system_correct"] == events["retrained_nlu_correct"])).all()
    fixed_after = after[after["fixed_by_retrain"]]
    assert len(fixed_after) > 50 and fixed_after["system_correct"].mean() > 0.99


def test_the_retrained_classifier_fixes_many_misread_texts_breaks_few_and_never_saw_a_said_one(world):
    texts, summary = world["texts"], world["summary"]
    misread = ~texts["old_nlu_correct"]
    fixed, broken = texts["fixed_by_retrain"].sum(), (texts["old_nlu_correct"] & ~texts["retrained_nlu_correct"]).sum()
    assert 0.3 < fixed / misread.sum() < 0.8, (fixed, misread.sum())
    assert broken < fixed / 3 and broken / texts["old_nlu_correct"].sum() < 0.05, (broken, fixed)
    assert summary["retrained_classifier_error"] < summary["classifier_error"] - 0.03
    assert (summary["texts_fixed_by_retrain"], summary["texts_broken_by_retrain"]) == (fixed, broken)
    nlu = clinc_nlu.production_nlu(None, SEED, summary["retrain_extra"])
    assert (nlu.retrain.groupby("intent").size() == summary["retrain_extra"]).all()
    learnt = set(nlu.retrain["text"].map(normalize)) | set(nlu.seed["text"].map(normalize))
    assert not learnt & set(world["events"]["utterance"].map(normalize))   # every fix is a generalization


def test_a_real_classifier_fixes_phrasings_of_one_intent_together(world):
    """The reason this world exists: a misread text is more likely fixed when the other misread texts of its
    intent were fixed. Independent coin flips per text (sim/drift.py) would give no such lift."""
    texts = world["texts"]
    misread = texts[~texts["old_nlu_correct"]].copy()
    per_intent = misread.groupby("true_intent")["fixed_by_retrain"]
    misread["others_fixed"] = ((per_intent.transform("sum") - misread["fixed_by_retrain"])
                               / (per_intent.transform("size") - 1))
    misread = misread[per_intent.transform("size") > 1]
    lift = (misread.loc[misread["others_fixed"] > 0.5, "fixed_by_retrain"].mean()
            - misread.loc[misread["others_fixed"] <= 0.5, "fixed_by_retrain"].mean())
    assert len(misread) > 200 and lift > 0.08, lift


def test_same_seed_and_retrain_give_identical_bytes_and_the_knobs_are_checked(world, tmp_path):
    clinc_nlu.production_nlu.cache_clear()   # both classifiers are trained again, not taken from the cache
    build_clinc_world(tmp_path / "a", seed=SEED, turns=TURNS, days=DAYS, retrain_day=RETRAIN_DAY)
    assert _digests(tmp_path / "a") == _digests(world["out"])
    for bad in ({"retrain_day": 0}, {"retrain_day": DAYS}, {"retrain_day": 2, "retrain_extra": 0}):
        with pytest.raises(ValueError, match="retrain"):
            build_clinc_world(tmp_path / "x", turns=10, days=DAYS, **bad)


def test_without_a_retrain_the_retrained_reading_is_the_first_one():
    nlu = clinc_nlu.production_nlu(None, SEED)
    assert nlu.retrain is None and nlu.retrained_error is None
    assert nlu.phrasings["retrained_predicted"].equals(nlu.phrasings["predicted"])
    assert nlu.phrasings["retrained_confidence"].equals(nlu.phrasings["confidence"])
    assert np.isclose(nlu.classifier_error, clinc_nlu.production_nlu(None, SEED, 20).classifier_error, atol=0.02)

"""The drift world: what emerges appears on its day and not before, the retrained NLU serves from its day
and fixes exactly the texts the truth says it fixes, and the launch locale starts late and small."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from selflearn.sim.worlds import WORLDS
from selflearn.simulate import simulate

DAYS, START = 10, dt.date(2026, 11, 1)
WORLD = WORLDS["drift"]


@pytest.fixture(scope="module")
def drift(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("drift")
    simulate(out, turns=12000, seed=5, days=DAYS, world="drift")
    logs = pd.concat([pd.read_parquet(f) for f in sorted((out / "logs").glob("day=*/part-0.parquet"))])
    events = logs.merge(pd.read_parquet(out / "truth" / "turns.parquet"), on="event_id", validate="one_to_one")
    events["day"] = (events["ts"].dt.date - START).map(lambda d: d.days)
    return {"out": out, "events": events, "texts": pd.read_parquet(out / "truth" / "drift_texts.parquet")}


def test_new_entities_appear_on_their_day(drift):
    texts = drift["texts"]
    entity = texts[texts["emerging"] == "entity"]
    assert len(entity) > 20
    assert (entity["first_day"] >= START + dt.timedelta(days=WORLD.emerging_day)).all()
    # every locale that is live on the day gets some, and most of them fail under the first NLU
    assert set(entity["locale"]) == set(texts["locale"])
    assert 0.4 < (~entity["old_nlu_correct"]).mean() < 0.8
    wording = texts[texts["emerging"] == "wording"]
    assert (wording["first_day"] >= START + dt.timedelta(days=WORLD.emerging_day)).mean() > 0.8


def test_retrained_nlu_fixes_what_the_truth_says_from_its_day(drift):
    events, texts = drift["events"], drift["texts"]
    assert events["system_correct"].equals(events["nlu_intent"].eq(events["true_intent"]))
    fixed = events.merge(texts[texts["fixed_by_retrain"]][["locale", "utterance"]], on=["locale", "utterance"])
    assert len(fixed) > 100
    # a session never starts before its planned day: before retrain_day only the first NLU answers
    assert not fixed[fixed["day"] < WORLD.retrain_day]["system_correct"].any()
    assert fixed[fixed["day"] > WORLD.retrain_day]["system_correct"].mean() > 0.95
    unfixed = events.merge(texts[~texts["old_nlu_correct"] & ~texts["fixed_by_retrain"]][["locale", "utterance"]],
                           on=["locale", "utterance"])
    assert not unfixed["system_correct"].any()
    share = texts["fixed_by_retrain"].sum() / (~texts["old_nlu_correct"]).sum()
    assert abs(share - WORLD.retrain_fix_share) < 0.08


def test_launch_locale_starts_on_its_day_with_a_small_share(drift):
    events = drift["events"]
    launch = events["locale"] == WORLD.launch_locale
    assert not launch[events["day"] < WORLD.launch_day].any()
    live = events[events["day"] >= WORLD.launch_day]
    assert 0.01 < (live["locale"] == WORLD.launch_locale).mean() < 0.04


def test_same_seed_same_bytes(drift, tmp_path):
    simulate(tmp_path, turns=12000, seed=5, days=DAYS, world="drift")
    for rel in ("truth/drift_texts.parquet", "truth/turns.parquet", "logs/day=2026-11-08/part-0.parquet"):
        assert (tmp_path / rel).read_bytes() == (Path(drift["out"]) / rel).read_bytes(), rel

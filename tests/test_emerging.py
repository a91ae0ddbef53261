"""Emerging phrasings: the burst score on inline daily counts, and on the drift world (real simulated logs, the
real pipeline on DuckDB) the phrasings new from day 3 rank at the top of each locale's list on days 4 and 5."""
from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest

from selflearn import pipeline
from selflearn.config import EmergingConfig, load_config
from selflearn.emerging import burst_scores, emerging, poisson_burst
from selflearn.sim.worlds import WORLDS
from selflearn.simulate import simulate
from selflearn.text import match_key

RULES = EmergingConfig()


def _days(rows: list[tuple[str, str, int, int, int]]) -> pd.DataFrame:
    """(locale, utt_norm, day of November 2026, events, defective) -> text_days rows."""
    return pd.DataFrame([{"locale": loc, "utt_norm": text, "day": dt.date(2026, 11, d), "n_events": n,
                          "n_defective": bad} for loc, text, d, n, bad in rows])


def test_poisson_burst_is_zero_unless_above_expectation_and_grows_with_the_count():
    assert poisson_burst([0, 3, 5], [5.0, 5.0, 5.0]).tolist() == [0.0, 0.0, 0.0]
    low, high = poisson_burst([10, 20], [2.0, 2.0])
    assert 0 < low < high


def test_new_texts_and_failure_jumps_burst_steady_texts_and_locale_growth_do_not():
    rows = []
    for day in range(1, 8):
        grow = 2 if day >= 6 else 1                     # the whole locale doubles in the last two days
        rows += [("en-US", "play jazz", day, 40 * grow, 4 * grow),      # steady share, steady failure
                 ("en-US", "set an alarm", day, 30 * grow, 3 * grow if day < 6 else 45)]   # starts failing
    rows += [("en-US", "play the new barbie song", 6, 12, 8), ("en-US", "play the new barbie song", 7, 15, 9),
             ("en-US", "once said", 7, 1, 1),
             ("hi-IN", "gaana bajao", 6, 20, 15), ("hi-IN", "gaana bajao", 7, 20, 15)]   # launched on day 6
    scores = burst_scores(_days(rows), "2026-11-07", RULES).set_index(["locale", "utt_norm"])
    assert scores.loc[("en-US", "play jazz"), "score"] == 0.0
    new = scores.loc[("en-US", "play the new barbie song")]
    assert new["rising"] == "both" and new["traffic_score"] > 20 and new["history_events"] == 0
    jumped = scores.loc[("en-US", "set an alarm")]
    assert jumped["rising"] == "failure" and jumped["traffic_score"] == 0.0 and jumped["failure_score"] > 20
    assert ("en-US", "once said") not in scores.index                 # fewer than min_recent_events
    assert "hi-IN" not in scores.index.get_level_values("locale")   # no history to compare with
    listed = emerging(scores.reset_index(), RULES)
    assert listed[["utt_norm", "rank"]].values.tolist() == [["set an alarm", 1], ["play the new barbie song", 2]]


@pytest.mark.slow
@pytest.mark.parametrize("days", [5, 6])   # runs as of day 4 and day 5 (counted from 0); new phrasings from day 3
def test_phrasings_new_from_day_3_top_the_list_on_day_4_and_5(tmp_path_factory, days):
    world = WORLDS["drift"]
    root = tmp_path_factory.mktemp(f"emerging{days}")
    simulate(root / "world", turns=12000, seed=5, days=10, world="drift")
    for day in sorted((root / "world" / "logs").glob("day=*"))[:days]:
        shutil.copytree(day, root / "logs" / day.name)
    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False, "privacy.user_salt": "t"})
    manifest = pipeline.run(str(root / "logs"), root / "out", cfg, say=lambda m: None).manifest
    truth = pd.read_parquet(root / "world" / "truth" / "drift_texts.parquet")
    truth["utt_norm"] = truth["utterance"].map(match_key)
    first_day = truth.groupby(["locale", "utt_norm"])["first_day"].min().rename("first_day").reset_index()
    new_from = dt.date(2026, 11, 1) + dt.timedelta(days=world.emerging_day)

    listed = pd.read_parquet(root / "out" / "history" / "emerging.parquet").merge(first_day, on=["locale", "utt_norm"])
    top = listed[listed["rank"] <= 3]
    assert len(top) >= 6 and top["locale"].nunique() >= 4
    assert (top["first_day"] >= new_from).mean() >= 0.7, top
    assert listed.loc[(listed["locale"] == "en-US") & (listed["rank"] == 1), "first_day"].iloc[0] >= new_from
    # against the base rate: most texts said in the recent days are old ones
    recent = pd.read_parquet(root / "out" / "graph" / "nodes.parquet")[["locale", "utt_norm"]].merge(
        first_day, on=["locale", "utt_norm"])
    assert (recent["first_day"] >= new_from).mean() < 0.3
    # released like every output; the mined interpretation is the run's live training label for the text
    assert (listed["n_users"] >= cfg.privacy.min_users).all()
    training = pd.read_parquet(root / "out" / "training" / "parquet")[["locale", "utt_norm", "intent"]]
    mined = listed[listed["mined_intent"].notna()].merge(training, on=["locale", "utt_norm"])
    assert len(mined) >= 2 and (mined["mined_intent"] == mined["intent"]).all()
    assert manifest["emerging"]["per_locale"] == listed.groupby("locale").size().to_dict()

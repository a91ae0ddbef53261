"""Evaluation worlds: each knob moves what it should in the written logs, the truth stays true, and the
default world is the simulator that made sample_logs/, byte for byte."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy.stats import rankdata

from selflearn import cli, text
from selflearn.simulate import simulate
from selflearn.sim.worlds import WORLDS, World, resolve

SAMPLE_LOGS = Path(__file__).resolve().parent.parent / "sample_logs"
TURNS, SEED = 8000, 11


@pytest.fixture(scope="module")
def world_logs(tmp_path_factory):
    """name -> the written logs and truth of that world (same seed and size), simulated on first use."""
    root, loaded = tmp_path_factory.mktemp("worlds"), {}

    def get(name: str) -> dict:
        if name not in loaded:
            simulate(root / name, turns=TURNS, seed=SEED, world=name)
            loaded[name] = _load(root / name)
        return loaded[name]
    return get


def _load(out: Path) -> dict:
    logs = pd.concat([pq.read_table(f).to_pandas() for f in sorted((out / "logs").glob("day=*/part-0.parquet"))],
                     ignore_index=True)
    truth = pd.read_parquet(out / "truth" / "turns.parquet")
    return {"out": out, "logs": logs, "truth": truth, "pairs": pd.read_parquet(out / "truth" / "pairs.parquet"),
            "events": logs.merge(truth, on="event_id", validate="one_to_one")}


def _signal_share_of_failing(events: pd.DataFrame) -> float:
    """Share of misread turns (system_correct false) whose log shows friction: a non-success status or a
    barge-in."""
    failing = events[~events["system_correct"]]
    signal = (failing["response_status"] != "success") | failing["barge_in"].eq(True)
    return float(signal.mean())


def _users_behind_failing_turns(events: pd.DataFrame) -> pd.Series:
    """For each misread turn, how many distinct users said its text (the evidence a miner can pool)."""
    failing = events[~events["system_correct"]]
    return failing.groupby(["locale", "utterance"])["user_id"].transform("nunique")


def _rephrase_chain_lengths(pairs: pd.DataFrame) -> np.ndarray:
    """Turns per chain of consecutive rephrases (pairs are in event order: a chain is a run of linked
    rephrase pairs)."""
    reph = pairs["is_rephrase"].to_numpy()
    linked = np.r_[False, pairs["event_id_a"].to_numpy()[1:] == pairs["event_id_b"].to_numpy()[:-1]]
    starts = reph & ~(linked & np.r_[False, reph[:-1]])
    return np.bincount(np.cumsum(starts)[reph])[1:] + 1


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    ranks = rankdata(score)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_default_world_reproduces_the_checked_in_sample_logs(tmp_path):
    if not any((SAMPLE_LOGS / "logs").glob("day=*/*.parquet")):
        pytest.skip("this checkout has no sample_logs/")
    simulate(tmp_path, turns=6000, seed=7)
    expected = sorted(p.relative_to(SAMPLE_LOGS) for p in SAMPLE_LOGS.rglob("*.parquet"))
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.parquet")) == expected
    for rel in expected:
        assert pq.read_table(tmp_path / rel).equals(pq.read_table(SAMPLE_LOGS / rel)), rel
    assert json.loads((tmp_path / "truth" / "world.json").read_text())["name"] == "simulator"


def test_same_seed_and_world_give_the_same_bytes(tmp_path):
    simulate(tmp_path / "a", turns=1500, seed=5, world="real-like")
    simulate(tmp_path / "b", turns=1500, seed=5, world="real-like")
    simulate(tmp_path / "c", turns=1500, seed=5, world=World(friction_coverage=0.4))
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")


def test_once_seen_share_makes_a_long_tail_of_distinct_texts(tmp_path):
    """The throughput benchmark's diverse world: many more distinct texts, most of the new ones said once."""
    def texts(folder):
        table = pd.concat(pd.read_parquet(p, columns=["utterance"]) for p in (folder / "logs").rglob("*.parquet"))
        return table["utterance"].map(text.normalize).value_counts()

    simulate(tmp_path / "plain", turns=6000, seed=5)
    simulate(tmp_path / "diverse", turns=6000, seed=5, world=World(once_seen_share=0.6))
    plain, diverse = texts(tmp_path / "plain"), texts(tmp_path / "diverse")
    assert diverse.sum() == plain.sum()                           # the same number of turns
    assert len(diverse) > 1.5 * len(plain)
    assert (diverse == 1).sum() - (plain == 1).sum() > 0.5 * (len(diverse) - len(plain))


def test_friction_coverage_thins_the_logged_friction_and_nothing_else(world_logs):
    full, sparse = world_logs("simulator"), world_logs("sparse-friction")
    share_full, share_sparse = _signal_share_of_failing(full["events"]), _signal_share_of_failing(sparse["events"])
    assert share_full > 0.6          # not 1: a misread that "worked" and nobody barged in logs nothing even here
    assert 0.22 < share_sparse / share_full < 0.38, (share_sparse, share_full)
    # coverage is about logging only: the same turns happen, the truth is the same
    assert sparse["truth"].equals(full["truth"]) and sparse["pairs"].equals(full["pairs"])
    changed_columns = [c for c in full["logs"] if not sparse["logs"][c].equals(full["logs"][c])]
    assert changed_columns == ["response_status", "barge_in"]
    changed = (sparse["logs"]["response_status"] != full["logs"]["response_status"]) | \
        (sparse["logs"]["barge_in"].eq(True) != full["logs"]["barge_in"].eq(True))
    was_failing = ~full["events"]["system_correct"] | (full["logs"]["response_status"] == "error")
    assert changed.sum() > 100 and was_failing[changed].all()
    assert (sparse["logs"].loc[changed, "response_status"] == "success").all()
    assert not sparse["logs"].loc[changed, "barge_in"].eq(True).any()
    assert sparse["logs"]["barge_in"].isna().equals(full["logs"]["barge_in"].isna())   # null stays "not reported"


def test_confidence_modes(world_logs):
    informative, absent = world_logs("simulator")["events"], world_logs("no-confidence")["events"]
    uninformative = world_logs("uninformative-confidence")["events"]
    assert absent["nlu_confidence"].isna().all()
    assert absent.drop(columns="nlu_confidence").equals(informative.drop(columns="nlu_confidence"))
    # per distinct text (a deployed model scores a text the same every time): informative separates right
    # from wrong, uninformative does not
    for events, low, high in ((informative, 0.8, 1.0), (uninformative, 0.43, 0.57)):
        texts = events.drop_duplicates(["locale", "utterance"])
        auc = _auc(texts["nlu_confidence"].to_numpy(), texts["system_correct"].to_numpy())
        assert low < auc < high, auc
    assert uninformative["nlu_confidence"].between(0, 1).all()
    assert uninformative["nlu_confidence"].mean() > 0.7    # an overconfident model, not a random number


def test_long_tail_spreads_failing_texts_over_fewer_users(world_logs):
    default, tail = world_logs("simulator")["events"], world_logs("long-tail")["events"]
    users_default, users_tail = _users_behind_failing_turns(default), _users_behind_failing_turns(tail)
    assert users_tail.median() <= users_default.median()
    assert users_tail.quantile(0.9) < users_default.quantile(0.9)
    assert users_tail.mean() < 0.75 * users_default.mean()
    assert (users_tail >= 5).mean() < min(0.1, (users_default >= 5).mean() / 2)
    shared = tail[~tail["system_correct"]].groupby(["locale", "utterance"])["user_id"].nunique()
    assert shared[shared >= 2].median() <= 3 and (shared >= 2).sum() > 30   # thin, but something to mine
    assert 0.05 < (~tail["system_correct"]).mean() < (~default["system_correct"]).mean()


def test_chatty_users_make_more_related_follow_ups_within_seconds(world_logs):
    default, chatty = world_logs("simulator"), world_logs("chatty")
    related = chatty["pairs"][chatty["pairs"]["kind"] == "related_different"]
    assert len(related) > 1.8 * (default["pairs"]["kind"] == "related_different").sum()
    ev = chatty["events"].set_index("event_id")
    assert (ev.loc[related["event_id_a"], "true_intent"].to_numpy()
            != ev.loc[related["event_id_b"], "true_intent"].to_numpy()).all()
    gap = ev.loc[related["event_id_b"], "ts"].to_numpy() - ev.loc[related["event_id_a"], "ts"].to_numpy()
    assert (gap <= np.timedelta64(15_500, "ms")).all()


def test_double_failure_makes_rephrases_fail_again_before_one_works(world_logs):
    def misread_again(world):
        pairs, correct = world["pairs"], world["truth"].set_index("event_id")["system_correct"]
        reph = pairs[pairs["is_rephrase"]]
        after_misread = ~correct.loc[reph["event_id_a"]].to_numpy()
        return float((~correct.loc[reph["event_id_b"]].to_numpy())[after_misread].mean())
    default, double = world_logs("simulator"), world_logs("double-failure")
    assert misread_again(double) > misread_again(default) + 0.1
    assert (_rephrase_chain_lengths(double["pairs"]) >= 3).sum() > (_rephrase_chain_lengths(default["pairs"]) >= 3).sum()


@pytest.mark.parametrize("name", list(WORLDS))
def test_truth_stays_true_in_every_world(world_logs, name):
    world = world_logs(name)
    ev = world["events"]
    # system_correct is what the NLU did, whatever the log says about it
    assert ev["system_correct"].equals(ev["nlu_intent"].eq(ev["true_intent"]))
    ok_status = ev["response_status"] == "success"
    if WORLDS[name].friction_coverage < 1:
        assert (ok_status & ~ev["system_correct"]).mean() > (~ev["system_correct"]).mean() / 2
    by_id = ev.set_index("event_id")
    reph = world["pairs"][world["pairs"]["is_rephrase"]]
    assert (by_id.loc[reph["event_id_a"], "request_id"].to_numpy()
            == by_id.loc[reph["event_id_b"], "request_id"].to_numpy()).all()
    record = json.loads((world["out"] / "truth" / "world.json").read_text())
    assert record["name"] == name and record["knobs"] == WORLDS[name].knobs()
    assert f"world={name} " in (world["out"] / "README.md").read_text()


def test_worlds_resolve_by_name_or_value_and_reject_nonsense():
    assert resolve(None) == ("simulator", World())
    assert resolve(World(friction_coverage=0.3)) == ("sparse-friction", WORLDS["sparse-friction"])
    assert resolve(World(friction_coverage=0.45))[0] == "custom"
    assert World(follow_up=[0.22, 0.41, 0.37]) == WORLDS["chatty"]
    with pytest.raises(ValueError, match="known worlds: simulator"):
        resolve("real")
    for bad in ({"friction_coverage": 1.5}, {"confidence": "none"}, {"follow_up": (0.5, 0.5, 0.5)},
                {"phrasing_decay": 0.0}, {"once_seen_share": -0.1}):
        with pytest.raises(ValueError):
            World(**bad)


def test_cli_world_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as listed:
        cli.main(["simulate", "--list-worlds"])
    assert listed.value.code == 0
    listing = capsys.readouterr().out
    assert all(f"{name}\n" in listing for name in WORLDS)
    assert cli.main(["simulate", "--out", str(tmp_path), "--turns", "300", "--world", "chatty"]) == 0
    assert json.loads((tmp_path / "truth" / "world.json").read_text())["name"] == "chatty"
    with pytest.raises(SystemExit):
        cli.main(["simulate", "--out", str(tmp_path), "--world", "nope"])

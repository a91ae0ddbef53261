"""The log simulator: contract conformance, reproducibility, and that its ground truth tells the truth."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from selflearn import contract
from selflearn.simulate import simulate

TURNS = 4000


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    summary = simulate(out, turns=TURNS, seed=11)
    logs = pd.concat([pq.read_table(f).to_pandas() for f in sorted((out / "logs").glob("day=*/part-0.parquet"))],
                     ignore_index=True)
    truth = pd.read_parquet(out / "truth" / "turns.parquet")
    pairs = pd.read_parquet(out / "truth" / "pairs.parquet")
    return {"out": out, "summary": summary, "logs": logs, "truth": truth, "pairs": pairs,
            "events": logs.merge(truth, on="event_id", validate="one_to_one")}


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_log_files_conform_to_the_contract_and_are_partitioned_by_utc_day(sim):
    files = sorted((sim["out"] / "logs").glob("day=*/part-0.parquet"))
    assert len(files) >= 7
    for f in files:
        schema = pq.read_schema(f).remove_metadata()
        assert schema.equals(contract.LOG_SCHEMA), f"{f}: {schema}"
        day = f.parent.name.removeprefix("day=")
        part = pq.read_table(f, columns=["user_id", "ts"]).to_pandas()
        assert (part["ts"].dt.strftime("%Y-%m-%d") == day).all()
        assert part.equals(part.sort_values(["user_id", "ts"], kind="stable").reset_index(drop=True))
    logs = sim["logs"]
    assert len(logs) == TURNS == sim["summary"]["turns"]
    assert logs["event_id"].is_unique
    assert set(logs["response_status"]) <= set(contract.RESPONSE_STATUSES)
    assert logs[contract.REQUIRED_LOG_COLUMNS].notna().all().all()


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate(a, turns=1500, seed=5)
    simulate(b, turns=1500, seed=5)
    simulate(c, turns=1500, seed=6)
    assert _digests(a) == _digests(b)
    assert _digests(a) != _digests(c)


def test_truth_covers_every_event_and_every_consecutive_pair_of_a_user(sim):
    logs, pairs = sim["logs"], sim["pairs"]
    assert set(sim["truth"]["event_id"]) == set(logs["event_id"])
    ordered = logs.sort_values(["user_id", "ts"], kind="stable")
    same_user = ordered["user_id"].to_numpy()[1:] == ordered["user_id"].to_numpy()[:-1]
    expected = set(zip(ordered["event_id"].to_numpy()[:-1][same_user], ordered["event_id"].to_numpy()[1:][same_user]))
    assert set(zip(pairs["event_id_a"], pairs["event_id_b"])) == expected
    assert len(pairs) == len(expected)
    assert pairs["is_rephrase"].equals(pairs["kind"].isin(["paraphrase", "repetition", "asr_noise"]))


def test_rephrases_keep_the_intent_and_related_follow_ups_change_it(sim):
    ev = sim["events"].set_index("event_id")
    pairs = sim["pairs"].assign(intent_a=lambda p: ev.loc[p["event_id_a"], "true_intent"].to_numpy(),
                                intent_b=lambda p: ev.loc[p["event_id_b"], "true_intent"].to_numpy(),
                                req_a=lambda p: ev.loc[p["event_id_a"], "request_id"].to_numpy(),
                                req_b=lambda p: ev.loc[p["event_id_b"], "request_id"].to_numpy(),
                                utt_a=lambda p: ev.loc[p["event_id_a"], "utterance"].to_numpy(),
                                utt_b=lambda p: ev.loc[p["event_id_b"], "utterance"].to_numpy(),
                                ok_a=lambda p: ev.loc[p["event_id_a"], "system_correct"].to_numpy())
    reph = pairs[pairs["is_rephrase"]]
    assert len(reph) > 100 and set(reph["kind"]) == {"paraphrase", "repetition", "asr_noise"}
    assert (reph["req_a"] == reph["req_b"]).all() and (reph["intent_a"] == reph["intent_b"]).all()
    assert (reph.loc[reph["kind"] == "repetition", "utt_a"] == reph.loc[reph["kind"] == "repetition", "utt_b"]).all()
    assert (reph.loc[reph["kind"] != "repetition", "utt_a"] != reph.loc[reph["kind"] != "repetition", "utt_b"]).all()
    assert (~reph["ok_a"]).mean() > 0.8          # users rephrase after failures (rest: backend errors)
    related = pairs[pairs["kind"] == "related_different"]
    quick = pairs[pairs["kind"] == "unrelated_quick"]
    assert len(related) > 50 and len(quick) > 50
    assert (related["intent_a"] != related["intent_b"]).all()
    assert (quick["intent_a"] != quick["intent_b"]).all()
    # both kinds of hard negatives come within seconds, like rephrases
    ts = sim["logs"].set_index("event_id")["ts"]
    gap = (ts.loc[pairs["event_id_b"]].to_numpy() - ts.loc[pairs["event_id_a"]].to_numpy()) / pd.Timedelta(seconds=1)
    for kind in ("related_different", "unrelated_quick", "paraphrase"):
        assert gap[(pairs["kind"] == kind).to_numpy()].max() <= 20.5


def test_system_fails_more_on_tail_requests_than_on_head(sim):
    ev = sim["events"]
    counts = ev.groupby(["locale", "request_id"]).size().rename("n").reset_index()
    counts = counts.sort_values(["locale", "n"], ascending=[True, False])
    counts["cum"] = counts.groupby("locale")["n"].cumsum() / counts.groupby("locale")["n"].transform("sum")
    ev = ev.merge(counts, on=["locale", "request_id"])
    head_err = 1 - ev.loc[ev["cum"] <= 0.5, "system_correct"].mean()
    tail_err = 1 - ev.loc[ev["cum"] > 0.8, "system_correct"].mean()
    assert head_err < 0.09 and tail_err > head_err + 0.05, (head_err, tail_err)
    conf = ev.groupby("system_correct")["nlu_confidence"].mean()
    assert conf[True] > conf[False] + 0.1


def test_non_latin_locales_and_sessions_and_shared_texts(sim):
    logs = sim["logs"]
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", "".join(logs.loc[logs["locale"] == "ja-JP", "utterance"]))
    assert re.search(r"[\u0900-\u097f]", "".join(logs.loc[logs["locale"] == "hi-IN", "utterance"]))
    assert logs["locale"].value_counts().idxmax() == "en-US" and logs["locale"].nunique() == 6
    per_user = logs.groupby("user_id")["session_id"].agg(lambda s: s.notna().mean())
    assert set(per_user.unique()) == {0.0, 1.0}          # a device either sends session ids or never does
    assert 0.3 < (per_user == 1.0).mean() < 0.7
    users_per_text = sim["events"].groupby(["locale", "utterance"]).agg(
        users=("user_id", "nunique"), correct=("system_correct", "mean"))
    assert (users_per_text["users"] >= 2).sum() > 100
    assert ((users_per_text["users"] >= 2) & (users_per_text["correct"] == 0)).sum() > 10   # shared failures


def test_session_ids_agree_with_an_inactivity_gap_split(sim):
    logs = sim["logs"].sort_values(["user_id", "ts"])
    with_ids = logs[logs["session_id"].notna()]
    gap = with_ids.groupby("user_id")["ts"].diff().dt.total_seconds()
    same = with_ids["session_id"].eq(with_ids.groupby("user_id")["session_id"].shift())
    assert gap[same].max() < 300 and gap[~same & gap.notna()].min() > 300


def test_pii_eval_sets_and_readme(sim):
    out, logs = sim["out"], sim["logs"]
    pii = logs["utterance"].str.contains(r"@|\+\d+ \d{3} \d{3}", regex=True).mean()
    assert 0.0005 < pii < 0.01
    seed = pd.read_parquet(out / "truth" / "nlu_seed.parquet")
    test = pd.read_parquet(out / "truth" / "nlu_test.parquet")
    for t in (seed, test):
        assert list(t.columns) == ["locale", "utt", "intent", "annot_utt"] and len(t) > 300
        assert not t.duplicated(["locale", "utt"]).any()
    # the test set holds phrasings the system was not trained on, and the system fails on some of them
    unseen = test.merge(seed[["locale", "utt"]], how="left", indicator=True)["_merge"].eq("left_only")
    assert 0.1 < unseen.mean() < 0.9
    assert "CC BY 4.0" in (out / "README.md").read_text(encoding="utf-8")


def test_parameters_are_honoured(tmp_path):
    summary = simulate(tmp_path, turns=500, locales=["ja-JP", "hi-IN"], users=40, days=2, start_date="2025-03-30")
    days = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert summary["turns"] == 500 and summary["users"] == 40
    assert set(summary["per_locale"]) == {"ja-JP", "hi-IN"}
    assert days and set(days) <= {"day=2025-03-30", "day=2025-03-31"}


def test_unknown_locale_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"xx-XX.*available: \['de-DE', 'en-US'"):
        simulate(tmp_path, turns=10, locales=["en-US", "xx-XX"])

"""Evaluation: hand-built logs, truth and run outputs in tmp_path whose right numbers are known."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn.contract import TRUTH_PAIRS_SCHEMA, TRUTH_TURNS_SCHEMA
from selflearn.evaluate import EvalInputError, evaluate, format_report
from selflearn.evaluation.metrics import parse_annot
from selflearn.evaluation.naive import naive_turn_labels
from selflearn.evaluation.truth import add_utt_norm, utterance_truth
from selflearn.text import normalize

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)

# (event_id, user, locale, seconds after T0, utterance, nlu_intent, true_intent, true_annot_utt)
TURNS = [
    # u1: a failing request fixed by a rephrase 5 s later; later a failing one never fixed; jazz fixed.
    ("e1", "u1", "en-US", 0, "Wake me up at seven", "play_music", "alarm_set", "wake me up at [time : seven]"),
    ("e1b", "u1", "en-US", 5, "set an alarm for seven", "alarm_set", "alarm_set", "set an alarm for [time : seven]"),
    ("e3", "u1", "en-US", 100, "what's the weather", "weather_query", "weather_query", "what's the weather"),
    ("e6", "u1", "en-US", 200, "lights off please", "iot_hue_lighton", "iot_hue_lightoff", "lights off please"),
    ("e9", "u1", "en-US", 260, "play some jazz", "play_radio", "play_music", "play some [music_genre : jazz]"),
    ("e9b", "u1", "en-US", 270, "play jazz music", "play_music", "play_music", "play [music_genre : jazz] music"),
    # u2: the same failing requests from a second user.
    ("e2", "u2", "en-US", 0, "wake me up at seven!", "play_music", "alarm_set", "wake me up at [time : seven]"),
    ("e2b", "u2", "en-US", 10, "set an alarm for seven", "alarm_set", "alarm_set", "set an alarm for [time : seven]"),
    ("e7", "u2", "en-US", 200, "Lights off please", "iot_hue_lighton", "iot_hue_lightoff", "lights off please"),
    ("e7n", "u2", "en-US", 240, "what's the weather", "weather_query", "weather_query", "what's the weather"),
    ("e10", "u2", "en-US", 300, "play some jazz", "play_radio", "play_music", "play some [music_genre : jazz]"),
    ("e10b", "u2", "en-US", 320, "play jazz music", "play_music", "play_music", "play [music_genre : jazz] music"),
    # u3: a failing request from one user only, rephrased 31 s later (the naive baseline misses it).
    ("e4", "u3", "en-US", 0, "what's the weather", "weather_query", "weather_query", "what's the weather"),
    ("e5", "u3", "en-US", 100, "turn it up", "play_music", "audio_volume_up", "turn it up"),
    ("e5b", "u3", "en-US", 131, "volume up", "audio_volume_up", "audio_volume_up", "volume up"),
    # u4: a correct turn followed 15 s later by an unrelated request (the naive baseline mislabels it).
    ("e11", "u4", "en-US", 0, "what's the weather", "weather_query", "weather_query", "what's the weather"),
    ("e11b", "u4", "en-US", 15, "tell me a joke", "general_joke", "general_joke", "tell me a joke"),
    # de-DE: one failing request, two users, both fixed.
    ("d1", "u5", "de-DE", 0, "mach das Licht aus", "iot_hue_lighton", "iot_hue_lightoff", "mach das licht aus"),
    ("d1b", "u5", "de-DE", 8, "Licht aus", "iot_hue_lightoff", "iot_hue_lightoff", "licht aus"),
    ("d2", "u6", "de-DE", 0, "mach das Licht aus", "iot_hue_lighton", "iot_hue_lightoff", "mach das licht aus"),
    ("d2b", "u6", "de-DE", 9, "Licht aus", "iot_hue_lightoff", "iot_hue_lightoff", "licht aus"),
]
# Consecutive same-user pairs by ts, as the simulator writes them.
TRUTH_PAIRS = [
    ("e1", "e1b", True), ("e1b", "e3", False), ("e3", "e6", False), ("e6", "e9", False), ("e9", "e9b", True),
    ("e2", "e2b", True), ("e2b", "e7", False), ("e7", "e7n", False), ("e7n", "e10", False), ("e10", "e10b", True),
    ("e4", "e5", False), ("e5", "e5b", True),
    ("e11", "e11b", False),
    ("d1", "d1b", True), ("d2", "d2b", True),
]
# The run's scored pairs: TP e1/e2/e5/d1/d2, FN e9 (scored False) and e10 (not scored), FP e1b->e3 and e11.
RUN_PAIRS = [
    ("en-US", "e1", "e1b", True), ("en-US", "e2", "e2b", True), ("en-US", "e9", "e9b", False),
    ("en-US", "e5", "e5b", True), ("en-US", "e1b", "e3", True), ("en-US", "e6", "e9", False),
    ("en-US", "e11", "e11b", True), ("de-DE", "d1", "d1b", True), ("de-DE", "d2", "d2b", True),
]
# Our weak labels: (locale, utt, intent, annot_utt).
WEAK = [
    ("en-US", "wake me up at seven", "alarm_set", "wake me up at [time : Seven ]"),      # right, recoverable
    ("en-US", "what's the weather", "weather_query", "what's the [place_name : weather]"),  # right, slot FP
    ("en-US", "lights off please", "iot_hue_lighton", "lights off please"),            # wrong, failing
    ("en-US", "never said by anyone", "alarm_set", "never said by anyone"),             # not in the logs
    ("de-DE", "mach das Licht aus", "iot_hue_lightoff", "mach das licht aus"),          # right, recoverable
]


def write_logs(root: Path, turns=TURNS) -> Path:
    """en-US in one day partition with tz-aware microseconds, de-DE in another with naive nanoseconds."""
    logs = root / "logs"
    for day, locale, ts_type in (("2026-11-01", "en-US", pa.timestamp("us", tz="UTC")),
                                 ("2026-11-02", "de-DE", pa.timestamp("ns"))):
        rows = [t for t in turns if t[2] == locale]
        if not rows:
            continue
        stamps = [T0 + timedelta(seconds=t[3]) for t in rows]
        if ts_type.tz is None:
            stamps = [s.replace(tzinfo=None) for s in stamps]
        table = pa.table({
            "event_id": [t[0] for t in rows], "user_id": [t[1] for t in rows], "session_id": [None] * len(rows),
            "locale": [t[2] for t in rows], "ts": pa.array(stamps, ts_type), "utterance": [t[4] for t in rows],
            "nlu_intent": [t[5] for t in rows], "nlu_confidence": [0.9] * len(rows),
        })
        (logs / f"day={day}").mkdir(parents=True)
        pq.write_table(table, logs / f"day={day}" / "part-0.parquet")
    return logs


def write_truth(root: Path, turns=TURNS, pairs=TRUTH_PAIRS) -> Path:
    truth = root / "truth"
    truth.mkdir()
    pq.write_table(pa.table({
        "event_id": [t[0] for t in turns], "true_intent": [t[6] for t in turns],
        "true_scenario": [t[6].split("_")[0] for t in turns], "true_annot_utt": [t[7] for t in turns],
        "true_slots": [[] for _ in turns], "request_id": [t[0] for t in turns],
        "system_correct": [t[5] == t[6] for t in turns],
    }, schema=TRUTH_TURNS_SCHEMA), truth / "turns.parquet")
    pq.write_table(pa.table({
        "event_id_a": [p[0] for p in pairs], "event_id_b": [p[1] for p in pairs],
        "is_rephrase": [p[2] for p in pairs], "kind": ["paraphrase" if p[2] else "unrelated" for p in pairs],
    }, schema=TRUTH_PAIRS_SCHEMA), truth / "pairs.parquet")
    return truth


def write_nlu(truth: Path, seed_rows, test_rows) -> None:
    for name, rows in (("nlu_seed", seed_rows), ("nlu_test", test_rows)):
        pq.write_table(pa.table({"locale": [r[0] for r in rows], "utt": [r[1] for r in rows],
                                 "intent": [r[2] for r in rows], "annot_utt": [r[1] for r in rows]}),
                       truth / f"{name}.parquet")


def write_run(root: Path, weak=WEAK, run_pairs=RUN_PAIRS, name: str = "run") -> Path:
    run = root / name
    (run / "training" / "parquet").mkdir(parents=True)
    (run / "work").mkdir()
    pq.write_table(pa.table({
        "locale": [w[0] for w in weak], "utt": [w[1] for w in weak], "utt_norm": [normalize(w[1]) for w in weak],
        "intent": [w[2] for w in weak], "annot_utt": [w[3] for w in weak],
        "confidence": [0.9] * len(weak), "source": ["multiturn"] * len(weak),
    }), run / "training" / "parquet" / "train.parquet")
    (run / "work" / "daily" / "scored_pairs").mkdir(parents=True, exist_ok=True)   # one file a day
    pq.write_table(pa.table({
        "locale": [p[0] for p in run_pairs], "event_id_a": [p[1] for p in run_pairs],
        "event_id_b": [p[2] for p in run_pairs], "rephrase_score": [0.9 if p[3] else 0.1 for p in run_pairs],
        "is_rephrase": [p[3] for p in run_pairs],
    }), run / "work" / "daily" / "scored_pairs" / "2026-01-01.parquet")
    (run / "manifest.json").write_text("{}")
    return run


@pytest.fixture
def world(tmp_path):
    return write_logs(tmp_path), write_truth(tmp_path), write_run(tmp_path)


# ---------------------------------------------------------------- rephrase detection
def test_rephrase_detection_precision_recall(world):
    logs, truth, run = world
    r = evaluate(str(logs), truth, run, closed_loop=False)["rephrase"]
    en, de, overall = r["by_locale"]["en-US"], r["by_locale"]["de-DE"], r["overall"]
    assert (en["tp"], en["fp"], en["fn"]) == (3, 2, 2)          # e10 pair missing from the run counts as FN
    assert en["precision"] == pytest.approx(3 / 5) and en["recall"] == pytest.approx(3 / 5)
    assert en["truth_rephrases_missing_from_run"] == 1
    assert (de["tp"], de["fp"], de["fn"]) == (2, 0, 0) and de["f1"] == 1.0
    assert (overall["tp"], overall["fp"], overall["fn"]) == (5, 2, 2)
    assert overall["precision"] == pytest.approx(5 / 7) and overall["f1"] == pytest.approx(5 / 7)


# ---------------------------------------------------------------- weak labels
def test_weak_label_figures(world):
    logs, truth, run = world
    w = evaluate(str(logs), truth, run, closed_loop=False)["weak_labels"]
    en = w["by_locale"]["en-US"]
    assert (en["labels"], en["judged"], en["unjudged"], en["correct"]) == (4, 3, 1, 2)
    assert en["intent_precision"] == pytest.approx(2 / 3)
    # failing: wake, lights, jazz, turn it up; labeled: wake (right), lights (wrong)
    assert (en["failing_utts"], en["failing_labeled"], en["failing_correct"]) == (4, 2, 1)
    assert en["failing_precision"] == pytest.approx(1 / 2) and en["failing_coverage"] == pytest.approx(2 / 4)
    # recoverable: wake and jazz (turn it up has one user, lights has no fix); only wake labeled right
    assert (en["recoverable"], en["recovered"], en["yield"]) == (2, 1, 0.5)
    o = w["overall"]
    assert (o["judged"], o["correct"], o["recoverable"], o["recovered"]) == (4, 3, 3, 2)
    assert o["intent_precision"] == pytest.approx(3 / 4) and o["yield"] == pytest.approx(2 / 3)


def test_min_users_changes_recoverable(world):
    logs, truth, run = world
    en = evaluate(str(logs), truth, run, min_users=1, closed_loop=False)["weak_labels"]["by_locale"]["en-US"]
    assert (en["recoverable"], en["recovered"]) == (3, 1)    # "turn it up" (one user) now counts


def test_slot_f1_of_weak_labels(world):
    logs, truth, run = world
    o = evaluate(str(logs), truth, run, closed_loop=False)["weak_labels"]["overall"]
    # wake: (time, seven) matches "[time : Seven ]" after normalization; weather: one invented slot
    assert (o["slot_tp"], o["slot_fp"], o["slot_fn"]) == (1, 1, 0)
    assert o["slot_f1"] == pytest.approx(2 / 3)


def test_parse_annot_massive_markup():
    assert parse_annot("wake me up at [time : Seven AM] on [date : friday]") == {("time", "seven am"),
                                                                                  ("date", "friday")}
    assert parse_annot("meet at [time : 10:30] [ place_name :  Café  ]") == {("time", "10 30"),
                                                                            ("place_name", "café")}
    assert parse_annot("no slots here") == frozenset()
    assert parse_annot(None) == frozenset()
    assert parse_annot("broken [time seven] and [date : ]") == {("date", "")}


def test_utterance_truth_failing_and_recoverable_definitions():
    events = add_utt_norm(pd.DataFrame({
        "event_id": ["x1", "x2", "y1", "y2", "h1", "h2", "m1", "m2", "m3"],
        "user_id": ["u1", "u2", "u1", "u2", "u1", "u2", "u1", "u2", "u3"],
        "locale": "en-US", "ts_us": 0,
        "utterance": ["X", "x", "Y", "y", "Half", "half", "Maj", "maj", "maj"], "nlu_intent": None}))
    turns = pd.DataFrame({
        "event_id": ["x1", "x2", "y1", "y2", "h1", "h2", "m1", "m2", "m3"],
        "true_intent": ["a", "a", "a", "a", "b", "b", "c", "c", "d"],
        "system_correct": [False, False, False, False, False, True, False, False, True],
        "true_annot_utt": None, "true_slots": None})
    pairs = pd.DataFrame({"event_id_a": ["x1", "x2", "h1", "m1"], "event_id_b": ["y1", "y2", "h2", "m3"],
                          "is_rephrase": [True, True, True, True]})
    got = utterance_truth(events, turns, pairs, min_users=2).set_index("utt_norm")
    # x: failing by two users, but its rephrases led to turns the system also got wrong: no signal
    assert got.loc["x", "failing"] and not got.loc["x", "has_fix"] and not got.loc["x", "recoverable"]
    # half: one wrong of two is not "mostly wrong"
    assert not got.loc["half", "failing"]
    # maj: 2 of 3 wrong, rephrased to a correct turn, 3 users; majority true intent c (2 vs 1)
    assert got.loc["maj", "recoverable"] and got.loc["maj", "true_intent"] == "c"


# ---------------------------------------------------------------- naive baseline
def _events(rows):
    """rows: (event_id, user, seconds, utterance, nlu_intent)"""
    return add_utt_norm(pd.DataFrame({
        "event_id": [r[0] for r in rows], "user_id": [r[1] for r in rows], "locale": "en-US",
        "ts_us": [int(r[2] * 1_000_000) for r in rows], "utterance": [r[3] for r in rows],
        "nlu_intent": [r[4] for r in rows]}))


def test_naive_labels_follow_the_definition():
    events = _events([
        ("a1", "ua", 0, "turn it up", "play_music"), ("a2", "ua", 30, "volume up", "audio_volume_up"),  # 30 s: yes
        ("b1", "ub", 0, "turn it up", "play_music"), ("b2", "ub", 31, "volume up", "audio_volume_up"),  # 31 s: no
        ("c1", "uc", 0, "play jazz", "play_music"), ("c2", "uc", 5, "play jazz please", "play_music"),  # same: no
        ("d1", "ud", 0, "blah", "play_music"), ("d2", "ud", 5, "hmm", None),                            # null: no
        ("e1", "ue", 0, "huh", None), ("e2", "ue", 5, "what time is it", "datetime_query"),             # from null
        ("f1", "uf", 100, "stop", "audio_mute"), ("g1", "ug", 105, "weather", "weather_query"),         # other user
    ])
    got = naive_turn_labels(events)
    assert dict(zip(got["event_id"], got["label"])) == {"a1": "audio_volume_up", "e1": "datetime_query"}


def test_naive_baseline_figures_in_result(world):
    logs, truth, run = world
    n = evaluate(str(logs), truth, run, closed_loop=False)["naive"]
    # e1, e2 -> alarm_set; e9, e10 -> play_music; e11 -> general_joke (wrong); e5 at 31 s unlabeled; d1, d2 right
    en = n["by_locale"]["en-US"]
    assert (en["labels"], en["correct"], en["intent_precision"]) == (3, 2, pytest.approx(2 / 3))
    assert (en["failing_labeled"], en["failing_correct"], en["recovered"], en["yield"]) == (2, 2, 2, 1.0)
    assert n["overall"]["labels"] == 4 and n["overall"]["yield"] == 1.0
    assert n["min_users_filter"] is False


# ---------------------------------------------------------------- closed loop
SEED = [
    ("en-US", "set an alarm for seven", "alarm_set"), ("en-US", "set alarm at six am", "alarm_set"),
    ("en-US", "alarm for eight please", "alarm_set"), ("en-US", "play some music", "play_music"),
    ("en-US", "play songs by queen", "play_music"), ("en-US", "play the beatles", "play_music"),
    ("en-US", "what's the weather", "weather_query"), ("en-US", "weather for tomorrow", "weather_query"),
    ("en-US", "is it going to rain", "weather_query"), ("en-US", "turn the lights off", "iot_hue_lightoff"),
    ("en-US", "switch off the lamp", "iot_hue_lightoff"), ("en-US", "lights on", "iot_hue_lighton"),
    ("de-DE", "licht aus", "iot_hue_lightoff"), ("de-DE", "schalte das licht ein", "iot_hue_lighton"),
    ("de-DE", "licht an", "iot_hue_lighton"), ("de-DE", "wie wird das wetter", "weather_query"),
]
TEST = [
    ("en-US", "wake me up at six", "alarm_set"), ("en-US", "wake me up at eight", "alarm_set"),
    ("en-US", "wake me up at nine", "alarm_set"), ("en-US", "play some music", "play_music"),
    ("en-US", "weather for today", "weather_query"), ("en-US", "play the beatles please", "play_music"),
    ("de-DE", "mach das licht aus bitte", "iot_hue_lightoff"), ("de-DE", "licht an bitte", "iot_hue_lighton"),
]
GOLD = [("en-US", "wake me up at seven", "alarm_set", ""), ("en-US", "play some jazz", "play_music", ""),
        ("de-DE", "mach das Licht aus", "iot_hue_lightoff", "")]
WRONG = [("en-US", "wake me up at seven", "weather_query", ""), ("en-US", "play some jazz", "alarm_set", ""),
         ("de-DE", "mach das Licht aus", "iot_hue_lighton", "")]


def test_closed_loop_gold_labels_capture_all_gain(tmp_path):
    logs, truth = write_logs(tmp_path), write_truth(tmp_path)
    write_nlu(truth, SEED, TEST)
    loop = evaluate(str(logs), truth, write_run(tmp_path, weak=GOLD))["closed_loop"]
    acc = loop["overall"]["accuracy"]
    assert loop["skipped"] is False and loop["added"]["perfect"] == 3 and loop["added"]["weak"] == 3
    assert acc["seed+perfect"] > acc["seed"]                   # the fixture leaves room to gain
    assert acc["seed+weak"] == acc["seed+perfect"]
    assert loop["overall"]["gain_captured"] == pytest.approx(1.0)
    assert loop["seconds"] < 30


def test_closed_loop_wrong_labels_do_not_help(tmp_path):
    logs, truth = write_logs(tmp_path), write_truth(tmp_path)
    write_nlu(truth, SEED, TEST)
    loop = evaluate(str(logs), truth, write_run(tmp_path, weak=WRONG))["closed_loop"]
    acc = loop["overall"]["accuracy"]
    assert acc["seed+perfect"] > acc["seed"]
    assert acc["seed+weak"] <= acc["seed"]
    assert loop["overall"]["gain_captured"] <= 0


def test_closed_loop_is_deterministic(tmp_path):
    logs, truth = write_logs(tmp_path), write_truth(tmp_path)
    write_nlu(truth, SEED, TEST)
    run = write_run(tmp_path)
    first, second = evaluate(str(logs), truth, run), evaluate(str(logs), truth, run)
    for r in (first, second):
        r["closed_loop"].pop("seconds")
    assert first == second


def test_missing_seed_skips_closed_loop_with_advice(world):
    logs, truth, run = world
    result = evaluate(str(logs), truth, run)                   # truth has no nlu_seed / nlu_test
    loop = result["closed_loop"]
    assert loop["skipped"] is True
    assert "has no nlu_seed.parquet" in loop["note"]
    assert "labeled seed and test set (locale, utt, intent)" in loop["note"]
    assert result["weak_labels"]["overall"]["correct"] == 3    # the rest was still evaluated
    assert "skipped: truth folder" in format_report(result)


def test_missing_test_set_is_named(tmp_path):
    logs, truth, run = write_logs(tmp_path), write_truth(tmp_path), write_run(tmp_path)
    write_nlu(truth, SEED, TEST)
    (truth / "nlu_test.parquet").unlink()
    loop = evaluate(str(logs), truth, run)["closed_loop"]
    assert loop["skipped"] is True and "no nlu_test.parquet" in loop["note"]


# ---------------------------------------------------------------- inputs and output
def test_missing_run_output_raises_one_line_advice(tmp_path):
    logs, truth = write_logs(tmp_path), write_truth(tmp_path)
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(EvalInputError, match="holds no Parquet file: --out must be a finished"):
        evaluate(str(logs), truth, tmp_path / "empty_run")
    run = write_run(tmp_path)
    (tmp_path / "no_logs").mkdir()
    with pytest.raises(EvalInputError, match="no Parquet files under"):
        evaluate(str(tmp_path / "no_logs"), truth, run)
    with pytest.raises(EvalInputError, match=r"lacks column\(s\) \['user_id', 'locale', 'ts', 'utterance'\]"):
        evaluate(str(truth / "turns.parquet"), truth, run)


def test_result_is_json_and_report_is_a_table(tmp_path):
    logs, truth, run = write_logs(tmp_path), write_truth(tmp_path), write_run(tmp_path)
    write_nlu(truth, SEED, TEST)
    result = evaluate(str(logs), truth, run)
    again = json.loads(json.dumps(result, allow_nan=False))
    assert again == result
    counts = result["inputs"]["counts"]
    assert (counts["log_events"], counts["truth_rephrase_pairs"], counts["weak_labels"]) == (len(TURNS), 7, 5)
    assert result["inputs"]["run_dir"] == str(run) and result["inputs"]["manifest"] == str(run / "manifest.json")
    report = format_report(result)
    for heading in ("1. Rephrase detection", "2. Weak labels", "3. Naive baseline", "4. Confidence",
                    "5. Closed loop"):
        assert heading in report
    assert "no min_users filter" in report
    all_rows = [line for line in report.splitlines() if line.strip().startswith("ALL")]
    assert len(all_rows) == 5      # sections 1-3, and the closed loop in macro accuracy and on traffic
    assert "macro accuracy (per intent, averaged): the headline" in report and "accuracy on traffic" in report


def test_macro_accuracy_counts_each_intent_once():
    """A head intent with most test rows must not decide the closed loop's headline on its own."""
    from selflearn.evaluation.closed_loop import _per_intent_mean

    correct = np.array([True, True, True, True, True, True, True, True, False, False])
    intents = np.array(["thank_you"] * 8 + ["book_hotel"] * 2)
    assert _per_intent_mean(correct, intents) == pytest.approx(0.5)   # (1.0 + 0.0) / 2, not 0.8
    assert _per_intent_mean(correct[:0], intents[:0]) is None


def test_closed_loop_reports_macro_and_traffic_gains(tmp_path):
    logs, truth = write_logs(tmp_path), write_truth(tmp_path)
    write_nlu(truth, SEED, TEST)
    overall = evaluate(str(logs), truth, write_run(tmp_path, weak=GOLD))["closed_loop"]["overall"]
    assert set(overall["macro_accuracy"]) == set(overall["accuracy"]) == {"seed", "seed+weak", "seed+naive",
                                                                         "seed+perfect"}
    assert overall["traffic_gain_captured"] == pytest.approx(1.0) and overall["gain_captured"] == pytest.approx(1.0)

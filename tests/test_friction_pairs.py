"""Sessions, friction and turn pairs on real DuckDB over inline multilingual turns."""
from selflearn.config import Config
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.stages import friction


def _run(turns, cfg=None):
    cfg = cfg or Config()
    engine = DuckDBEngine()
    tf = friction.turn_friction(engine, turns, cfg)
    pairs = friction.turn_pairs(engine, tf, cfg)
    return tf.to_pylist(), pairs.to_pylist()


def test_sessions_split_on_inactivity_gap_when_no_session_id(turns_factory):
    turns = turns_factory([
        {"user": "u1", "t": 0, "utt": "wecker auf sieben", "intent": "alarm_set"},
        {"user": "u1", "t": 10, "utt": "stell einen wecker für sieben uhr", "intent": "alarm_set"},
        {"user": "u1", "t": 10 + 3600, "utt": "wie ist das wetter", "intent": "weather_query"},
    ])
    tf, pairs = _run(turns)
    sessions = [r["session_key"] for r in sorted(tf, key=lambda r: r["ts_ms"])]
    assert sessions[0] == sessions[1] != sessions[2]
    assert len(pairs) == 1 and pairs[0]["gap_s"] == 10.0


def test_given_session_id_wins_over_gap(turns_factory):
    turns = turns_factory([
        {"user": "u1", "t": 0, "utt": "アラームを七時に", "session": "s1"},
        {"user": "u1", "t": 200, "utt": "七時にアラームをセット", "session": "s1"},
        {"user": "u1", "t": 210, "utt": "天気は", "session": "s2"},
    ])
    tf, pairs = _run(turns)
    assert len({r["session_key"] for r in tf}) == 2
    # within s1 the gap (200 s) is beyond max_pair_gap_s (120 s): no pair; s1 -> s2 is never paired
    assert pairs == []


def test_friction_signals_and_missing_optional_columns(turns_factory):
    turns = turns_factory([
        {"user": "u1", "t": 0, "utt": "play jazz", "barge": True, "status": "success", "conf": 0.9},
        {"user": "u1", "t": 100, "utt": "turn it up", "status": "success", "conf": 0.95},
        {"user": "u2", "t": 0, "utt": "मौसम कैसा है", "status": "unhandled"},
        {"user": "u3", "t": 0, "utt": "lights off"},  # no optional columns at all
    ])
    tf, _ = _run(turns)
    by_utt = {r["utt"]: r["friction"] for r in tf}
    assert by_utt["play jazz"] >= 0.8
    assert by_utt["मौसम कैसा है"] >= 0.8
    assert by_utt["turn it up"] == 0.0
    assert by_utt["lights off"] == 0.0


def test_quick_retry_adds_friction_and_pairs_carry_success(turns_factory):
    turns = turns_factory([
        {"user": "u1", "t": 0, "utt": "réveille moi à sept heures", "intent": "weather_query", "conf": 0.3},
        {"user": "u1", "t": 5, "utt": "mets un réveil à sept heures", "intent": "alarm_set", "conf": 0.9,
         "status": "success"},
    ])
    tf, pairs = _run(turns)
    first = min(tf, key=lambda r: r["ts_ms"])
    assert 0.5 <= first["friction"] < 0.8  # low confidence + quick next turn, no barge-in
    (pair,) = pairs
    assert pair["intent_a"] == "weather_query" and pair["intent_b"] == "alarm_set"
    assert pair["success_b"] == 1.0

"""Ordinary logs that give nothing to learn run to the end, through the real CLI, and say why they gave no
labels: a failure-free day in three locales (the issue "No crash on ordinary logs"), an empty file, every row
quarantined, punctuation only (no turn left after windowing), a single turn, failing turns nobody rephrased.
"""
from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn.cli import main
from selflearn.contract import LOG_SCHEMA
from selflearn.stages import graph

# The contract's types, every column nullable: a log may break the contract row by row (quarantine).
RAW_LOG_SCHEMA = pa.schema([f.with_nullable(True) for f in LOG_SCHEMA])
START = datetime(2026, 11, 2, 8, tzinfo=timezone.utc)


def turn(i: int, user: str, seconds: int, utterance: str, locale: str = "en-US", intent: str | None = "weather_query",
         status: str | None = "success", barge_in: bool = False) -> dict:
    return {"event_id": f"e{i}", "user_id": user, "session_id": None, "locale": locale,
            "ts": START + timedelta(seconds=seconds), "utterance": utterance, "nlu_intent": intent, "nlu_slots": [],
            "nlu_confidence": 0.95, "response_status": status, "barge_in": barge_in}


def failure_free_three_locales() -> list[dict]:
    """40 turns in en-US, de-DE and ja-JP, all read as one intent and all successful, minutes apart."""
    phrases = {"en-US": ["what's the weather", "weather today", "is it going to rain"],
               "de-DE": ["wie ist das wetter", "wetter heute", "regnet es heute"],
               "ja-JP": ["今日の天気は", "天気を教えて", "雨が降りますか"]}
    locales = list(phrases)
    return [turn(i, f"user-{i % 6}", i * 900, phrases[locales[i % 3]][i // 3 % 3], locale=locales[i % 3])
            for i in range(40)]


CASES = {
    "failure_free_three_locales": (
        failure_free_three_locales,
        "No labels this run: no utterance in the window failed (0 failing utterances among 9 distinct utterances "
        "in 40 turns"),
    "empty_file": (lambda: [], "No labels this run: the logs hold no rows (0 rows in)."),
    "every_row_quarantined": (
        lambda: [turn(0, None, 0, "hello"), turn(1, "u1", 5, "   "), turn(2, "u2", 9, "hola", locale="nope")],
        "No labels this run: no log row was kept (3 rows in: 3 quarantined, 0 duplicates)."),
    "punctuation_only": (
        lambda: [turn(i, f"u{i}", i * 60, "?!") for i in range(4)],
        "No labels this run: no turn with matchable text falls in the statistics window"),
    "single_turn": (
        lambda: [turn(0, "u0", 0, "hello")],
        "No labels this run: no utterance in the window failed (0 failing utterances among 1 distinct utterances"),
    "failing_never_rephrased": (
        lambda: [turn(i, f"u{i}", i * 600, "blah blah", intent=None, status="error", barge_in=True) for i in range(4)],
        "No labels this run: the labeler abstained on 1 failing utterance"),
}


def run(rows: list[dict], tmp_path: Path) -> tuple[Path, str]:
    logs = tmp_path / "logs" / "day=2026-11-02"
    logs.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW_LOG_SCHEMA), logs / "part-0.parquet")
    config = tmp_path / "run.toml"
    config.write_text('[embedding]\nbackend = "hashing"\n', encoding="utf-8")
    out, stdout = tmp_path / "out", io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", "--logs", str(tmp_path / "logs"), "--out", str(out), "--config", str(config),
                     "--no-progress"])
    assert code == 0, stdout.getvalue()[-2000:]
    return out, stdout.getvalue()


@pytest.mark.parametrize("case", CASES)
def test_a_run_without_labels_says_why_in_the_report_and_the_summary(case, tmp_path):
    make_rows, why = CASES[case]
    rows = make_rows()
    out, stdout = run(rows, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"]["weak_labels"] == 0
    assert manifest["rows"]["rows_in"] == len(rows)
    assert len(pd.read_parquet(out / "training" / "parquet")) == 0
    report = (out / "report.html").read_text(encoding="utf-8")
    sentence = report.split('id="no-labels">', 1)[1].split("</p>", 1)[0]
    assert sentence.startswith(why.replace("'", "&#x27;")), sentence
    assert why in stdout
    for reason, n in manifest["counts"]["abstained"].items():  # abstentions are named with their counts
        assert (f"{reason.replace('_', ' ')} {n}" in sentence) == bool(n)


def test_failure_free_log_writes_every_locale_and_a_graph_without_edges(tmp_path):
    out, _ = run(failure_free_three_locales(), tmp_path)
    assert sorted(p.stem for p in (out / "training" / "massive" / "train").glob("*.jsonl")) == ["de-DE", "en-US", "ja-JP"]
    nodes = pd.read_parquet(out / "graph" / "nodes.parquet")
    assert len(nodes) == 9 and len(pd.read_parquet(out / "graph" / "edges.parquet")) == 0
    # one interpretation ever succeeded: every utterance ends in success with it (the 1-column absorbing chain)
    assert np.allclose(nodes["p_success"], 1.0, atol=0.01)


# ------------------------------------------------------------------------------------------------ the graph stage

def node_intents(rows: list[tuple[str, str, str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["locale", "utt_norm", "intent", "n_events", "n_defective"])


NO_REPHRASES = pd.DataFrame({"locale": pd.Series(dtype=str), "utt_norm_a": pd.Series(dtype=str),
                             "utt_norm_b": pd.Series(dtype=str), "n_events": pd.Series(dtype="int64")})


def test_absorbing_chain_with_one_intent_gives_one_probability_per_node():
    intents = node_intents([("en-US", "a", "weather_query", 3, 0), ("de-DE", "b", "weather_query", 2, 0),
                            ("ja-JP", "c", "weather_query", 4, 1)])
    index = {("en-US", "a"): 0, ("de-DE", "b"): 1, ("ja-JP", "c"): 2}
    result = graph.absorb(["n0", "n1", "n2"], intents, index, NO_REPHRASES)
    assert result.success_by_intent.shape == (3, 1) and result.p_success.shape == (3,)
    assert result.distribution(2) == {"weather_query": pytest.approx(3 / 4.01)}


@pytest.mark.parametrize("intents", [node_intents([]), node_intents([("en-US", "a", "", 2, 2)])],
                         ids=["no nodes", "no interpretation ever"])
def test_absorbing_chain_without_nodes_or_intents_is_empty(intents):
    n = len(intents)
    result = graph.absorb([f"n{i}" for i in range(n)], intents, {("en-US", "a"): 0} if n else {}, NO_REPHRASES)
    assert result.success_by_intent.shape == (n, 0) and result.p_success.tolist() == [0.0] * n


def test_a_session_that_switches_locale_pairs_no_turns_across_locales(tmp_path):
    """Users who fail in English and go on in German within one session: no rewrite edge across locales
    (graph nodes are per locale; such a pair once pointed an edge at a node that did not exist)."""
    rows = []
    for u in range(3):
        rows += [turn(4 * u, f"u{u}", 100 * u, "wake me up at seven", intent="play_music", status="error",
                      barge_in=True),
                 turn(4 * u + 1, f"u{u}", 100 * u + 3, "stell einen wecker auf sieben", locale="de-DE",
                      intent="alarm_set"),
                 turn(4 * u + 2, f"u{u}", 100 * u + 9, "weck mich um sieben", locale="de-DE", intent="play_music",
                      status="error", barge_in=True),
                 turn(4 * u + 3, f"u{u}", 100 * u + 12, "stell einen wecker auf sieben", locale="de-DE",
                      intent="alarm_set")]
    for row in rows:
        row["session_id"] = "one-session"
    out, _ = run(rows, tmp_path)
    pairs = pd.read_parquet(out / "work" / "daily" / "scored_pairs")
    assert len(pairs) == 6 and set(pairs["locale"]) == {"de-DE"}
    nodes = pd.read_parquet(out / "graph" / "nodes.parquet")
    edges = pd.read_parquet(out / "graph" / "edges.parquet")
    locale_of = dict(zip(nodes["node_id"], nodes["locale"]))
    assert all(locale_of[s] == locale_of[d] for s, d in zip(edges["src"], edges["dst"]) if s in locale_of)

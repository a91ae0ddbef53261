"""Weak labels: give a failing utterance the interpretation its evidence points to, or abstain.

Evidence for a candidate utterance A (seen from enough users, and failing by its logged friction or by
its users' behaviour):
- multiturn: users who rephrased A into B. Each user counts with the strength of their own rephrase
  (the pair's rephrase probability), so one user's unmistakable rephrase weighs more than several
  doubtful ones; each user's weight is split over the intents that paths from B end in (absorbing chain),
  so A -> B -> C credits C's interpretation;
- cross_user / cross_lingual: the closest similar utterances that reliably succeed (same / other locales).
The failing utterance's own interpretation gets no vote: it is what the friction says is wrong.
Two readings of that evidence tell a real paraphrase from a related-but-different follow-up ("play X" ->
"louder"): whether the failing text's nearest reliable utterances share the mined intent (its meaning lies
there, a follow-up's does not), and how close the rephrase is next to what this log's confident rephrases
typically reach in that language (people paraphrase farther in some logs than in others).

Confidence is the probability that the label is right, from a logistic model over the strength of each
piece of evidence (`label_model.json`, fitted on simulator truth across evaluation worlds by
`benchmarks/calibrate.py`). The operating point is a precision target: labels are emitted from the most
confident down while their expected precision (the mean confidence of what is emitted) stays at or
above `labels.target_precision`, and never below the `labels.min_confidence` floor.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from selflearn.fitted import fitted_weights
from selflearn.io import atomic_write_parquet
from selflearn.progress import progress_iter
from selflearn.stages import transfer
from selflearn.stages.base import Context, Stage
from selflearn.stages.graph import Absorption, SynonymyGraph
from selflearn.stages.grouped import unstack_parts

MAX_VARIANT_VOTERS = 3  # per kind (cross_user, cross_lingual)

# Label-model features, each a kind of evidence that the winning interpretation is right.
LABEL_FEATURES = (
    "log_strong_votes",   # log(1 + soft votes for the winning intent of users above the rephrase threshold)
    "log_weak_votes",     # log(1 + soft votes for it of users below the threshold: doubtful rephrases)
    "agreement",          # winning share of the users' (soft) votes
    "best_evidence",      # the single strongest user's rephrase probability x the target's P(intent)
    "relative_similarity",  # cosine of the utterance and the rewrites voting for the winner (vote-weighted),
                          # above chance (a random pair in its language), as a share of what this log's
                          # confident rephrases typically reach in that language (capped at 1.5): people
                          # paraphrase farther in some logs and languages than in others
    "logged_friction",    # share of the utterance's turns whose friction the log shows
    "rephrased_away",     # expected share of its users who rephrased it (capped at 1)
    "same_as_system",     # the winning intent is what the system already says (nothing to fix)
    "own_intent_share",   # how stable the system's own reading of the utterance is
    "variant_agreement",  # closest successful neighbours' share for the winning intent (0 without neighbours)
    "neighbour_support",  # share (weighted by similarity above chance) of the utterance's k nearest reliably
                          # successful utterances in its language whose interpretation is the winning intent:
                          # a related-but-different follow-up lands outside the failing text's neighbourhood
)
# Hand-set fallback (log-odds) for an embedder without fitted weights: conservative, strong evidence only.
HAND_LABEL_WEIGHTS = {
    "bias": -4.0, "log_strong_votes": 2.0, "log_weak_votes": 0.5, "agreement": 3.0, "best_evidence": 3.0, "logged_friction": 1.0,
    "rephrased_away": 1.0, "relative_similarity": 0.0, "same_as_system": -2.0, "own_intent_share": 0.0, "variant_agreement": 0.5,
    "neighbour_support": 0.0,
}
RELATIVE_SIMILARITY_CAP = 1.5


@lru_cache(maxsize=None)
def label_weights_for(embedder_name: str) -> dict[str, float]:
    return fitted_weights("label_model.json", embedder_name, HAND_LABEL_WEIGHTS)


def label_probability(features: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    z = np.full(len(features), weights["bias"], dtype=np.float64)
    for name in LABEL_FEATURES:
        z += weights.get(name, 0.0) * features[name].to_numpy(dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-z))


def operating_cut(confidence: np.ndarray, target_precision: float, floor: float) -> float:
    """The lowest confidence cut (>= floor) whose emitted labels have expected precision >= target.

    With calibrated confidences, the expected precision of the labels at or above a cut is their mean
    confidence. Returns +inf when not even the single most confident label reaches the target.
    """
    ranked = np.sort(confidence[confidence >= floor])[::-1]
    if not len(ranked):
        return math.inf
    running = np.cumsum(ranked) / np.arange(1, len(ranked) + 1)
    reach = np.flatnonzero(running >= target_precision)
    return float(ranked[reach[-1]]) if len(reach) else math.inf


@dataclass
class Votes:
    """Soft votes per intent from one candidate's evidence, with the targets that carried them."""
    multiturn: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    strong: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    similarity: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # vote-weighted sum
    best: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    variant: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    targets: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))
    notes: list[str] = field(default_factory=list)
    soft_users: float = 0.0

    def sources(self, intent: str) -> str:
        kinds = {"multiturn"} if self.multiturn.get(intent, 0.0) > 0 else set()
        kinds |= {kind for kind, votes in self.variant.items() if votes.get(intent, 0.0) > 0}
        return "+".join(sorted(kinds))

    def best_target(self, intent: str, releasable) -> str | None:
        """The releasable utterance that carried the most weight for `intent` (ties: smallest id)."""
        ranked = sorted(self.targets[intent].items(), key=lambda kv: (-kv[1], kv[0]))
        return next((t for t, _ in ranked if releasable(t)), None)


def project_slots(utt: str, slots: list[dict]) -> tuple[str, list[dict]]:
    """Mark the target's slot values where they occur in `utt`, MASSIVE style: `[name : value]`.

    Longest values first, case-insensitive, each span used once; values not found are dropped.
    """
    spans: list[tuple[int, int, str]] = []
    kept: list[dict] = []
    lowered = utt.casefold()
    for slot in sorted(slots or [], key=lambda s: -len(s.get("value") or "")):
        value = (slot.get("value") or "").strip()
        if not value:
            continue
        for match in re.finditer(re.escape(value.casefold()), lowered):
            start, end = match.span()
            if len(lowered) != len(utt):  # casefold changed lengths (e.g. ß): fall back to exact match
                start = utt.find(value)
                if start < 0:
                    break
                end = start + len(value)
            if all(end <= s or start >= e for s, e, _ in spans):
                spans.append((start, end, slot["name"]))
                kept.append({"name": slot["name"], "value": utt[start:end]})
                break
    annot = utt
    for start, end, name in sorted(spans, reverse=True):
        annot = f"{annot[:start]}[{name} : {annot[start:end]}]{annot[end:]}"
    kept.sort(key=lambda s: utt.find(s["value"]))
    return annot, kept


def collect_votes(*, rephrase_out: list[tuple], variant_out: list[tuple], distribution,
                  node_names: dict[str, str], releasable=lambda node: True) -> Votes:
    """rephrase_out: (dst, n_users, soft_users, strong_users, max_score, llr, similarity), most users first;
    variant_out: (dst, kind, similarity), closest first."""
    votes = Votes()
    for dst, users, soft, strong, strongest, llr, similarity in rephrase_out:
        dist = distribution(dst)
        votes.soft_users += soft
        for intent, p in dist.items():
            # expected rephrasing users into dst, times the chance a path from dst ends in this intent
            votes.multiturn[intent] += soft * p
            votes.strong[intent] += strong * p
            votes.similarity[intent] += soft * p * similarity
            votes.targets[intent][dst] += soft * p
            votes.best[intent] = max(votes.best[intent], strongest * p)
        if not releasable(dst):  # the evidence string is released: never quote a text of too few users
            continue
        votes.notes.append(f"{users} user(s) rephrased to '{node_names[dst]}' (strongest rephrase "
                           f"{strongest:.2f}, LLR {llr:.1f}, P(success) {sum(dist.values()):.2f})")
    # only the closest few neighbours vote: a crowd of loose neighbours must not outvote users' own rephrases
    voters = {"cross_user": 0, "cross_lingual": 0}
    for dst, kind, _ in variant_out:
        if voters[kind] >= MAX_VARIANT_VOTERS:
            continue
        voters[kind] += 1
        dist = distribution(dst)
        total = sum(dist.values()) or 1.0
        for intent, p in dist.items():
            votes.variant[kind][intent] += p / total
            votes.targets[intent][dst] += 1e-6 * p / total  # a fallback target, never ahead of a rephrase
    for kind, what in (("cross_user", "from other users"), ("cross_lingual", "in other languages")):
        if voters[kind]:
            votes.notes.append(f"{voters[kind]} similar successful utterance(s) {what}")
    return votes


def distribution_lookup(graph):
    """node id -> its absorption distribution {intent: probability}, each node's row read once however many
    candidates and hops ask for it."""
    memo: dict[str, dict[str, float]] = {}

    def distribution(node: str) -> dict[str, float]:
        if node not in memo:
            memo[node] = graph.absorption.distribution(graph.row_of[node])
        return memo[node]

    return distribution


def _evidence_by_source(edges: pd.DataFrame) -> dict[str, tuple[list, list]]:
    """Edges grouped once per utterance, in the order votes and notes want them."""
    grouped: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    columns = ["src", "dst", "kind", "n_users", "soft_users", "strong_users", "max_score", "llr", "similarity"]
    for src, dst, kind, users, soft, strong, strongest, llr, sim in edges[columns].itertuples(index=False):
        if kind == "multiturn":
            grouped[src][0].append((dst, int(users), float(soft), float(strong), float(strongest), float(llr),
                                    float(sim)))
        else:
            grouped[src][1].append((dst, kind, float(sim)))
    for rephrases, similar in grouped.values():
        rephrases.sort(key=lambda r: (-r[1], r[0]))
        similar.sort(key=lambda r: (-r[2], r[0]))
    return grouped


def _winner(scores: dict[str, float]) -> str | None:
    ranked = sorted(((v, k) for k, v in scores.items() if v > 0), key=lambda vk: (-vk[0], vk[1]))
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    return ranked[0][1]


def above_chance(similarity: float, chance: float) -> float:
    return (similarity - chance) / (1.0 - chance) if chance < 1.0 else 0.0


def relative_similarity(similarity: float, chance: float, typical: float | None) -> float:
    """Similarity above chance as a share of the typical confident rephrase's (itself above chance)."""
    reach = above_chance(typical, chance) if typical is not None else 0.0
    if reach <= 0.0:  # no confident rephrase in the language yet: fall back to the plain share above chance
        return above_chance(similarity, chance)
    return min(RELATIVE_SIMILARITY_CAP, above_chance(similarity, chance) / reach)


def typical_rephrase_similarity(edges: pd.DataFrame, locale_of: dict[str, str]) -> dict[str, float]:
    """Per locale, the median cosine of its confident rephrase edges (some user's rephrase above threshold)."""
    confident = edges[(edges["kind"] == "multiturn") & (edges["strong_users"] > 0)]
    if not len(confident):
        return {}
    by_locale = confident["similarity"].groupby(confident["src"].map(locale_of))
    return {str(locale): float(value) for locale, value in by_locale.median().items()}


def neighbourhood_intents(neighbours: pd.DataFrame | None, nodes: pd.DataFrame,
                          chance: dict[str, float]) -> dict[str, dict[str, float]]:
    """Per failing utterance: each intent's share of its nearest reliable neighbours, weighted by how far
    above chance each neighbour's cosine is (`variants.nearest_reliable`)."""
    if neighbours is None or not len(neighbours):
        return {}
    intent_of = dict(zip(nodes["node_id"], nodes["top_intent"]))
    locale_of = dict(zip(nodes["node_id"], nodes["locale"]))
    floor = neighbours["src"].map(locale_of).map(chance).fillna(0.0).to_numpy(dtype=np.float64)
    weight = np.clip((neighbours["similarity"].to_numpy(dtype=np.float64) - floor) / np.maximum(1.0 - floor, 1e-9),
                     0.0, None)
    frame = pd.DataFrame({"src": neighbours["src"].to_numpy(), "intent": neighbours["dst"].map(intent_of).to_numpy(),
                          "weight": weight}).dropna(subset=["intent"])
    totals = frame.groupby("src")["weight"].sum()
    shares: dict[str, dict[str, float]] = defaultdict(dict)
    for (src, intent), weight in frame.groupby(["src", "intent"])["weight"].sum().items():
        if totals[src] > 0:
            shares[src][intent] = float(weight / totals[src])
    return shares


def score_candidates(graph, candidates: pd.Series, *, allow_variant_only: bool = False, min_users: int = 1,
                     chance_similarity: dict[str, float] | None = None,
                     neighbours: pd.DataFrame | None = None, progress: bool = False,
                     typical: dict[str, float] | None = None,
                     evidence: dict[str, tuple[list, list]] | None = None) -> tuple[pd.DataFrame, dict]:
    """One row per candidate utterance with evidence: its winning intent, label-model features, best target.

    Returns (scored, abstained) where abstained counts candidates with no usable evidence or a tie.
    chance_similarity: per locale, the cosine of a random pair of its utterances (default 0).
    neighbours: each failing utterance's nearest reliable utterances (`variants.nearest_reliable`); without
    them `neighbour_support` is 0.
    typical: per locale, the median cosine of confident rephrases (default: from `graph.edges`; a grouped
    run passes the whole graph's, since one group's edges are not the locale's).
    evidence: `_evidence_by_source(graph.edges)` when the caller has it already.
    Unless `allow_variant_only`, the winning intent comes from users' rephrases: similarity alone cannot
    tell "i like this song" from "i don't like this song", a user's own rephrase after a failure can.
    """
    nodes = graph.nodes
    names = dict(zip(nodes["node_id"], nodes["utt"]))
    n_users = dict(zip(nodes["node_id"], nodes["n_users"]))
    evidence = _evidence_by_source(graph.edges) if evidence is None else evidence
    distribution = distribution_lookup(graph)
    abstained = {"no_evidence": 0, "tie": 0}
    chance = chance_similarity or {}
    if typical is None:
        typical = typical_rephrase_similarity(graph.edges, dict(zip(nodes["node_id"], nodes["locale"])))
    neighbourhood = neighbourhood_intents(neighbours, nodes, chance)
    rows = []
    scoring = nodes[candidates.to_numpy()]
    for row in progress_iter(scoring.itertuples(index=False), len(scoring), "labels", "utterance", progress):
        rephrase_out, variant_out = evidence.get(row.node_id, ([], []))
        votes = collect_votes(rephrase_out=rephrase_out, variant_out=variant_out, distribution=distribution,
                              node_names=names, releasable=lambda node: n_users[node] >= min_users)
        variant_total = defaultdict(float)
        for per_kind in votes.variant.values():
            for intent, v in per_kind.items():
                variant_total[intent] += v
        if not votes.multiturn and not (allow_variant_only and variant_total):
            abstained["no_evidence"] += 1
            continue
        intent = _winner(votes.multiturn) if votes.multiturn else _winner(variant_total)
        if intent is None:
            abstained["tie"] += 1
            continue
        mt_total = sum(votes.multiturn.values())
        n_variant = sum(variant_total.values())
        rows.append({
            "node_id": row.node_id, "locale": row.locale, "utt": row.utt, "utt_norm": row.utt_norm,
            "intent": intent, "n_users": int(row.n_users), "n_events": int(row.n_events),
            "system_intent": row.top_intent,
            "log_strong_votes": math.log1p(votes.strong.get(intent, 0.0)),
            "log_weak_votes": math.log1p(votes.multiturn.get(intent, 0.0) - votes.strong.get(intent, 0.0)),
            "agreement": votes.multiturn.get(intent, 0.0) / mt_total if mt_total > 0 else 0.0,
            "best_evidence": votes.best.get(intent, 0.0),
            "relative_similarity": relative_similarity(
                votes.similarity.get(intent, 0.0) / votes.multiturn[intent], chance.get(row.locale, 0.0),
                typical.get(row.locale)) if votes.multiturn.get(intent, 0.0) > 0 else 0.0,
            "logged_friction": row.n_logged_friction / row.n_events if row.n_events else 0.0,
            "rephrased_away": min(1.0, votes.soft_users / max(row.n_users, 1)),
            "same_as_system": float(intent == row.top_intent),
            "own_intent_share": float(row.top_intent_share),
            "variant_agreement": variant_total.get(intent, 0.0) / n_variant if n_variant > 0 else 0.0,
            "neighbour_support": neighbourhood.get(row.node_id, {}).get(intent, 0.0),
            # at least one user's rephrase above the threshold: doubtful rephrases of several users can
            # share one systematic cause (everyone follows "play X" with "louder"), so alone they never label
            "confident_rephrase": votes.strong.get(intent, 0.0) > 0,
            "sources": votes.sources(intent),
            "votes": votes,
        })
    columns = ["node_id", "locale", "utt", "utt_norm", "intent", "n_users", "n_events", "system_intent",
               *LABEL_FEATURES, "confident_rephrase", "sources", "votes"]
    return pd.DataFrame(rows, columns=columns), abstained


DECISION_COLUMNS = ["node_id", "locale", "utt", "utt_norm", "intent", "confidence", "source", "n_users", "n_events",
                    "target", "target_utt", "system_intent", "evidence"]
CANDIDATE_COLUMNS = ["locale", "utt_norm", "intent", "confidence", "emitted", "confident_rephrase", *LABEL_FEATURES]


def decide(graph, candidates: pd.Series, *, weights: dict[str, float], target_precision: float,
           min_confidence: float, min_users: int, allow_variant_only: bool = False,
           chance_similarity: dict[str, float] | None = None,
           neighbours: pd.DataFrame | None = None,
           progress: bool = False) -> tuple[pd.DataFrame, dict[str, int], dict, pd.DataFrame]:
    """Label the candidates whose calibrated confidence clears the precision-target cut, abstain otherwise.

    Returns (decisions, abstained counts by reason, operating point {cut, target_precision, expected_precision},
    every scored candidate with its confidence and whether it was emitted: CANDIDATE_COLUMNS, internal —
    `eval` draws the precision-yield curve from it).
    """
    evidence = _evidence_by_source(graph.edges)
    scored, abstained = score_candidates(graph, candidates, allow_variant_only=allow_variant_only,
                                         min_users=min_users, chance_similarity=chance_similarity,
                                         neighbours=neighbours, progress=progress, evidence=evidence)
    confidence = label_probability(scored, weights) if len(scored) else np.zeros(0)
    choose_target = target_chooser(graph, min_users, evidence=evidence)
    return emit(graph.nodes, scored, confidence, abstained, target_of=lambda row: choose_target(row.intent, row.votes),
                evidence_of=lambda row: evidence_text(row.votes), target_precision=target_precision,
                min_confidence=min_confidence, allow_variant_only=allow_variant_only)


def target_chooser(graph, min_users: int, evidence: dict[str, tuple[list, list]] | None = None):
    """(intent, votes) -> the releasable utterance a label points to, or None: the target that carried the
    most weight, followed through double failures to the utterance that itself succeeds with the intent."""
    nodes = graph.nodes
    users = dict(zip(nodes["node_id"], nodes["n_users"]))
    succeeds_as = {node: intent for node, intent, ok in zip(nodes["node_id"], nodes["top_intent"], nodes["n_success"])
                   if ok > 0 and intent is not None}
    evidence = _evidence_by_source(graph.edges) if evidence is None else evidence
    next_hops = {src: rephrases for src, (rephrases, _) in evidence.items()}
    distribution = distribution_lookup(graph)

    def final_target(node: str, intent: str) -> str:
        """Follow a double failure A -> B -> C to the utterance that itself succeeds with `intent`."""
        seen = {node}
        while succeeds_as.get(node) != intent:
            hops = [(dst, soft) for dst, _, soft, *_ in next_hops.get(node, []) if dst not in seen]
            scored = [(soft * distribution(dst).get(intent, 0.0), dst)
                      for dst, soft in hops]
            scored = [(w, dst) for w, dst in scored if w > 0]
            if not scored:
                break
            node = min(scored, key=lambda wd: (-wd[0], wd[1]))[1]
            seen.add(node)
        return node

    def choose(intent: str, votes: Votes) -> str | None:
        target = votes.best_target(intent, lambda node: users.get(final_target(node, intent), 0) >= min_users)
        return final_target(target, intent) if target is not None else None

    return choose


def evidence_text(votes: Votes) -> str:
    return "; ".join(votes.notes[:4]) + f"; votes {_format_votes(votes.multiturn)}"


def emit(nodes: pd.DataFrame, scored: pd.DataFrame, confidence: np.ndarray, abstained: dict[str, int], *,
         target_of, evidence_of, target_precision: float, min_confidence: float,
         allow_variant_only: bool) -> tuple[pd.DataFrame, dict[str, int], dict, pd.DataFrame]:
    """The operating cut over every scored candidate, then one decision per emitted candidate with a
    releasable target (`target_of(row)`, None when there is none). Returns what `decide` returns."""
    names = dict(zip(nodes["node_id"], nodes["utt"]))
    abstained = {**abstained, "no_confident_rephrase": 0, "low_confidence": 0, "target_not_releasable": 0}
    eligible = (scored["confident_rephrase"].to_numpy(dtype=bool) if not allow_variant_only
                else np.ones(len(scored), dtype=bool))
    abstained["no_confident_rephrase"] = int((~eligible).sum())
    cut = operating_cut(confidence[eligible], target_precision, min_confidence)
    emitted = eligible & (confidence >= cut)
    abstained["low_confidence"] = int((eligible & ~emitted).sum())
    rows = []
    for row, conf in zip(scored[emitted].itertuples(index=False), confidence[emitted]):
        target = target_of(row)
        if target is None:
            abstained["target_not_releasable"] += 1
            continue
        rows.append({
            "node_id": row.node_id, "locale": row.locale, "utt": row.utt, "utt_norm": row.utt_norm,
            "intent": row.intent, "confidence": round(float(conf), 12), "source": row.sources,
            "n_users": row.n_users, "n_events": row.n_events, "target": target,
            "target_utt": names[target], "system_intent": row.system_intent, "evidence": evidence_of(row),
        })
    point = {"target_precision": target_precision, "min_confidence": min_confidence,
             "cut": None if math.isinf(cut) else round(cut, 6), "candidates": int(len(scored)),
             "expected_precision": round(float(confidence[emitted].mean()), 6) if emitted.any() else None}
    scored = scored.assign(confidence=confidence, emitted=emitted)
    return pd.DataFrame(rows, columns=DECISION_COLUMNS), abstained, point, scored[CANDIDATE_COLUMNS]


# ---------------------------------------------------------------------- the same decisions, per solve group
# What one solve group's decisions need (graph.solve_group: every edge its evidence crosses stays inside it):
# its nodes, the edges out of them, their absorption probabilities and their reliable neighbours.
LABEL_ROWS_SCHEMA = pa.schema([
    ("solve_group", pa.string()), ("part", pa.string()),
    ("node_row", pa.int64()), ("node_id", pa.string()), ("locale", pa.string()), ("utt", pa.string()),
    ("utt_norm", pa.string()), ("n_users", pa.int64()), ("n_events", pa.int64()), ("n_success", pa.int64()),
    ("top_intent", pa.string()), ("top_intent_share", pa.float64()), ("n_logged_friction", pa.int64()),
    ("is_candidate", pa.bool_()),
    ("src", pa.string()), ("dst", pa.string()), ("kind", pa.string()), ("soft_users", pa.float64()),
    ("strong_users", pa.float64()), ("max_score", pa.float64()), ("llr", pa.float64()), ("similarity", pa.float64()),
    ("intent", pa.string()), ("probability", pa.float64()),
])
LABEL_PARTS = {
    "node": ["node_row", "node_id", "locale", "utt", "utt_norm", "n_users", "n_events", "n_success", "top_intent",
             "top_intent_share", "n_logged_friction", "is_candidate"],
    "edge": ["src", "dst", "kind", "n_users", "soft_users", "strong_users", "max_score", "llr", "similarity"],
    "dist": ["node_id", "intent", "probability"],
    "neighbour": ["src", "dst", "similarity"],
}
# One row per scored candidate (outcome "scored", with its confidence, target and evidence text) and one per
# abstention reason with its count (outcome "no_evidence" / "tie").
DECIDED_SCHEMA = pa.schema([
    ("outcome", pa.string()), ("count", pa.int64()), ("node_row", pa.int64()),
    ("node_id", pa.string()), ("locale", pa.string()), ("utt", pa.string()), ("utt_norm", pa.string()),
    ("intent", pa.string()), ("n_users", pa.int64()), ("n_events", pa.int64()), ("system_intent", pa.string()),
    *[(name, pa.float64()) for name in LABEL_FEATURES],
    ("confident_rephrase", pa.bool_()), ("sources", pa.string()), ("confidence", pa.float64()),
    ("target", pa.string()), ("evidence", pa.string()),
])


def decide_group(rows: pa.Table, *, weights: dict[str, float], min_users: int, allow_variant_only: bool,
                 chance: dict[str, float], typical: dict[str, float]) -> pa.Table:
    """Score one solve group's candidates and choose each eligible one's target (LABEL_ROWS_SCHEMA in,
    DECIDED_SCHEMA out). The operating cut needs every group's confidences, so it is not made here."""
    parts = unstack_parts(rows, LABEL_PARTS)
    # the engine's joins and shuffle hand rows over in any order: sort each part by its key (edges as
    # graph.edges are), so float sums over them add in one order on every run
    nodes = parts["node"].sort_values("node_row").reset_index(drop=True)
    parts["edge"] = parts["edge"].sort_values(["src", "kind", "dst"]).reset_index(drop=True)
    parts["neighbour"] = parts["neighbour"].sort_values(["src", "dst"]).reset_index(drop=True)
    parts["dist"] = parts["dist"].sort_values(["node_id", "intent"]).reset_index(drop=True)
    node_ids = nodes["node_id"].tolist()
    row_of = {node: row for row, node in enumerate(node_ids)}
    dist = parts["dist"]
    intents = sorted(dist["intent"].unique().tolist())
    col_of = {intent: col for col, intent in enumerate(intents)}
    matrix = sp.csr_matrix((dist["probability"].to_numpy(dtype=np.float64),
                            ([row_of[n] for n in dist["node_id"]], [col_of[i] for i in dist["intent"]])),
                           shape=(len(node_ids), len(intents)))
    matrix.sort_indices()
    absorption = Absorption(node_ids, intents, matrix, np.asarray(matrix.sum(axis=1)).ravel())
    graph = SynonymyGraph(nodes, parts["edge"], absorption, row_of, chains=[])
    scored, abstained = score_candidates(graph, nodes["is_candidate"].fillna(False).astype(bool), min_users=min_users,
                                         allow_variant_only=allow_variant_only, chance_similarity=chance,
                                         neighbours=parts["neighbour"], typical=typical)
    choose_target = target_chooser(graph, min_users)
    eligible = scored["confident_rephrase"].to_numpy(dtype=bool) | allow_variant_only
    decided = scored.drop(columns=["votes"]).assign(
        outcome="scored", count=1, node_row=scored["node_id"].map(row_of).map(nodes["node_row"]),
        confidence=label_probability(scored, weights) if len(scored) else np.zeros(0),
        target=[choose_target(row.intent, row.votes) if ok else None
                for row, ok in zip(scored.itertuples(index=False), eligible)],
        evidence=[evidence_text(votes) for votes in scored["votes"]])
    tallies = pd.DataFrame({"outcome": list(abstained), "count": list(abstained.values())})
    out = pd.concat([decided, tallies], ignore_index=True).reindex(columns=DECIDED_SCHEMA.names)
    return pa.Table.from_pandas(out, schema=DECIDED_SCHEMA, preserve_index=False)


def decide_on_engine(engine, graph, candidates: pd.Series, *, weights: dict[str, float], target_precision: float,
                     min_confidence: float, min_users: int, allow_variant_only: bool = False,
                     chance_similarity: dict[str, float] | None = None,
                     neighbours: pd.DataFrame | None = None) -> tuple[pd.DataFrame, dict[str, int], dict, Any]:
    """`decide` with every step on the engine: each solve group's scoring and targets in `engine.map_groups` (only
    groups that hold a candidate travel), the operating cut and the decisions in SQL over the scored candidates
    (sql/label_candidates.sql). The driver receives one row of counts and the emitted labels, not the scored
    candidates. Returns (decisions, abstained, operating point, label_candidates): the last is the engine's
    relation of every scored candidate (sql/label_candidates.sql; `candidate_rows` gives `decide`'s fourth value).

    The per-group payload is joined on the engine (sql/label_rows.sql) from column tables of the nodes, edges and
    neighbours and the solve's absorption rows (already there on the engine path), not stacked here."""
    nodes = graph.nodes
    inputs = label_inputs(engine, graph, candidates, neighbours)
    rows = engine.sql("label_rows", inputs)
    typical = typical_rephrase_similarity(graph.edges, dict(zip(nodes["node_id"], nodes["locale"])))
    decide_one = partial(decide_group, weights=weights, min_users=min_users, allow_variant_only=allow_variant_only,
                         chance=chance_similarity or {}, typical=typical)
    decided = engine.map_groups(rows, ["solve_group"], decide_one, DECIDED_SCHEMA)
    scored = engine.sql("label_candidates", {"label_decided": decided},
                        {"target_precision": float(target_precision), "min_confidence": float(min_confidence),
                         "allow_variant_only": int(bool(allow_variant_only))})
    point_row = engine.to_arrow(engine.sql("label_operating_point", {"label_candidates": scored,
                                                                     "label_decided": decided})).to_pylist()[0]
    abstained = {reason: int(point_row[reason]) for reason in ("no_evidence", "tie", "no_confident_rephrase",
                                                                "low_confidence", "target_not_releasable")}
    cut, mean = point_row["cut"], point_row["expected_precision"]
    point = {"target_precision": target_precision, "min_confidence": min_confidence,
             "cut": None if cut is None else round(float(cut), 6), "candidates": int(point_row["candidates"]),
             "expected_precision": None if mean is None else round(float(mean), 6)}
    decisions = engine.to_arrow(engine.sql("label_decisions", {"label_candidates": scored,
                                                               "label_nodes": inputs["label_nodes"]})).to_pandas()
    # Python's round, as `emit` rounds each confidence (numpy's rounds differently in the last bit)
    decisions["confidence"] = [round(float(value), 12) for value in decisions["confidence"]]
    return decisions.reindex(columns=DECISION_COLUMNS), abstained, point, scored


def candidate_rows(engine, label_candidates) -> Any:
    """work/label_candidates.parquet's rows (CANDIDATE_COLUMNS, node order) as an engine relation."""
    return engine.sql("candidate_rows", {"label_candidates": label_candidates})


def scored_in_locales(engine, label_candidates, locales: set[str]) -> pd.DataFrame:
    """The scored candidates of `locales` (node_id, locale, utt_norm, intent, confidence), collected."""
    wanted = engine.from_arrow(pa.table({"locale": pa.array(sorted(locales), pa.string())}))
    return engine.to_arrow(engine.sql("scored_in_locales", {"label_candidates": label_candidates,
                                                            "locales": wanted})).to_pandas()


def _part_schema(part: str) -> pa.Schema:
    return pa.schema([LABEL_ROWS_SCHEMA.field(name) for name in LABEL_PARTS[part]])


def label_inputs(engine, graph, candidates: pd.Series, neighbours: pd.DataFrame | None) -> dict:
    """sql/label_rows.sql's inputs as engine datasets: Arrow columns of the frames the driver holds already
    (no row-wise copy), the absorption rows as the solve left them on the engine when it did."""
    nodes = graph.nodes
    node_columns = {"node_row": np.arange(len(nodes), dtype=np.int64),
                    **{name: nodes[name] for name in LABEL_PARTS["node"][1:-1]},
                    "is_candidate": candidates.to_numpy(dtype=bool)}
    label_nodes = pa.table({name: pa.array(values, type=_part_schema("node").field(name).type, from_pandas=True)
                            for name, values in node_columns.items()})
    label_edges = pa.Table.from_pandas(graph.edges[LABEL_PARTS["edge"]], schema=_part_schema("edge"),
                                       preserve_index=False)
    neighbours = neighbours if neighbours is not None else pd.DataFrame(columns=LABEL_PARTS["neighbour"])
    label_neighbours = pa.Table.from_pandas(neighbours[LABEL_PARTS["neighbour"]].astype({"src": str, "dst": str}),
                                            schema=_part_schema("neighbour"), preserve_index=False)
    if graph.absorption_rows is not None:
        label_dist = graph.absorption_rows
    else:  # a graph solved in one piece: its matrix's nonzero entries
        coo = graph.absorption.success_by_intent.tocoo()
        label_dist = engine.from_arrow(pa.table({
            "node_id": pa.array(np.asarray(graph.absorption.node_ids, dtype=object)[coo.row], pa.string()),
            "intent": pa.array(np.asarray(graph.absorption.intents, dtype=object)[coo.col], pa.string()),
            "probability": pa.array(coo.data, pa.float64())}))
    solve_groups = pa.table({"node_id": pa.array(list(graph.solve_group), pa.string()),
                             "solve_group": pa.array(list(graph.solve_group.values()), pa.string())})
    return {"label_nodes": engine.from_arrow(label_nodes), "label_edges": engine.from_arrow(label_edges),
            "label_dist": label_dist, "label_neighbours": engine.from_arrow(label_neighbours),
            "solve_groups": engine.from_arrow(solve_groups)}


def _format_votes(votes: dict[str, float]) -> str:
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return ", ".join(f"{intent}={weight:.2f}" for intent, weight in ranked)


def finalize(decisions: pd.DataFrame, nodes: pd.DataFrame, target_slots: dict[tuple[str, str], list[dict]]) -> pd.DataFrame:
    """Attach MASSIVE-style annotations projected from each target's slots; WEAK_LABELS_SCHEMA columns."""
    columns = ["locale", "utt", "utt_norm", "intent", "annot_utt", "slots", "confidence", "source", "n_users",
               "n_events", "target_utt", "target_locale", "system_intent", "evidence"]
    if decisions.empty:
        return pd.DataFrame(columns=columns)
    key_of = dict(zip(nodes["node_id"], zip(nodes["locale"], nodes["utt_norm"])))
    annots, slot_lists, target_locales = [], [], []
    for utt, target in zip(decisions["utt"], decisions["target"]):
        locale, norm = key_of[target]
        annot, kept = project_slots(utt, target_slots.get((locale, norm), []))
        annots.append(annot)
        slot_lists.append(kept)
        target_locales.append(locale)
    out = decisions.assign(annot_utt=annots, slots=slot_lists, target_locale=target_locales)
    return out[columns].sort_values(["locale", "utt_norm"]).reset_index(drop=True)


def fetch_target_slots(engine, day_texts, decisions: pd.DataFrame, nodes: pd.DataFrame) -> dict:
    """(locale, utt_norm) of each label target -> its slots as [{name, value}], via sql/target_slots.sql."""
    if decisions.empty:
        return {}
    info = nodes.set_index("node_id").loc[decisions["target"]]
    targets = pd.DataFrame({"locale": info["locale"].to_numpy(), "utt_norm": info["utt_norm"].to_numpy(),
                            "intent": decisions["intent"].to_numpy()}).drop_duplicates(["locale", "utt_norm"])
    found = engine.to_arrow(engine.sql("target_slots", {
        "day_texts": day_texts,
        "targets": engine.from_arrow(pa.Table.from_pandas(targets, preserve_index=False))}))
    return {(l, u): s or [] for l, u, s in zip(found.column("locale").to_pylist(),
                                               found.column("utt_norm").to_pylist(),
                                               found.column("nlu_slots").to_pylist())}


def borrow_from_abroad(nodes: pd.DataFrame, decisions: pd.DataFrame, scored_of, *,
                       is_failing: pd.Series, abroad: pd.DataFrame, lc, min_users: int) -> tuple[pd.DataFrame, dict]:
    """decide()'s labels plus those the small locales borrow from abroad (stages/transfer.py), and its report.

    scored_of(small locales) -> the scored candidates (locale, utt_norm, intent, confidence) of at least those
    locales: transfer reads the label model's rows of the small locales' texts only.
    The busy locales' own labels calibrate pair_chance; the cut is `labels.transfer_min_confidence`, or the
    precision target when that is 0."""
    small = transfer.small_locales(nodes, lc.transfer_max_locale_share)
    scored = scored_of(small)
    evidence = transfer.abroad_evidence(abroad, nodes)
    busy_labels = decisions[~decisions["locale"].isin(small)]
    pair_chance = transfer.PairChance.fit(evidence, busy_labels, lc.transfer_min_checks)
    node_of = dict(zip(zip(nodes["locale"], nodes["utt_norm"]), nodes["node_id"]))
    rephrased = pd.DataFrame({"node_id": [node_of[key] for key in zip(scored["locale"], scored["utt_norm"])],
                              "intent": scored["intent"], "confidence": scored["confidence"]})
    below_k = failing_below_k(nodes, is_failing, abroad, min_users)
    borrowed = transfer.borrow(
        nodes=nodes, evidence=evidence, pair_chance=pair_chance, small=small, candidates=is_failing,
        below_k=below_k, scored=rephrased, emitted=set(decisions["node_id"]),
        cut=lc.transfer_min_confidence or lc.target_precision, min_checks=lc.transfer_min_checks,
        min_confidence=lc.min_confidence, decision_columns=DECISION_COLUMNS)
    if not len(borrowed.decisions):
        return decisions, borrowed.report
    return pd.concat([decisions, borrowed.decisions], ignore_index=True), borrowed.report


def failing_below_k(nodes: pd.DataFrame, is_failing: pd.Series, abroad: pd.DataFrame, min_users: int) -> pd.Series:
    """Texts searched abroad that too few users said to be candidates (variants searches them only in small
    locales: they are counted when transfer would have labelled them, never labelled)."""
    searched = nodes["node_id"].isin(set(abroad["src"])) if len(abroad) else pd.Series(False, index=nodes.index)
    return searched & ~is_failing & (nodes["n_users"] < min_users)


def _labels(ctx: Context, synonymy_graph, is_failing: pd.Series, chance_similarity: dict,
            reliable_neighbours: pd.DataFrame, reliable_neighbours_abroad: pd.DataFrame, embedder,
            day_texts) -> dict:
    lc = ctx.cfg.labels
    rule = dict(weights=label_weights_for(embedder.name), target_precision=lc.target_precision,
                min_confidence=lc.min_confidence, min_users=ctx.cfg.privacy.min_users,
                chance_similarity=chance_similarity, neighbours=reliable_neighbours,
                allow_variant_only=lc.allow_variant_only)
    if ctx.engine.batches_in_process or synonymy_graph.solve_group is None:
        # in process, one pass over the whole graph is the fast way (an earlier per-group attempt on DuckDB
        # was reported ~3x slower in labels, 5.5 GB peak at 1M turns; not re-measured here)
        decisions, abstained, operating_point, scored = decide(synonymy_graph, is_failing, **rule,
                                                               progress=ctx.cfg.run.progress)
        # internal, not released (per-utterance texts of any user count): the precision-yield curve of `eval`
        atomic_write_parquet(pa.Table.from_pandas(scored, preserve_index=False), ctx.layout.label_candidates)
        scored_of = lambda small: scored  # noqa: E731 - every scored candidate is here already
    else:
        # the scored candidates stay on the engine: its writer writes them, transfer collects its locales' rows
        decisions, abstained, operating_point, on_engine = decide_on_engine(ctx.engine, synonymy_graph, is_failing,
                                                                            **rule)
        ctx.engine.write_parquet(candidate_rows(ctx.engine, on_engine), ctx.layout.label_candidates)
        scored_of = partial(scored_in_locales, ctx.engine, on_engine)
    transfer_report: dict = {"enabled": False}
    if lc.transfer:
        decisions, transfer_report = borrow_from_abroad(
            synonymy_graph.nodes, decisions, scored_of, is_failing=is_failing, abroad=reliable_neighbours_abroad,
            lc=lc, min_users=ctx.cfg.privacy.min_users)
        transfer_report = {"enabled": True, **transfer_report}
    # the window's texts per day with their earliest successful turn (friction stage), not the window's turns
    slots = fetch_target_slots(ctx.engine, day_texts, decisions, synonymy_graph.nodes)
    return {"weak_labels": finalize(decisions, synonymy_graph.nodes, slots), "abstained": abstained,
            "operating_point": operating_point, "transfer_report": transfer_report}


# -> weak_labels (WEAK_LABELS_SCHEMA, before the release filter), abstained (reason -> utterances),
# operating_point (the confidence cut), transfer_report (what the small locales borrowed from abroad, what
# was withheld and why, the calibration); also work/label_candidates.parquet for `selflearn eval`
LABELS = Stage("labels", inputs=("synonymy_graph", "is_failing", "chance_similarity", "reliable_neighbours",
                                 "reliable_neighbours_abroad", "embedder", "day_texts"),
               outputs=("weak_labels", "abstained", "operating_point", "transfer_report"), run=_labels)

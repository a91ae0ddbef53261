"""Weak labels: give a failing utterance the interpretation its evidence points to, or abstain.

Evidence, one vote per distinct user where users are known:
- multiturn: users who rephrased the failing utterance into B; each vote is split over the intents that
  paths from B end in (absorbing chain), so A -> B -> C credits C's interpretation;
- cross_user: similar utterances in the same locale that reliably succeed (each a partial vote);
- cross_lingual: similar utterances in other locales (a smaller vote: transfer needs strong evidence).
The failing utterance's own interpretation gets no vote: it is what the friction says is wrong.
Confidence = agreement (winning share of the votes) x evidence strength (grows with the number of votes).
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from selflearn.stages.graph import Absorption

MAX_VARIANT_VOTERS = 3  # per kind (cross_user, cross_lingual)


@dataclass
class Votes:
    by_intent: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sources: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    notes: list[str] = field(default_factory=list)

    multiturn: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    targets: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(float)))

    def add(self, intent: str, weight: float, source: str, target: str) -> None:
        if weight <= 0:
            return
        self.by_intent[intent] += weight
        self.sources[intent].add(source)
        self.targets[intent][target] += weight
        if source == "multiturn":
            self.multiturn[intent] += weight

    def best_target(self, intent: str, releasable) -> str | None:
        """The releasable utterance that carried the most weight for `intent` (ties: smallest id)."""
        ranked = sorted(self.targets[intent].items(), key=lambda kv: (-kv[1], kv[0]))
        return next((t for t, _ in ranked if releasable(t)), None)


def confidence(votes: dict[str, float]) -> tuple[str | None, float]:
    """Winning intent and confidence = share x (0.5 + 0.5 * V / (V + 1)); ties abstain."""
    if not votes:
        return None, 0.0
    ranked = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(votes.values())
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return None, 0.0
    share = ranked[0][1] / total
    strength = total / (total + 1.0)
    return ranked[0][0], share * (0.5 + 0.5 * strength)


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


def collect_votes(*, rephrase_out: list[tuple], variant_out: list[tuple], distribution, node_names: dict[str, str],
                  variant_weight: float, cross_lingual_weight: float) -> Votes:
    """rephrase_out: (dst, n_users, llr) most users first; variant_out: (dst, kind, similarity) closest first."""
    votes = Votes()
    for dst, users, llr in rephrase_out:
        dist = distribution(dst)
        p_ok = sum(dist.values())
        for intent, p in dist.items():
            # users who moved to dst, times the chance a path from dst ends in success with this intent
            votes.add(intent, users * p, "multiturn", dst)
        votes.notes.append(f"{users} user(s) rephrased to '{node_names[dst]}' (LLR {llr:.1f}, P(success) {p_ok:.2f})")
    # only the closest few neighbours vote: a crowd of loose neighbours must not outvote users' own rephrases
    voters = {"cross_user": 0, "cross_lingual": 0}
    for dst, kind, _ in variant_out:
        if voters[kind] >= MAX_VARIANT_VOTERS:
            continue
        voters[kind] += 1
        dist = distribution(dst)
        total = sum(dist.values()) or 1.0
        weight = variant_weight if kind == "cross_user" else cross_lingual_weight
        for intent, p in dist.items():
            votes.add(intent, weight * p / total, kind, dst)
    n_user = sum(1 for v in variant_out if v[1] == "cross_user")
    n_ling = len(variant_out) - n_user
    if n_user:
        votes.notes.append(f"{n_user} similar successful utterance(s) from other users")
    if n_ling:
        votes.notes.append(f"{n_ling} similar successful utterance(s) in other languages")
    return votes


def _evidence_by_source(edges: pd.DataFrame) -> dict[str, tuple[list, list]]:
    """Edges grouped once per failing utterance, in the order votes and notes want them."""
    grouped: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for src, dst, kind, users, llr, sim in edges[["src", "dst", "kind", "n_users", "llr", "similarity"]].itertuples(
            index=False):
        if kind == "multiturn":
            grouped[src][0].append((dst, int(users), float(llr)))
        else:
            grouped[src][1].append((dst, kind, float(sim)))
    for rephrases, similar in grouped.values():
        rephrases.sort(key=lambda r: (-r[1], r[0]))
        similar.sort(key=lambda r: (-r[2], r[0]))
    return grouped


def decide(graph, is_failing: pd.Series, *, min_confidence: float, min_users: int, variant_weight: float,
           cross_lingual_weight: float, allow_variant_only: bool = False) -> tuple[pd.DataFrame, dict[str, int]]:
    """One decision per failing utterance with enough users: label (intent, target) or an abstention reason.

    Unless `allow_variant_only`, the winning intent needs multiturn support: similarity alone cannot tell
    "i like this song" from "i don't like this song", a user's own rephrase after a failure can.
    """
    nodes = graph.nodes
    names = dict(zip(nodes["node_id"], nodes["utt"]))
    users = dict(zip(nodes["node_id"], nodes["n_users"]))
    evidence = _evidence_by_source(graph.edges)
    memo: dict[str, dict[str, float]] = {}

    def distribution(node: str) -> dict[str, float]:
        if node not in memo:
            memo[node] = graph.absorption.distribution(graph.row_of[node])
        return memo[node]

    abstained = {"no_evidence": 0, "tie": 0, "low_confidence": 0, "no_multiturn_support": 0,
                 "target_not_releasable": 0}
    rows = []
    for row in nodes[is_failing.to_numpy()].itertuples(index=False):
        rephrase_out, variant_out = evidence.get(row.node_id, ([], []))
        votes = collect_votes(rephrase_out=rephrase_out, variant_out=variant_out, distribution=distribution,
                              node_names=names, variant_weight=variant_weight,
                              cross_lingual_weight=cross_lingual_weight)
        if not votes.by_intent:
            abstained["no_evidence"] += 1
            continue
        intent, conf = confidence(dict(votes.by_intent))
        if intent is None:
            abstained["tie"] += 1
            continue
        if conf < min_confidence:
            abstained["low_confidence"] += 1
            continue
        if not allow_variant_only and votes.multiturn.get(intent, 0.0) <= 0:
            abstained["no_multiturn_support"] += 1
            continue
        target = votes.best_target(intent, lambda node: users.get(node, 0) >= min_users)
        if target is None:
            abstained["target_not_releasable"] += 1
            continue
        rows.append({
            "node_id": row.node_id, "locale": row.locale, "utt": row.utt, "utt_norm": row.utt_norm,
            "intent": intent, "confidence": round(conf, 12), "source": "+".join(sorted(votes.sources[intent])),
            "n_users": int(row.n_users), "n_events": int(row.n_events), "target": target,
            "target_utt": names[target], "system_intent": row.top_intent,
            "evidence": "; ".join(votes.notes[:4]) + f"; votes {_format_votes(votes.by_intent)}",
        })
    return pd.DataFrame(rows), abstained


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

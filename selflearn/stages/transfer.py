"""Cross-locale transfer: a launch-week locale's failing texts borrow the reading of reliable texts abroad.

A locale that launched days ago has few users per text: its own users' rephrases rarely reach the votes a
label needs, and the texts they rephrase into are often said by one user (not releasable as a target). Its
failing texts still have neighbours in the busy locales: the same requests, said there by many users and
reliably understood (`variants.nearest_reliable_abroad`). Here a failing text of a small locale (at most
`labels.transfer_max_locale_share` of the turns) may take the interpretation its nearest reliable
utterances abroad agree on:

- the neighbours vote for their intents, each weighted by its cosine above chance (a random pair across
  locales); the winner needs `labels.transfer_min_checks` other locales reading it so;
- `pair_chance` is the calibrated probability that the winner is right, measured in this very log: among
  the busy locales' failing texts that their own users' rephrases labelled, the share whose neighbours
  abroad, at least this close and this unanimous, read them as their label did (Laplace-smoothed). It is
  the precision a cut at this strength gives, so it is compared with the precision target like any
  label's confidence; an embedder whose cosines sit high (e5: random pairs at ~0.79) is calibrated by
  its own log, not by a constant;
- with no rephrase evidence, a winner that repeats the system's own reading is no label (nothing to fix);
  with rephrase evidence, transfer confirms the rephrases' winner (`multiturn+transfer`); a disagreement
  is an abstention unless the label model gives the rephrases' winner less than `labels.min_confidence`
  (then they are read as no evidence: often a related follow-up, not a paraphrase).

Privacy does not bend: only texts said by at least `privacy.min_users` users are candidates. A small
locale's failing texts said by fewer that transfer would have labelled are counted (`withheld_below_k`),
never emitted. Slots come from the neighbour abroad only where its value occurs in the failing text
(`labels.project_slots`): shared entities and numbers carry over, translated values do not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SOURCE_TRANSFER = "transfer"
SOURCE_MULTITURN_TRANSFER = "multiturn+transfer"
EVIDENCE_COLUMNS = ["node_id", "intent", "best_similarity", "agreement", "checks", "target", "evidence"]
MIN_CALIBRATION_EXAMPLES = 20   # below this many labelled texts in busy locales, pair_chance is not trusted


def small_locales(nodes: pd.DataFrame, max_share: float) -> set[str]:
    """Locales carrying at most `max_share` of the window's turns (events of every utterance)."""
    if not len(nodes):
        return set()
    events = nodes.groupby("locale")["n_events"].sum()
    share = events / max(float(events.sum()), 1.0)
    return {str(locale) for locale in share.index[share <= max_share]}


def abroad_evidence(neighbours: pd.DataFrame, nodes: pd.DataFrame) -> pd.DataFrame:
    """Per failing text: the intent its nearest reliable utterances abroad agree on, and how strongly.

    neighbours: (src, dst, similarity, chance) from `variants.nearest_reliable_abroad`.
    Returns EVIDENCE_COLUMNS: best_similarity (the closest winning neighbour's cosine above the chance of its
    pair of languages, as a share of the way from chance to 1), agreement (the winner's share of the
    above-chance weight), checks (other locales among the winner's voters), target (the closest winning
    neighbour), evidence (readable).
    """
    if neighbours is None or not len(neighbours):
        return pd.DataFrame(columns=EVIDENCE_COLUMNS)
    info = nodes.set_index("node_id")[["locale", "utt", "top_intent"]]
    frame = neighbours.join(info, on="dst").dropna(subset=["top_intent"])
    chance = frame["chance"].to_numpy(dtype=np.float64)
    frame = frame.assign(weight=np.clip((frame["similarity"].to_numpy(dtype=np.float64) - chance)
                                        / np.maximum(1.0 - chance, 1e-9), 0.0, None))
    by_intent = frame.groupby(["src", "top_intent"], sort=True)["weight"].sum().rename("votes").reset_index()
    by_intent["total"] = _sums_per_run(by_intent["src"].to_numpy(), by_intent["votes"].to_numpy(dtype=np.float64))
    by_intent = by_intent[by_intent["total"] > 0]
    # winner: most weight; ties go to the alphabetically first intent (deterministic re-runs)
    winners = (by_intent.sort_values(["src", "votes", "top_intent"], ascending=[True, False, True], kind="stable")
               .drop_duplicates("src"))
    voters = frame.merge(winners[["src", "top_intent", "votes", "total"]], on=["src", "top_intent"])
    voters = voters.sort_values(["src", "similarity", "dst"], ascending=[True, False, True], kind="stable")
    per_src = voters.groupby("src", sort=True)
    best = per_src.head(1).set_index("src")
    # cosines and locales only: the one text quoted from abroad is target_utt, which the release filter checks
    closest = per_src.head(3)
    quoted = (closest["locale"].astype(str) + " " + closest["similarity"].map("{:.3f}".format))
    # joined per text in one pass over the lists (a pandas agg with a Python function builds a Series per text)
    by_src: dict[str, list[str]] = {}
    for src, note in zip(closest["src"].tolist(), quoted.tolist()):
        by_src.setdefault(src, []).append(note)
    notes = pd.Series({src: ", ".join(parts) for src, parts in by_src.items()}, dtype=object)
    out = pd.DataFrame({
        "node_id": best.index.to_numpy(),
        "intent": best["top_intent"].to_numpy(),
        "best_similarity": best["weight"].to_numpy(dtype=np.float64),
        "agreement": (best["votes"] / best["total"]).to_numpy(dtype=np.float64),
        "checks": per_src["locale"].nunique().reindex(best.index).to_numpy(dtype=np.int64),
        "target": best["dst"].to_numpy(),
    })
    out["evidence"] = ("nearest reliable texts abroad read it " + out["intent"].astype(str) + " (cosine: "
                       + notes.reindex(best.index).to_numpy() + ")")
    return out[EVIDENCE_COLUMNS].reset_index(drop=True)


def _sums_per_run(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row gets the sum of `values` over its run of equal `keys` (keys sorted), added as numpy adds one
    short array, so the floats equal a per-group `.sum()` bit for bit (re-runs and batches agree exactly).

    Runs shorter than 8 values are added left to right, column by column across all runs at once; numpy adds
    longer arrays pairwise, so those (a text whose neighbours abroad name 8+ intents: rare) are summed singly."""
    if not len(keys):
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    lengths = np.diff(np.r_[starts, len(keys)])
    totals = np.zeros(len(starts))
    for offset in range(min(int(lengths.max()), 7)):
        live = lengths > offset
        totals[live] += values[starts[live] + offset]
    for run in np.flatnonzero(lengths >= 8):
        totals[run] = np.add.reduce(values[starts[run]:starts[run] + lengths[run]])
    return np.repeat(totals, lengths)


@dataclass
class PairChance:
    """P(the neighbours abroad read a failing text right), from the busy locales' labelled failing texts.

    Each example is (best_similarity, agreement, right); the chance for a text is the Laplace-smoothed share
    right among the examples at least as strong on both: the precision of a cut at that strength."""
    similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    agreement: np.ndarray = field(default_factory=lambda: np.zeros(0))
    right: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @classmethod
    def fit(cls, evidence: pd.DataFrame, labelled: pd.DataFrame, min_checks: int) -> "PairChance":
        """evidence: abroad_evidence rows; labelled: node_id, intent of labels from users' own rephrases."""
        known = evidence.merge(labelled[["node_id", "intent"]].rename(columns={"intent": "label"}), on="node_id")
        known = known[known["checks"] >= min_checks]
        return cls(known["best_similarity"].to_numpy(dtype=np.float64), known["agreement"].to_numpy(dtype=np.float64),
                   (known["intent"] == known["label"]).to_numpy(dtype=bool))

    @property
    def examples(self) -> int:
        return int(len(self.right))

    def __call__(self, best_similarity: np.ndarray, agreement: np.ndarray) -> np.ndarray:
        if self.examples < MIN_CALIBRATION_EXAMPLES:
            return np.zeros(len(best_similarity))
        out = np.empty(len(best_similarity))
        for i, (s, a) in enumerate(zip(best_similarity, agreement)):
            stronger = (self.similarity >= s) & (self.agreement >= a)
            out[i] = (self.right[stronger].sum() + 1.0) / (stronger.sum() + 2.0)
        return out

    def summary(self) -> dict:
        return {"examples": self.examples, "right": int(self.right.sum()),
                "trusted": self.examples >= MIN_CALIBRATION_EXAMPLES}


@dataclass
class Borrowed:
    decisions: pd.DataFrame     # rows in labels.DECISION_COLUMNS
    report: dict                # per-locale counts and the calibration, for the manifest


def borrow(*, nodes: pd.DataFrame, evidence: pd.DataFrame, pair_chance: PairChance, small: set[str],
           candidates: pd.Series, below_k: pd.Series, scored: pd.DataFrame, emitted: set[str],
           cut: float, min_checks: int, min_confidence: float, decision_columns: list[str]) -> Borrowed:
    """Labels borrowed from abroad for the small locales' failing texts that their own evidence left unlabelled.

    candidates: mask over nodes of failing texts seen from >= min_users users; below_k: mask of failing texts
    seen from fewer (counted when transfer would have labelled them, never emitted). scored: the label
    model's rows (node_id, intent, confidence) for texts with rephrase evidence: a winner of theirs that
    disagrees vetoes the borrowed one when its confidence reaches `min_confidence`; emitted: node ids
    labelled already.
    """
    locale_of = dict(zip(nodes["node_id"], nodes["locale"]))
    in_small = nodes["locale"].isin(small).to_numpy()
    wanted = set(nodes["node_id"][(candidates.to_numpy() | below_k.to_numpy()) & in_small]) - emitted
    ev = evidence[evidence["node_id"].isin(wanted) & (evidence["checks"] >= min_checks)].copy()
    ev["pair_chance"] = pair_chance(ev["best_similarity"].to_numpy(), ev["agreement"].to_numpy())
    ev = ev[ev["pair_chance"] >= cut]
    info = nodes.set_index("node_id")
    rephrased = scored.set_index("node_id")[["intent", "confidence"]] if len(scored) else None
    releasable = set(nodes["node_id"][candidates.to_numpy()])
    counts = {locale: {SOURCE_TRANSFER: 0, SOURCE_MULTITURN_TRANSFER: 0, "withheld_below_k": 0, "conflict": 0,
                       "repeats_system": 0} for locale in sorted(small)}
    rows = []
    for r in ev.sort_values("node_id").itertuples(index=False):
        node = info.loc[r.node_id]
        tally = counts[locale_of[r.node_id]]
        own = rephrased.loc[r.node_id] if rephrased is not None and r.node_id in rephrased.index else None
        if own is not None and own["intent"] != r.intent:
            if own["confidence"] >= min_confidence:
                tally["conflict"] += 1   # the users' rephrases say otherwise, and credibly: neither wins
                continue
            # rephrases the label model finds more likely wrong than right (often a related follow-up,
            # "play X" -> "louder") do not veto what the text itself means abroad
            own = None
        if own is None and r.intent == node["top_intent"]:
            tally["repeats_system"] += 1   # abroad reads it as the system already does: nothing to fix
            continue
        if r.node_id not in releasable:
            tally["withheld_below_k"] += 1   # k-anonymity: too few users said it to release it at all
            continue
        source = SOURCE_TRANSFER if own is None else SOURCE_MULTITURN_TRANSFER
        tally[source] += 1
        confidence = float(r.pair_chance) if own is None else max(float(r.pair_chance), float(own["confidence"]))
        rows.append({
            "node_id": r.node_id, "locale": node["locale"], "utt": node["utt"], "utt_norm": node["utt_norm"],
            "intent": r.intent, "confidence": round(confidence, 12), "source": source,
            "n_users": int(node["n_users"]), "n_events": int(node["n_events"]), "target": r.target,
            "target_utt": info.loc[r.target, "utt"], "system_intent": node["top_intent"],
            "evidence": f"{r.evidence}; {r.checks} locales agree, pair_chance {r.pair_chance:.3f}",
        })
    report = {"small_locales": sorted(small), "cut": round(float(cut), 6), "calibration": pair_chance.summary(),
              "by_locale": counts}
    return Borrowed(pd.DataFrame(rows, columns=decision_columns), report)

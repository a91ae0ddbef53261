"""Ground truth per utterance: what a label on (locale, utt_norm) is judged against."""
from __future__ import annotations

import pandas as pd

from selflearn.evaluation.metrics import slot_set
from selflearn.text import display_text, normalize


def add_utt_norm(events: pd.DataFrame) -> pd.DataFrame:
    """utt_norm (the pipeline's matching key) and utt (display text), computed once per distinct utterance."""
    distinct = pd.Series(events["utterance"].unique())
    norm = dict(zip(distinct, distinct.map(normalize)))
    shown = dict(zip(distinct, distinct.map(display_text)))
    return events.assign(utt_norm=events["utterance"].map(norm), utt=events["utterance"].map(shown))


def majority(df: pd.DataFrame, keys: list[str], value: str, name: str) -> pd.DataFrame:
    """The most frequent non-null `value` per `keys` (ties: smallest value), as column `name`."""
    counts = df.dropna(subset=[value]).groupby(keys + [value], sort=False).size().reset_index(name="_n")
    counts = counts.sort_values(keys + ["_n", value], ascending=[True] * len(keys) + [False, True])
    return counts.drop_duplicates(keys)[keys + [value]].rename(columns={value: name})


def utterance_truth(events: pd.DataFrame, truth_turns: pd.DataFrame, truth_pairs: pd.DataFrame,
                    min_users: int) -> pd.DataFrame:
    """One row per (locale, utt_norm) of the log events that have a truth turn.

    true_intent   majority true intent of its events (ties: alphabetical first)
    gold_slots    slot set of the most frequent true annotation among events of that intent
    failing       more than half of its events (with a known system_correct) were wrong
    has_fix       some event of it starts a truth rephrase pair whose second turn the system got right
    recoverable   failing, seen from >= min_users distinct users, and has_fix
    utt           its most frequent display text (the representative text a perfect miner would emit)
    """
    key = ["locale", "utt_norm"]
    ev = events.merge(truth_turns, on="event_id", how="inner")
    correct_by_event = truth_turns.set_index("event_id")["system_correct"]
    fixed_by = truth_pairs[truth_pairs["is_rephrase"]]
    fixed_by = fixed_by[fixed_by["event_id_b"].map(correct_by_event).eq(True)]
    ev["fix_signal"] = ev["event_id"].isin(set(fixed_by["event_id_a"]))
    known = ev["system_correct"].notna()
    ev["wrong"] = known & ev["system_correct"].eq(False)
    ev["known"] = known

    base = ev.groupby(key, as_index=False).agg(
        n_events=("event_id", "size"), n_users=("user_id", "nunique"), n_wrong=("wrong", "sum"),
        n_known=("known", "sum"), has_fix=("fix_signal", "any"))
    intents = majority(ev, key, "true_intent", "true_intent")
    of_major = ev.merge(intents.rename(columns={"true_intent": "_major"}), on=key)
    of_major = of_major[of_major["true_intent"] == of_major["_major"]]
    annots = of_major.assign(_annot=of_major["true_annot_utt"].fillna(""))
    annot = majority(annots, key, "_annot", "true_annot_utt")
    # Keep the first event's struct slots per group as the fallback when no annotated text exists.
    first_slots = of_major.drop_duplicates(key)[key + ["true_slots"]]
    texts = majority(ev, key, "utt", "utt")

    out = (base.merge(intents, on=key, how="left").merge(annot, on=key, how="left")
           .merge(first_slots, on=key, how="left").merge(texts, on=key, how="left"))
    annot_given = out["true_annot_utt"].notna() & out["true_annot_utt"].ne("")
    out["true_annot_utt"] = out["true_annot_utt"].astype(object).where(annot_given, None)
    out["gold_slots"] = [slot_set(a, s) for a, s in zip(out["true_annot_utt"], out["true_slots"])]
    out["failing"] = (2 * out["n_wrong"] > out["n_known"]).astype(bool)
    out["has_fix"] = out["has_fix"].astype(bool)
    out["recoverable"] = out["failing"] & (out["n_users"] >= min_users) & out["has_fix"]
    return out.drop(columns=["true_slots"]).sort_values(key).reset_index(drop=True)

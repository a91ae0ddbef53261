"""The naive baseline: "the user's next turn, within 30 s, was interpreted differently, so that was meant".

No rephrase detection, no friction, no min_users: it shows what the mining adds over this heuristic.
"""
from __future__ import annotations

import pandas as pd

from selflearn.evaluation.truth import majority

WINDOW_S = 30.0


def naive_turn_labels(events: pd.DataFrame, window_s: float = WINDOW_S) -> pd.DataFrame:
    """Every turn whose same user's next turn (by ts, then event_id) comes within `window_s` seconds
    (inclusive) with a non-null nlu_intent different from its own gets that intent as its label.

    events: event_id, user_id, locale, ts_us, utt_norm, utt, nlu_intent. Returns those turns + `label`.
    """
    ev = events.sort_values(["user_id", "ts_us", "event_id"], kind="mergesort").reset_index(drop=True)
    same_user = ev["user_id"].eq(ev["user_id"].shift(-1))
    next_intent = ev["nlu_intent"].shift(-1)
    gap_us = ev["ts_us"].shift(-1) - ev["ts_us"]
    differs = next_intent.notna() & (ev["nlu_intent"].isna() | ev["nlu_intent"].ne(next_intent))
    chosen = same_user & differs & gap_us.le(window_s * 1_000_000)
    return ev[chosen].assign(label=next_intent[chosen])


def naive_labels(events: pd.DataFrame, window_s: float = WINDOW_S) -> pd.DataFrame:
    """One label per (locale, utt_norm): the majority of its turn labels (ties: alphabetical first)."""
    turns = naive_turn_labels(events, window_s)
    key = ["locale", "utt_norm"]
    if turns.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in key + ["intent", "utt"]}).assign(n_events=0)
    labels = majority(turns, key, "label", "intent")
    counts = turns.groupby(key, as_index=False).size().rename(columns={"size": "n_events"})
    texts = majority(turns, key, "utt", "utt")
    return labels.merge(texts, on=key).merge(counts, on=key).sort_values(key).reset_index(drop=True)

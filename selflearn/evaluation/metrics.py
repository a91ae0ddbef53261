"""Precision/recall/F1, MASSIVE slot markup, and the scoring of rephrase pairs and of labels."""
from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

from selflearn.text import normalize

# `[name : value]`: the name runs to the first colon, so a value may itself hold one ("[time : 10:30]").
SLOT_SPAN = re.compile(r"\[\s*([^\[\]:]+?)\s*:\s*([^\[\]]*?)\s*\]")

SlotSet = frozenset[tuple[str, str]]


def ratio(num: float, den: float) -> float | None:
    return None if den <= 0 else num / den


def prf(tp: int, fp: int, fn: int) -> dict:
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    return {"tp": int(tp), "fp": int(fp), "fn": int(fn), "precision": precision, "recall": recall, "f1": f1}


def slot_key(name: str, value: str) -> tuple[str, str]:
    return name.strip().casefold(), normalize(value)


def parse_annot(annot: str | None) -> SlotSet:
    """The (name, normalized value) set of the `[name : value]` spans of a MASSIVE annotated utterance."""
    if not isinstance(annot, str):
        return frozenset()
    return frozenset(slot_key(n, v) for n, v in SLOT_SPAN.findall(annot))


def slots_from_struct(slots: Iterable | None) -> SlotSet:
    """The same set from a list<struct<name, value>> (used when no annotated text is given)."""
    if slots is None or isinstance(slots, (float, str)):  # None/NaN: no slots given
        return frozenset()
    return frozenset(slot_key(s["name"], s.get("value") or "") for s in slots if isinstance(s, dict) and s.get("name"))


def slot_set(annot: str | None, slots: Iterable | None) -> SlotSet:
    return parse_annot(annot) if isinstance(annot, str) else slots_from_struct(slots)


# ---------------------------------------------------------------- rephrase detection
def score_rephrases(run_pairs: pd.DataFrame, truth_pairs: pd.DataFrame, event_locale: pd.Series) -> dict:
    """P/R/F1 of the run's is_rephrase against the truth's, joined on (event_id_a, event_id_b).

    A truth rephrase absent from the run's pairs is a false negative; a run rephrase the truth does not
    list (a pair the truth never judged) is a false positive, also counted in `run_rephrases_not_in_truth`.
    A pair's locale is its first event's locale in the logs.
    """
    key = ["event_id_a", "event_id_b"]
    run = run_pairs.groupby(key, as_index=False).agg(run=("is_rephrase", "max"), run_locale=("locale", "first"))
    truth = truth_pairs.groupby(key, as_index=False).agg(truth=("is_rephrase", "max"))
    both = run.merge(truth, on=key, how="outer", indicator=True)
    both["in_truth"] = both["_merge"] != "left_only"
    both["run"] = both["run"].eq(True)
    both["truth"] = both["truth"].eq(True)
    both["locale"] = both["event_id_a"].map(event_locale).fillna(both["run_locale"]).fillna("unknown")

    def measure(df: pd.DataFrame) -> dict:
        tp = int((df["run"] & df["truth"]).sum())
        out = prf(tp, int((df["run"] & ~df["truth"]).sum()), int((~df["run"] & df["truth"]).sum()))
        out["truth_rephrases"] = int(df["truth"].sum())
        out["truth_rephrases_missing_from_run"] = int((df["truth"] & (df["_merge"] == "right_only")).sum())
        out["run_pairs"] = int((df["_merge"] != "right_only").sum())
        out["run_rephrases"] = int(df["run"].sum())
        out["run_rephrases_not_in_truth"] = int((df["run"] & ~df["in_truth"]).sum())
        return out

    return {"overall": measure(both),
            "by_locale": {loc: measure(g) for loc, g in sorted(both.groupby("locale"), key=lambda kv: kv[0])}}


# ---------------------------------------------------------------- labels
def score_labels(labels: pd.DataFrame, utt_truth: pd.DataFrame, *, with_slots: bool) -> dict:
    """Score one label per (locale, utt_norm) against the utterance truth (see truth.utterance_truth).

    labels: locale, utt_norm, intent (+ pred_slots, a SlotSet, when with_slots).
    """
    key = ["locale", "utt_norm"]
    lab = labels.merge(utt_truth, on=key, how="left", indicator=True)
    lab["judged"] = lab["_merge"] == "both"
    lab["correct"] = lab["judged"] & (lab["intent"] == lab["true_intent"])
    lab["on_failing"] = lab["judged"] & lab["failing"].eq(True)
    lab["on_recoverable"] = lab["judged"] & lab["recoverable"].eq(True)
    if with_slots:
        judged = lab["judged"]
        gold = lab["gold_slots"].where(judged, None)
        lab["slot_tp"] = [len(p & g) if j else 0 for p, g, j in zip(lab["pred_slots"], gold, judged)]
        lab["slot_fp"] = [len(p - g) if j else 0 for p, g, j in zip(lab["pred_slots"], gold, judged)]
        lab["slot_fn"] = [len(g - p) if j else 0 for p, g, j in zip(lab["pred_slots"], gold, judged)]

    def measure(lab_loc: pd.DataFrame, truth_loc: pd.DataFrame) -> dict:
        n_failing = int(truth_loc["failing"].sum())
        n_recoverable = int(truth_loc["recoverable"].sum())
        judged, correct = int(lab_loc["judged"].sum()), int(lab_loc["correct"].sum())
        on_failing = int(lab_loc["on_failing"].sum())
        failing_correct = int((lab_loc["on_failing"] & lab_loc["correct"]).sum())
        recovered = int((lab_loc["on_recoverable"] & lab_loc["correct"]).sum())
        out = {
            "labels": int(len(lab_loc)), "judged": judged, "unjudged": int(len(lab_loc)) - judged,
            "correct": correct, "intent_precision": ratio(correct, judged),
            "failing_utts": n_failing, "failing_labeled": on_failing, "failing_correct": failing_correct,
            "failing_precision": ratio(failing_correct, on_failing),
            "failing_coverage": ratio(on_failing, n_failing),
            "recoverable": n_recoverable, "recovered": recovered, "yield": ratio(recovered, n_recoverable),
        }
        if with_slots:
            s = prf(int(lab_loc["slot_tp"].sum()), int(lab_loc["slot_fp"].sum()), int(lab_loc["slot_fn"].sum()))
            out.update({f"slot_{k}": v for k, v in s.items()})
        return out

    locales = sorted(set(lab["locale"]) | set(utt_truth["locale"]))
    return {
        "overall": measure(lab, utt_truth),
        "by_locale": {loc: measure(lab[lab["locale"] == loc], utt_truth[utt_truth["locale"] == loc])
                      for loc in locales},
    }

"""Evaluate a `selflearn run` against simulator ground truth.

    evaluate(logs, truth_dir, run_dir) -> dict (JSON-serializable)     format_report(dict) -> str

Figures, per locale and overall (definitions in the docstrings of selflearn/evaluation/*):
1. rephrase detection P/R/F1 of the run's scored pairs vs the truth pairs;
2. weak labels: intent precision, slot F1, precision and coverage on failing utterances, yield on
   recoverable failing utterances;
3. the same for a naive "next turn within 30 s says something else" baseline;
4. closed loop: intent accuracy of a classifier trained on seed, seed + weak, seed + naive and
   seed + perfect-miner labels, and the share of the perfect miner's gain our labels capture.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from selflearn.evaluation.closed_loop import run_closed_loop
from selflearn.evaluation.curve import judge, precision_yield_curve, reliability_table
from selflearn.evaluation.inputs import (
    EvalInputError, read_label_candidates, read_logs, read_nlu_sets, read_run_pairs, read_truth_pairs,
    read_truth_turns, read_weak_labels,
)
from selflearn.evaluation.metrics import parse_annot, score_labels, score_rephrases, slot_set
from selflearn.evaluation.naive import WINDOW_S, naive_labels
from selflearn.evaluation.report import format_report
from selflearn.evaluation.truth import add_utt_norm, utterance_truth
from selflearn.layout import RunLayout

__all__ = ["EvalInputError", "evaluate", "format_report", "parse_annot"]


def evaluate(logs: str, truth_dir: str | Path, run_dir: str | Path, *, min_users: int = 2,
             closed_loop: bool = True, seed: int = 0) -> dict:
    """Score the run in `run_dir` on the logs it mined, against the simulator truth in `truth_dir`.

    Raises EvalInputError (one line of advice) when logs, truth turns/pairs or the run's weak labels /
    scored pairs are missing or malformed. A missing nlu_seed/nlu_test only skips the closed loop: the
    advice is then in result["closed_loop"]["note"].
    """
    if min_users < 1:
        raise EvalInputError(f"min_users must be at least 1, got {min_users}")
    truth_dir, run_dir = Path(truth_dir), Path(run_dir)
    if not truth_dir.is_dir():
        raise EvalInputError(f"truth folder {truth_dir} does not exist: --truth must be the simulator's truth folder")
    if not run_dir.is_dir():
        raise EvalInputError(f"run folder {run_dir} does not exist: --out must be a `selflearn run` output folder")

    events = add_utt_norm(read_logs(logs))
    truth_turns = read_truth_turns(truth_dir)
    truth_pairs = read_truth_pairs(truth_dir)
    weak = read_weak_labels(run_dir)
    run_pairs = read_run_pairs(run_dir)
    utt_truth = utterance_truth(events, truth_turns, truth_pairs, min_users)
    notes = [
        "labels on a (locale, utt_norm) with no truth-bearing log event are 'unjudged' and left out of precision",
        "failing = more than half of an utterance's events had system_correct == False",
        f"naive baseline: no min_users filter and no rephrase check (window {WINDOW_S:g} s, inclusive)",
    ]

    # One label per (locale, utt_norm): the schema promises it; if a run repeats one, keep its most confident row.
    n_weak_rows = len(weak)
    weak = (weak.assign(_c=weak["confidence"].astype(float).fillna(-1.0))
            .sort_values(["locale", "utt_norm", "_c"], ascending=[True, True, False], kind="mergesort")
            .drop_duplicates(["locale", "utt_norm"]).drop(columns="_c").reset_index(drop=True))
    if len(weak) < n_weak_rows:
        notes.append(f"weak labels repeat {n_weak_rows - len(weak)} (locale, utt_norm) rows: the most confident kept")
    weak["pred_slots"] = [slot_set(a, s) for a, s in zip(weak["annot_utt"], weak["slots"])]
    weak["utt"] = weak["utt"].fillna(weak["utt_norm"])
    naive = naive_labels(events)
    if events["nlu_intent"].isna().all():
        notes.append("the logs carry no nlu_intent: the naive baseline labels nothing")

    event_locale = events.set_index("event_id")["locale"]
    result = {
        "inputs": {
            "logs": str(logs), "truth_dir": str(truth_dir), "run_dir": str(run_dir),
            "manifest": str(RunLayout(run_dir).manifest) if RunLayout(run_dir).manifest.is_file() else None,
            "min_users": min_users, "closed_loop": closed_loop, "seed": seed,
            "counts": {
                "log_events": len(events),
                "log_events_with_truth": int(events["event_id"].isin(set(truth_turns["event_id"])).sum()),
                "log_users": int(events["user_id"].nunique()),
                "log_utterances": int(events[["locale", "utt_norm"]].drop_duplicates().shape[0]),
                "truth_turns": len(truth_turns), "truth_pairs": len(truth_pairs),
                "truth_rephrase_pairs": int(truth_pairs["is_rephrase"].sum()),
                "run_pairs": len(run_pairs), "run_rephrase_pairs": int(run_pairs["is_rephrase"].sum()),
                "weak_labels": n_weak_rows, "naive_labels": len(naive),
                "failing_utterances": int(utt_truth["failing"].sum()),
                "recoverable_utterances": int(utt_truth["recoverable"].sum()),
            },
        },
        "rephrase": score_rephrases(run_pairs, truth_pairs, event_locale),
        "weak_labels": score_labels(weak, utt_truth, with_slots=True),
        "naive": dict(score_labels(naive, utt_truth, with_slots=False), window_s=WINDOW_S, min_users_filter=False),
        "confidence": _confidence(read_label_candidates(run_dir), utt_truth),
        "closed_loop": _closed_loop(truth_dir, weak, naive, utt_truth, enabled=closed_loop, seed=seed),
        "notes": notes,
    }
    return _jsonable(result)


def _confidence(candidates: pd.DataFrame | None, utt_truth: pd.DataFrame) -> dict:
    """Precision-yield curve along the confidence cut, and a reliability table (confidence vs precision)."""
    if candidates is None:
        return {"skipped": True, "note": "the run has no work/label_candidates.parquet (made by an older version)"}
    judged = judge(candidates, utt_truth)
    n_recoverable = int(utt_truth["recoverable"].sum())
    return {"candidates": int(len(judged)), "judged": int(judged["judged"].sum()),
            "curve": precision_yield_curve(judged, n_recoverable), "reliability": reliability_table(judged)}


def _closed_loop(truth_dir: Path, weak: pd.DataFrame, naive: pd.DataFrame, utt_truth: pd.DataFrame, *,
                 enabled: bool, seed: int) -> dict:
    if not enabled:
        return {"skipped": True, "note": "closed loop disabled (closed_loop=False)"}
    try:
        seed_set, test_set = read_nlu_sets(truth_dir)
    except EvalInputError as err:
        return {"skipped": True, "note": str(err)}
    perfect = utt_truth[utt_truth["recoverable"]].rename(columns={"true_intent": "intent"})
    return run_closed_loop(seed_set, test_set, {
        "weak": weak[["locale", "utt", "intent"]],
        "naive": naive[["locale", "utt", "intent"]],
        "perfect": perfect[["locale", "utt", "intent"]],
    }, seed=seed)


def _jsonable(value):
    """Plain Python containers and scalars only (numpy/pandas scalars converted, NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if value is None or isinstance(value, str):
        return value
    if pd.isna(value):
        return None
    return str(value)


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")

"""How label precision and yield trade off along the confidence cut, and whether confidence means probability.

Both read the run's scored label candidates (`work/label_candidates.parquet`: every utterance the labeler
scored, emitted or not, with its calibrated confidence) and judge them against the utterance truth.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from selflearn.evaluation.metrics import ratio

CUTS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)
BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0)


def judge(candidates: pd.DataFrame, utt_truth: pd.DataFrame) -> pd.DataFrame:
    """Candidates with truth: judged (a truth-bearing utterance), correct, recoverable."""
    truth = utt_truth[["locale", "utt_norm", "true_intent", "recoverable"]]
    out = candidates.merge(truth, on=["locale", "utt_norm"], how="left", indicator=True)
    out["judged"] = out["_merge"] == "both"
    out["correct"] = out["judged"] & (out["intent"] == out["true_intent"])
    out["recoverable"] = out["recoverable"].eq(True)
    return out.drop(columns="_merge")


def precision_yield_curve(judged: pd.DataFrame, n_recoverable: int, cuts=CUTS) -> list[dict]:
    """Per cut c: labels with confidence >= c, their precision, and the yield they would give."""
    rows = []
    for cut in cuts:
        above = judged[judged["confidence"] >= cut]
        rows.append({"cut": cut, "labels": int(len(above)),
                     "precision": ratio(int(above["correct"].sum()), int(above["judged"].sum())),
                     "yield": ratio(int((above["correct"] & above["recoverable"]).sum()), n_recoverable)})
    return rows


def reliability_table(judged: pd.DataFrame, bins=BINS) -> list[dict]:
    """Per confidence bin: judged candidates, their mean confidence and the share that is right."""
    rows = []
    scored = judged[judged["judged"]]
    edges = np.asarray(bins)
    which = np.clip(np.searchsorted(edges, scored["confidence"].to_numpy(), side="right") - 1, 0, len(edges) - 2)
    for b in range(len(edges) - 1):
        inside = scored[which == b]
        rows.append({"bin": f"[{edges[b]:.2f}, {edges[b + 1]:.2f}{']' if b == len(edges) - 2 else ')'}",
                     "n": int(len(inside)),
                     "mean_confidence": float(inside["confidence"].mean()) if len(inside) else None,
                     "precision": ratio(int(inside["correct"].sum()), len(inside))})
    return rows

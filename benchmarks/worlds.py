"""Label quality per evaluation world, worst world first: one command, one table.

    .venv/bin/python benchmarks/worlds.py [--turns 30000] [--seeds 11,12,13] [--worlds ...] [--markdown F]

For every (world, seed): simulate the world's logs (kept under --root and reused), run the whole pipeline
with the default configuration (fresh output folder, a shared embedding cache so that only new texts are
embedded), then `selflearn eval` against the world's ground truth. Seeds here are never the calibration
seeds of benchmarks/calibrate.py. Per world it reports label precision, yield (recoverable failing texts,
i.e. said by >= min_users users and fixed by a rephrase, that got the right label), labels emitted, the
naive baseline's precision, and the closed-loop gain captured (share of a perfect miner's NLU gain in macro
accuracy, gains summed over seeds before the ratio: single-seed gains are noise; the gain in accuracy on
traffic is shown beside it, see selflearn/evaluation/closed_loop.py for why it does not judge labels). Worlds are sorted worst first: by the smaller of
precision margin and yield margin against the targets.

Writes benchmarks/results/worlds-<embedder>.json (every run, the machine, the date) and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TARGET_PRECISION, TARGET_YIELD, TARGET_GAIN = 0.95, 0.50, 0.60


def measure(world_path: Path, cache: Path, embedder: str, seed: int) -> dict:
    from selflearn import pipeline
    from selflearn.config import load_config
    from selflearn.evaluate import evaluate

    out = world_path / "bench-run"
    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(overrides={"embedding.backend": embedder, "embedding.cache_dir": str(cache),
                                 "run.progress": False})
    start = time.perf_counter()
    result = pipeline.run(str(world_path / "logs"), out, cfg, say=lambda m: None)
    run_s = time.perf_counter() - start
    ev = evaluate(str(world_path / "logs"), world_path / "truth", out, seed=seed)
    ours, naive = ev["weak_labels"]["overall"], ev["naive"]["overall"]
    loop = ev["closed_loop"].get("overall", {})
    return {
        "labels": ours["labels"], "precision": ours["intent_precision"], "yield": ours["yield"],
        "judged": ours["judged"], "correct": ours["correct"],
        "recoverable": ours["recoverable"], "recovered": ours["recovered"],
        "failing_precision": ours["failing_precision"],
        "naive_labels": naive["labels"], "naive_precision": naive["intent_precision"],
        "gain_captured": loop.get("gain_captured"), "naive_gain_captured": loop.get("naive_gain_captured"),
        "accuracy": loop.get("macro_accuracy", {}), "traffic_accuracy": loop.get("accuracy", {}),
        "rephrase_precision": ev["rephrase"]["overall"]["precision"],
        "rephrase_recall": ev["rephrase"]["overall"]["recall"],
        "abstained": result.manifest["counts"]["abstained"],
        "operating_point": result.manifest["counts"].get("operating_point"),
        "run_s": round(run_s, 1),
    }


def mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def pooled_gain(runs: list[dict], condition: str, key: str = "accuracy") -> float | None:
    """Share of the perfect miner's accuracy gain, summed over seeds before dividing: a seed where the
    perfect miner gains almost nothing would make its own ratio explode (-1.6 or 4.4 on 0.003 headroom).
    key "accuracy" is macro accuracy (the headline), "traffic_accuracy" accuracy on traffic."""
    acc = [r[key] for r in runs if r.get(key, {}).get("seed") is not None]
    headroom = sum(a["seed+perfect"] - a["seed"] for a in acc)
    return sum(a[condition] - a["seed"] for a in acc) / headroom if headroom > 0 else None


def summarize(runs: list[dict]) -> list[dict]:
    by_world: dict[str, list[dict]] = {}
    for r in runs:
        by_world.setdefault(r["world"], []).append(r)
    rows = []
    for world, rs in by_world.items():
        labels = sum(r["labels"] for r in rs)
        # pooled over seeds: precision and yield as ratios of summed counts, gain as the mean of seeds
        correct, judged = sum(r["correct"] for r in rs), sum(r["judged"] for r in rs)
        recovered, recoverable = sum(r["recovered"] for r in rs), sum(r["recoverable"] for r in rs)
        row = {"world": world, "seeds": len(rs), "labels": labels,
               "precision": correct / judged if judged else None,
               "yield": recovered / recoverable if recoverable else None, "recoverable": recoverable,
               "gain_captured": pooled_gain(rs, "seed+weak"),
               "traffic_gain_captured": pooled_gain(rs, "seed+weak", "traffic_accuracy"),
               "naive_precision": mean(r["naive_precision"] for r in rs),
               "naive_gain_captured": pooled_gain(rs, "seed+naive"),
               "rephrase_p": mean(r["rephrase_precision"] for r in rs),
               "rephrase_r": mean(r["rephrase_recall"] for r in rs)}
        row["margin"] = min((row["precision"] or 0) - TARGET_PRECISION, (row["yield"] or 0) - TARGET_YIELD)
        rows.append(row)
    return sorted(rows, key=lambda r: r["margin"])


def markdown(rows: list[dict], header: str) -> str:
    def f(v, digits=3):
        return "—" if v is None else f"{v:.{digits}f}"
    lines = [header, "",
             "| world | seeds | labels | precision | yield (recoverable) | closed-loop gain captured (macro) | "
             "gain on traffic | rephrase P / R | naive precision | naive gain (macro) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['world']} | {r['seeds']} | {r['labels']} | {f(r['precision'])} | "
                     f"{f(r['yield'], 2)} ({r['recoverable']}) | {f(r['gain_captured'], 2)} | "
                     f"{f(r['traffic_gain_captured'], 2)} | "
                     f"{f(r['rephrase_p'], 2)} / {f(r['rephrase_r'], 2)} | {f(r['naive_precision'], 2)} | "
                     f"{f(r['naive_gain_captured'], 2)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.path.insert(0, str(REPO))
    from selflearn.sim.worlds import REAL_NLU_WORLDS, WORLDS
    from selflearn.simulate import cached_world

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-worlds")
    parser.add_argument("--turns", type=int, default=30_000)
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--worlds", default=",".join([*WORLDS, *REAL_NLU_WORLDS]))
    parser.add_argument("--embedder", default="auto", help="auto = the default embedder")
    parser.add_argument("--markdown", help="also write the table here")
    args = parser.parse_args()

    from selflearn.config import load_config
    args.embedder = load_config(overrides={"embedding.backend": args.embedder}).embedding.backend
    root = Path(args.root)
    cache = root / "embedding-cache"
    runs = []
    for world in args.worlds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            path = cached_world(root, world, seed=seed, turns=args.turns, say=lambda m: print(m, flush=True))
            figures = measure(path, cache, args.embedder, seed)
            runs.append({"world": world, "seed": seed, **figures})
            print(f"{world:<26} s{seed}: labels {figures['labels']:>4}  precision {figures['precision']}  "
                  f"yield {figures['yield']}  gain {figures['gain_captured']}  ({figures['run_s']} s)", flush=True)
    rows = summarize(runs)
    machine = (f"{os.cpu_count()} vCPU {platform.machine()}, Python {platform.python_version()}, "
               f"{dt.date.today().isoformat()}")
    header = (f"{args.turns:,} turns per world, seeds {args.seeds}, embedder {args.embedder}, default "
              f"configuration; {machine}")
    table = markdown(rows, header)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"worlds-{args.embedder}.json").write_text(json.dumps(
        {"machine": machine, "turns": args.turns, "seeds": args.seeds, "embedder": args.embedder,
         "summary": rows, "runs": runs}, indent=2, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

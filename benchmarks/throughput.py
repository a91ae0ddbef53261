"""End-to-end throughput and scale: wall time per stage, turns/s, peak RSS, embedder share, incrementality.

    .venv/bin/python benchmarks/throughput.py --turns 10000 100000 1000000 [--embedder use-onnx] [--diverse]

--diverse simulates text as diverse as real traffic (world knob once_seen_share 0.6: 1 M turns hold ~300 k
distinct texts, most said once) instead of the simulator's default (1 M turns, ~34 k distinct texts).

For each size: simulate N turns over 7 days, run the pipeline in a fresh process (so peak RSS is the run's
own), then run it again on the same logs (must embed 0 texts), then add one more simulated day and run
again (must embed only that day's new texts). Prints a table and writes benchmarks/results/throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DIVERSE_ONCE_SEEN_SHARE = 0.6

CHILD = r"""
import json, resource, sys, time
from selflearn.config import load_config
from selflearn.pipeline import run
cfg = load_config(overrides={"embedding.backend": sys.argv[3], "run.progress": False})
start = time.perf_counter()
result = run(sys.argv[1], sys.argv[2], cfg, say=lambda m: None)
wall = time.perf_counter() - start
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": wall, "peak_rss_mb": peak_kb / 1024, "timings": result.timings,
                  "embedding": result.manifest["embedding"], "labels": len(result.labels),
                  "turns": result.manifest["counts"]["turns_in_window"]}))
"""


def run_child(logs: Path, out: Path, embedder: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(logs), str(out), embedder], capture_output=True,
                          text=True, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embedder", default="use-onnx")
    parser.add_argument("--work", default="/tmp/selflearn-bench")
    parser.add_argument("--diverse", action="store_true", help="a long tail of once-seen texts, as in real traffic")
    args = parser.parse_args()
    from selflearn.sim.worlds import World
    from selflearn.simulate import simulate

    world = World(once_seen_share=DIVERSE_ONCE_SEEN_SHARE) if args.diverse else World()

    rows = []
    for n in args.turns:
        base = Path(args.work) / f"t{n}{'-diverse' if args.diverse else ''}"
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        simulate(base / "sim", turns=n, seed=11, days=7, world=world)
        sim_s = time.perf_counter() - t0
        first = run_child(base / "sim" / "logs", base / "out", args.embedder)
        again = run_child(base / "sim" / "logs", base / "out", args.embedder)
        # one more day: the 8th day of a longer simulation with the same seed, added as a new partition
        simulate(base / "sim8", turns=int(n * 8 / 7), seed=11, days=8, world=world)
        new_day = sorted((base / "sim8" / "logs").glob("day=*"))[-1]
        shutil.copytree(new_day, base / "sim" / "logs" / new_day.name)
        new_day_texts = len({r for r in pq.read_table(next(new_day.glob("*.parquet"))).column("utterance").to_pylist()})
        plus_day = run_child(base / "sim" / "logs", base / "out", args.embedder)
        stage_total = sum(first["timings"].values())
        rows.append({
            "turns": n, "simulate_s": round(sim_s, 1), "wall_s": round(first["wall_s"], 1),
            "turns_per_s": round(n / first["wall_s"]), "peak_rss_mb": round(first["peak_rss_mb"]),
            "embed_share": round(first["timings"]["embed"] / stage_total, 3),
            "non_embedding_share": round(1 - first["timings"]["embed"] / stage_total, 3),
            "unique_texts": first["embedding"]["unique_texts"], "embedded_first": first["embedding"]["embedded"],
            "embed_texts_per_s": round(first["embedding"]["embedded"] / max(first["timings"]["embed"], 1e-9)),
            "embedded_rerun": again["embedding"]["embedded"], "rerun_wall_s": round(again["wall_s"], 1),
            "embedded_plus_one_day": plus_day["embedding"]["embedded"], "new_day_distinct_utterances": new_day_texts,
            "labels": first["labels"], "stage_s": {k: round(v, 2) for k, v in first["timings"].items()},
        })
        print(json.dumps(rows[-1]), flush=True)

    header = ["turns", "wall_s", "turns_per_s", "peak_rss_mb", "embed_share", "unique_texts", "embed_texts_per_s",
              "rerun_wall_s", "embedded_rerun",
              "embedded_plus_one_day", "labels"]
    print("\n" + "  ".join(f"{h:>14}" for h in header))
    for r in rows:
        print("  ".join(f"{r[h]:>14}" for h in header))
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}", "embedder": args.embedder, "diverse": args.diverse,
              "world": world.knobs(), "rows": rows}
    name = "throughput-diverse.json" if args.diverse else "throughput.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

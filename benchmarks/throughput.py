"""End-to-end throughput and scale: wall time per stage, turns/s, peak RSS, embedder share, incrementality.

    .venv/bin/python benchmarks/throughput.py --turns 100000 300000 1000000 --diverse        # default embedder
    .venv/bin/python benchmarks/throughput.py --turns 1000000 --diverse --simulate-only      # logs only, untimed

--diverse simulates text as diverse as real traffic (world knob once_seen_share 0.6: 1 M turns hold ~300 k
distinct texts, most said once) instead of the simulator's default (1 M turns, ~34 k distinct texts).
--embedder defaults to `auto`, i.e. what a user gets with default settings.

For each size: simulate N turns over 7 days and the same world over 8 days (kept under --work and reused
when present, so simulation can happen before the timed part; --simulate-only stops there). Then, each in a
fresh process (so peak RSS is the run's own) on a fresh copy of the 7 days:
  cold   first run, empty embedding cache;
  warm   the same days again (must embed 0 texts);
  +1 day the 8th day added as a new partition (embeds only that day's new texts).
Walls are measured around the whole process (interpreter start and imports included); CPU seconds and the
machine's load average are recorded beside them because the figure is only as good as the machine was idle.
Prints a table and writes benchmarks/results/throughput[-diverse].json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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
SEED = 11

CHILD = r"""
import json, re, resource, sys, time
from pathlib import Path
from selflearn.config import load_config
from selflearn.pipeline import STAGES, PipelineRun

def high_water_mb():
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024

cfg = load_config(overrides={"embedding.backend": sys.argv[3], "run.progress": False})
start = time.perf_counter()
pipeline = PipelineRun(sys.argv[1], sys.argv[2], cfg, say=lambda m: None)
stage_peak_mb = {}
try:
    for name in STAGES:
        # Linux: writing 5 to clear_refs resets the high-water mark, so VmHWM after the stage is its own peak.
        # It resets ru_maxrss too, so the run's peak is the largest stage peak.
        Path("/proc/self/clear_refs").write_text("5")
        pipeline.stage(name)
        stage_peak_mb[name] = round(high_water_mb())
    result = pipeline.result()
finally:
    pipeline.close()
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"run_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                  "peak_rss_mb": max(stage_peak_mb.values()), "stage_peak_mb": stage_peak_mb,
                  "timings": result.timings, "embedding": result.manifest["embedding"],
                  "labels": len(result.labels), "turns": result.manifest["counts"]["turns_in_window"]}))
"""


def run_child(logs: Path, out: Path, embedder: str) -> dict:
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(logs), str(out), embedder], capture_output=True,
                          text=True, env=os.environ | {"TOKENIZERS_PARALLELISM": "false"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"pipeline failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return result | {"wall_s": wall, "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def simulated(base: Path, turns: int, days: int, world) -> Path:
    """Logs of `turns` turns over `days` days under base/sim<days>, simulated once and reused afterwards."""
    from selflearn.simulate import simulate

    folder = base / f"sim{days}"
    stamp = folder / "bench.json"
    want = {"turns": turns, "days": days, "seed": SEED, "world": world.knobs()}
    if not (stamp.exists() and json.loads(stamp.read_text()) == want):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        simulate(folder, turns=turns, seed=SEED, days=days, world=world)
        print(f"simulated {turns:,} turns over {days} days in {time.perf_counter() - started:.0f} s", flush=True)
        stamp.write_text(json.dumps(want))
    return folder / "logs"


def stage_summary(result: dict) -> dict:
    return {k: round(v, 1) for k, v in result["timings"].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embedder", default="auto")
    parser.add_argument("--work", default="/tmp/selflearn-bench")
    parser.add_argument("--diverse", action="store_true", help="a long tail of once-seen texts, as in real traffic")
    parser.add_argument("--simulate-only", action="store_true", help="write (or check) the logs and stop")
    args = parser.parse_args()
    from selflearn.config import load_config
    from selflearn.sim.worlds import World

    world = World(once_seen_share=DIVERSE_ONCE_SEEN_SHARE) if args.diverse else World()
    embedder = load_config(overrides={"embedding.backend": args.embedder}).embedding.backend

    rows = []
    for n in args.turns:
        base = Path(args.work) / f"t{n}{'-diverse' if args.diverse else ''}"
        seven_days = simulated(base, n, 7, world)
        # one more day: the 8th day of a longer simulation with the same seed, added as a new partition
        eight_days = simulated(base, int(n * 8 / 7), 8, world)
        if args.simulate_only:
            continue
        logs, out = base / "run" / "logs", base / "run" / "out"
        shutil.rmtree(base / "run", ignore_errors=True)
        shutil.copytree(seven_days, logs)
        cold = run_child(logs, out, embedder)
        warm = run_child(logs, out, embedder)
        new_day = sorted(eight_days.glob("day=*"))[-1]
        shutil.copytree(new_day, logs / new_day.name)
        new_day_texts = len(set(pq.read_table(new_day, columns=["utterance"]).column("utterance").to_pylist()))
        plus_day = run_child(logs, out, embedder)
        embed_s = cold["timings"]["embed"]
        rows.append({
            "turns": n, "embedder": embedder, "unique_texts": cold["embedding"]["unique_texts"],
            "cold_wall_s": round(cold["wall_s"], 1), "cold_cpu_s": round(cold["cpu_s"], 1),
            "cold_load_avg_1m": cold["load_avg_1m"],
            "turns_per_s": round(n / cold["wall_s"]), "ms_per_1k_turns": round(1e6 * cold["wall_s"] / n, 1),
            "peak_rss_mb": round(max(cold["peak_rss_mb"], warm["peak_rss_mb"], plus_day["peak_rss_mb"])),
            "embed_s": round(embed_s, 1), "embedded_cold": cold["embedding"]["embedded"],
            "embed_texts_per_s": round(cold["embedding"]["embedded"] / max(embed_s, 1e-9)),
            "non_embedding_share_of_wall": round(1 - embed_s / cold["wall_s"], 3),
            "warm_wall_s": round(warm["wall_s"], 1), "embedded_warm": warm["embedding"]["embedded"],
            "plus_day_wall_s": round(plus_day["wall_s"], 1), "embedded_plus_day": plus_day["embedding"]["embedded"],
            "new_day_distinct_utterances": new_day_texts, "labels": cold["labels"],
            "stage_s": {"cold": stage_summary(cold), "warm": stage_summary(warm), "plus_day": stage_summary(plus_day)},
            "stage_peak_mb": {"cold": cold["stage_peak_mb"], "warm": warm["stage_peak_mb"],
                              "plus_day": plus_day["stage_peak_mb"]},
            "load_avg_1m": {"warm": warm["load_avg_1m"], "plus_day": plus_day["load_avg_1m"]},
        })
        print(json.dumps(rows[-1]), flush=True)
    if not rows:
        return 0

    header = ["turns", "unique_texts", "cold_wall_s", "ms_per_1k_turns", "peak_rss_mb", "embed_texts_per_s",
              "non_embedding_share_of_wall", "warm_wall_s", "embedded_warm", "plus_day_wall_s",
              "embedded_plus_day", "labels"]
    print("\n" + "  ".join(f"{h:>14}" for h in header))
    for r in rows:
        print("  ".join(f"{r[h]:>14}" for h in header))
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}", "embedder": embedder, "diverse": args.diverse,
              "world": world.knobs(), "rows": rows}
    name = "throughput-diverse.json" if args.diverse else "throughput.json"
    (RESULTS / name).write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

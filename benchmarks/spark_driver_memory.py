"""Driver memory on Spark: the driver's Python process peak RSS at 1x and 4x the input (issue 17's proof).

    .venv/bin/python benchmarks/spark_driver_memory.py --turns 100000 --scale 4

Simulates N and scale x N turns (kept under --work, reused when present), then runs the whole pipeline on
Spark (--master, default local[2]) once per size, each in its own process with an empty embedding cache and
the fast hashing embedder (the memory proof is about what the driver holds, not about the model). Records the
driver Python process's peak RSS (getrusage of that process alone: the JVM and the Python workers are other
processes) at the end of every stage, so a stage that collects a dataset growing with the input shows as the
step where the peak grows, and the rows each stage collected into the driver (SparkEngine.collected: its largest
collect and all its rows), which says what grows where the peak does not show it. Prints both tables and writes
benchmarks/results/spark_driver_memory-<turns>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_compare import simulate  # noqa: E402  (a sibling script: the same simulated logs, simulated once)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# -- worker: one size, one process ---------------------------------------------------------------------
def run_worker(logs: Path, out: Path, master: str, driver_memory: str) -> dict:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from selflearn import pipeline
    from selflearn.config import load_config
    from selflearn.engines.spark_engine import LOCAL_CONF

    cfg = load_config(None, {"run.engine": "spark", "run.progress": False, "embedding.backend": "hashing",
                             "embedding.cache_dir": str(out.parent / f"{out.name}-cache")})
    builder = SparkSession.builder.master(master).appName("selflearn-driver-memory")
    for key, value in {**LOCAL_CONF, "spark.driver.memory": driver_memory}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / f"{out.name}-cache", ignore_errors=True)
    at_start = peak_rss_mb()
    peaks: dict[str, float] = {}
    current = [None]

    def say(message: str) -> None:
        # "[ n/12] stage ..." starts a stage: the peak so far is the previous stage's
        text = message.strip()
        if text.startswith("[") and text.endswith("..."):
            if current[0] is not None:
                peaks[current[0]] = peak_rss_mb()
            current[0] = text.split("]", 1)[1].split()[0]
            print(f"  {text} (driver peak RSS so far {peak_rss_mb():.0f} MB)", flush=True)

    start = time.perf_counter()
    run = pipeline.PipelineRun(str(logs), out, cfg, say=say, engine_options={"spark": spark})
    engine = run.engine
    result = run.run_all()
    # what each stage brought into the driver (SparkEngine.collected): its largest collect and its total rows
    collected: dict[str, dict[str, int]] = {}
    for record in engine.collected:
        seen = collected.setdefault(record.stage, {"largest_rows": 0, "total_rows": 0, "collects": 0})
        seen["largest_rows"] = max(seen["largest_rows"], record.rows)
        seen["total_rows"] += record.rows
        seen["collects"] += 1
    peaks[current[0]] = peak_rss_mb()
    wall = time.perf_counter() - start
    spark.stop()
    return {"wall_s": round(wall, 1), "peak_rss_mb_after_session_start": at_start,
            "peak_rss_mb_after_stage": peaks, "python_peak_rss_mb": peak_rss_mb(),
            "timings_s": result.manifest["timings_s"], "counts": result.manifest["counts"],
            "collected_by_stage": collected}


# -- parent ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100_000, help="the 1x size (default 100000)")
    parser.add_argument("--scale", type=int, default=4, help="the larger size as a multiple (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g", help="the JVM's heap (not the Python process)")
    parser.add_argument("--work", default="/tmp/selflearn-driver-memory", help="simulated logs and run folders")
    parser.add_argument("--worker", nargs=2, metavar=("LOGS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(run_worker(Path(args.worker[0]), Path(args.worker[1]), args.master,
                                                args.driver_memory)), flush=True)
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    for turns in (args.turns, args.turns * args.scale):
        logs = simulate(turns, args.seed, work)
        print(f"spark {args.master}, {turns} turns ...", flush=True)
        done = subprocess.run([sys.executable, __file__, "--master", args.master, "--driver-memory",
                               args.driver_memory, "--worker", str(logs), str(work / f"run-{turns}")],
                              capture_output=True, text=True, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
        print("\n".join(line for line in done.stdout.splitlines() if not line.startswith("RESULT ")), flush=True)
        if done.returncode != 0:
            sys.exit(f"the {turns}-turn run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        runs[turns] = json.loads(next(line for line in done.stdout.splitlines()
                                      if line.startswith("RESULT "))[len("RESULT "):])

    small, large = runs[args.turns], runs[args.turns * args.scale]
    stages = list(small["peak_rss_mb_after_stage"])
    print(f"\ndriver Python peak RSS (MB) after each stage, {args.turns} vs {args.turns * args.scale} turns")
    print(f"{'stage':<10} {'1x':>8} {f'{args.scale}x':>8} {'ratio':>6}")
    for stage in stages:
        a, b = small["peak_rss_mb_after_stage"][stage], large["peak_rss_mb_after_stage"][stage]
        print(f"{stage:<10} {a:>8.0f} {b:>8.0f} {b / a:>6.2f}")
    ratio = large["python_peak_rss_mb"] / small["python_peak_rss_mb"]
    print(f"{'peak':<10} {small['python_peak_rss_mb']:>8.0f} {large['python_peak_rss_mb']:>8.0f} {ratio:>6.2f}"
          f"   (issue 17 asks <= 1.3)")
    for turns, run in runs.items():
        print(f"{turns} turns: wall {run['wall_s']} s, nodes {run['counts'].get('nodes')}, "
              f"labels {run['counts'].get('weak_labels')}")
    print(f"\nrows collected into the driver per stage (largest collect / all), {args.turns} vs "
          f"{args.turns * args.scale} turns")
    for stage in stages:
        a, b = (r["collected_by_stage"].get(stage, {"largest_rows": 0, "total_rows": 0}) for r in (small, large))
        print(f"{stage:<10} {a['largest_rows']:>8} / {a['total_rows']:<8} {b['largest_rows']:>8} / {b['total_rows']:<8}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"spark_driver_memory-{args.turns}.json"
    target.write_text(json.dumps({
        "date": dt.date.today().isoformat(), "master": args.master, "driver_memory": args.driver_memory,
        "embedder": "hashing", "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(), "peak_ratio": round(ratio, 3), "runs": runs}, indent=2) + "\n")
    print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()

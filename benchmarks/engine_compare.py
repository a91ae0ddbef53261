"""DuckDB vs Spark on the same simulated logs: per-stage wall time from each run's manifest (`timings_s`).

    .venv/bin/python benchmarks/engine_compare.py --turns 100000 --repeat 3
    .venv/bin/python benchmarks/engine_compare.py --turns 1000000 --engines spark --driver-memory 8g

Simulates N turns once (kept under --work, reused when present), then runs the whole pipeline --repeat times
per engine, engines alternating, the table showing each stage's best. Every run is its own process (clean
peak RSS; one engine's warm caches never help the other) with its own empty embedding cache, so both engines
pay for embedding. Spark runs on --master (default local[2]); the JVM start is timed apart from the stages.
Prints a table and writes benchmarks/results/engine_compare-<turns>.json (every run, the best, the machine,
its load and the date).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STAGES = ("ingest", "window", "friction", "pairs", "embed", "rephrase", "nodes", "edges", "variants", "graph",
          "labels", "export")


# -- worker: one engine, one process -----------------------------------------------------------------
def run_worker(engine: str, logs: Path, out: Path, master: str, driver_memory: str, embedder: str) -> dict:
    sys.path.insert(0, str(REPO))
    from selflearn import pipeline
    from selflearn.config import load_config

    cfg = load_config(None, {"run.engine": engine, "run.progress": False, "embedding.backend": embedder})
    options, session_start = {}, 0.0
    if engine == "spark":
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        from pyspark.sql import SparkSession

        from selflearn.engines.spark_engine import LOCAL_CONF

        start = time.perf_counter()
        builder = SparkSession.builder.master(master).appName("selflearn-benchmark")
        for key, value in {**LOCAL_CONF, "spark.driver.memory": driver_memory}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
        session_start = time.perf_counter() - start
        options = {"spark": spark}
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = pipeline.run(str(logs), out, cfg, say=lambda m: print(f"  [{engine}] {m.strip()}", flush=True),
                          engine_options=options)
    wall = time.perf_counter() - start
    if engine == "spark":
        options["spark"].stop()
    return {"engine": engine, "session_start_s": round(session_start, 2), "wall_s": round(wall, 2),
            "timings_s": result.manifest["timings_s"], "counts": result.manifest["counts"],
            "embedding": result.manifest["embedding"],
            # the Python process only; Spark's JVM (driver + local executors) is bounded by --driver-memory
            "python_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "out": str(out)}


# -- parent ------------------------------------------------------------------------------------------
def simulate(turns: int, seed: int, work: Path) -> Path:
    sim = work / f"sim-{turns}-seed{seed}"
    if not (sim / "logs").is_dir():
        print(f"simulating {turns} turns into {sim} ...", flush=True)
        subprocess.run([str(Path(sys.executable).parent / "selflearn"), "simulate", "--out", str(sim),
                        "--turns", str(turns), "--seed", str(seed)], check=True)
    return sim / "logs"


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_gb, 1), "gpu": gpu_name(),
            "platform": platform.platform(), "python": platform.python_version(),
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def gpu_name() -> str:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                              text=True, timeout=10)
        return done.stdout.strip() or "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def versions() -> dict:
    import duckdb
    import pyarrow
    import pyspark

    return {"duckdb": duckdb.__version__, "pyspark": pyspark.__version__, "pyarrow": pyarrow.__version__}


def best_of(runs: list[dict]) -> dict:
    """Per-stage minimum over repeated runs of one engine: on a shared host the least disturbed figure."""
    best = dict(runs[0])
    best["timings_s"] = {stage: min(r["timings_s"][stage] for r in runs) for stage in runs[0]["timings_s"]}
    best["session_start_s"] = min(r["session_start_s"] for r in runs)
    best["wall_s"] = min(r["wall_s"] for r in runs)
    best["of_runs"] = len(runs)
    return best


def print_table(turns: int, runs: list[dict]) -> None:
    names = [r["engine"] for r in runs]
    print(f"\nper-stage wall time, {turns} turns, best of {runs[0]['of_runs']} (seconds; turns/s in brackets)")
    print(f"{'stage':<10}" + "".join(f"{n:>24}" for n in names))
    for stage in STAGES:
        cells = []
        for r in runs:
            s = r["timings_s"].get(stage)
            cells.append("-" if s is None else f"{s:9.2f} ({turns / max(s, 1e-3):>10,.0f})")
        print(f"{stage:<10}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'total':<10}" + "".join(f"{sum(r['timings_s'].values()):>24.2f}" for r in runs))
    print(f"{'jvm start':<10}" + "".join(f"{r['session_start_s']:>24.2f}" for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--engines", default="duckdb,spark")
    parser.add_argument("--embedder", default="use-onnx")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine; the table shows the best")
    parser.add_argument("--work", default="/tmp/selflearn-engine-compare", help="simulated logs and run outputs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--logs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        report = run_worker(args.worker, Path(args.logs), Path(args.out), args.master, args.driver_memory,
                            args.embedder)
        Path(args.result).write_text(json.dumps(report))
        return 0

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    host, started = machine(), dt.datetime.now(dt.timezone.utc)
    logs = simulate(args.turns, args.seed, work)
    engines, all_runs = args.engines.split(","), []
    env = {**os.environ, "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1")}
    for attempt in range(args.repeat):  # engines alternate, so a burst of load on the shared host hits both
        for engine in engines:
            result = work / f"result-{engine}-{args.turns}.json"
            cmd = [sys.executable, __file__, "--worker", engine, "--logs", str(logs),
                   "--out", str(work / f"run-{engine}-{args.turns}"), "--result", str(result),
                   "--master", args.master, "--driver-memory", args.driver_memory, "--embedder", args.embedder]
            print(f"running {engine} ({attempt + 1}/{args.repeat}) ...", flush=True)
            subprocess.run(cmd, check=True, env=env)
            all_runs.append({**json.loads(result.read_text()), "attempt": attempt + 1,
                             "load_avg_after": [round(x, 2) for x in os.getloadavg()]})
    runs = [best_of([r for r in all_runs if r["engine"] == engine]) for engine in engines]
    print_table(args.turns, runs)
    same = len({json.dumps(r["counts"], sort_keys=True) for r in all_runs}) == 1
    print(f"\nmanifest counts equal across engines: {same}")
    report = {"benchmark": "engine_compare", "date": started.date().isoformat(), "turns": args.turns,
              "seed": args.seed, "embedder": args.embedder, "spark_master": args.master,
              "driver_memory": args.driver_memory, "repeat": args.repeat, "machine": host,
              "versions": versions(), "counts_equal": same, "best": runs, "runs": all_runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"engine_compare-{args.turns}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

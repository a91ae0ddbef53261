"""Work per daily run: per-stage seconds of the run that adds day A and of the run that adds day B, medians of
several runs each, from the same state every time (issue 18: "per-stage timings at day 7 and day 28 within 1.5x").

    .venv/bin/python benchmarks/daily_work.py                          # drift world, 120,000 turns over 28 days
    .venv/bin/python benchmarks/daily_work.py --code /tmp/base --json /tmp/base.json   # another checkout's code
    .venv/bin/python benchmarks/daily_work.py --profile-dir /tmp/prof  # plus one cProfile per point

Simulates the drift world once (benchmarks/drift.py's world, seed, embedder and settings), runs the pipeline once
a day into one output folder up to the day before each timed day and keeps a copy of that state (output folder and
the logs so far). Then, --rounds times, for each timed day: restore the copy, add that day's log partition, run and
keep the per-stage wall seconds (the manifest's) and CPU seconds (this process, faiss's and DuckDB's threads
included: less stretched by other jobs than wall time). The first run of the process (it loads the embedder) is
run untimed. A single run on a shared machine swings by 2x, so only the medians are worth comparing; the load
average is recorded with every run. `--code` times another checkout (e.g. `git archive main | tar -x -C
/tmp/base`) on the same world; states are built and kept per code folder. With --append, processes of two
checkouts can take turns so that both meet the same load. Prints JSON lines per run and a Markdown table; writes
--json.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else float("nan")


def build_states(world: Path, work: Path, days: list[int], cfg, pipeline) -> dict[int, Path]:
    """Run one day at a time up to the day before each of `days` (1-based), keeping a copy of the state there."""
    partitions = sorted((world / "logs").glob("day=*"))
    states = {d: work / f"state-before-day{d}" for d in days}
    if all((s / "done").exists() for s in states.values()):
        return states
    out, logs = work / "out", work / "logs"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    for day, partition in enumerate(partitions[:max(days) - 1], start=1):
        shutil.copytree(partition, logs / partition.name)
        pipeline.run(str(logs), out, cfg, say=lambda m: None)
        if day + 1 in states:
            state = states[day + 1]
            shutil.rmtree(state, ignore_errors=True)
            shutil.copytree(out, state / "out", symlinks=True)
            shutil.copytree(logs, state / "logs", symlinks=True)
            (state / "done").touch()
            print(f"  state before day {day + 1} kept", flush=True)
    return states


def timed_run(world: Path, work: Path, state: Path, day: int, cfg, pipeline, profile: Path | None = None) -> dict:
    """Restore `state`, add day `day`'s partition, run; the manifest's per-stage seconds."""
    partition = sorted((world / "logs").glob("day=*"))[day - 1]
    out, logs = work / "out", work / "logs"
    for name, target in (("out", out), ("logs", logs)):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(state / name, target, symlinks=True)
    shutil.copytree(partition, logs / partition.name)
    load = _load_average()
    started = time.perf_counter()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    run = pipeline.PipelineRun(str(logs), out, cfg, say=lambda m: None)
    cpu = {}
    try:
        for name in pipeline.STAGES:
            cpu_start = time.process_time()
            run.stage(name)
            cpu[name] = round(time.process_time() - cpu_start, 3)
        result = run.result()
    finally:
        run.close()
    if profiler:
        profiler.disable()
        profile.parent.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(profile))
    return {"day": day, "load": load, "wall_s": round(time.perf_counter() - started, 3),
            "turns_in_window": result.manifest["counts"]["turns_in_window"],
            "days_recomputed": len(result.manifest["days"]["recomputed"]),
            "stages_s": result.manifest["timings_s"], "stages_cpu_s": cpu, "profiled": profile is not None}


def medians(runs: list[dict], day: int, clock: str = "stages_s") -> dict[str, float]:
    mine = [r[clock] for r in runs if r["day"] == day and not r.get("profiled")]   # cProfile slows a run
    stages = list(mine[0])
    table = {s: statistics.median(r[s] for r in mine) for s in stages}
    table["total"] = statistics.median(sum(r[s] for s in stages) for r in mine)
    return table


def markdown(runs: list[dict], days: list[int]) -> str:
    """Median wall and CPU seconds per stage at both days, and their ratios."""
    a, b = days
    wa, wb = medians(runs, a), medians(runs, b)
    ca, cb = medians(runs, a, "stages_cpu_s"), medians(runs, b, "stages_cpu_s")
    turns = {d: next(r["turns_in_window"] for r in runs if r["day"] == d) for d in days}
    lines = [f"| stage | wall: day {a} ({turns[a]:,} turns in the window) | day {b} ({turns[b]:,}) | ratio "
             f"| CPU: day {a} | day {b} | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for stage in wa:
        lines.append(f"| {stage} | {wa[stage]:.2f} | {wb[stage]:.2f} | {wb[stage] / wa[stage]:.2f} "
                     f"| {ca[stage]:.2f} | {cb[stage]:.2f} | {cb[stage] / ca[stage]:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-daily-work")
    parser.add_argument("--code", default=str(REPO), help="the checkout whose selflearn is timed")
    parser.add_argument("--turns", type=int, default=120_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--embedder", default="use-onnx")
    parser.add_argument("--at", default="7,28", help="the two daily runs to time (1-based)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile-dir", default=None,
                        help="one cProfile per timed day here, in an extra first round left out of the medians")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "daily_work.json"))
    parser.add_argument("--append", action="store_true",
                        help="add to the runs already in --json (same code and world): rounds of several processes, "
                             "interleaved with another checkout's, give medians over all of them")
    args = parser.parse_args()
    code = Path(args.code).resolve()
    sys.path.insert(0, str(code))
    from selflearn import pipeline
    from selflearn.config import load_config
    from selflearn.simulate import simulate

    root = Path(args.root)
    world = root / f"world-s{args.seed}-t{args.turns}-d{args.days}"
    if not (world / "truth" / "drift_texts.parquet").exists():
        simulate(world, turns=args.turns, seed=args.seed, days=args.days, world="drift")
    cfg = load_config(None, {"embedding.backend": args.embedder, "run.progress": False, "run.window_days": 28,
                             "privacy.user_salt": "drift-benchmark",
                             "embedding.cache_dir": str(root / "embedding-cache")})
    days = [int(d) for d in args.at.split(",")]
    work = root / ("work-" + str(code).strip("/").replace("/", "_"))
    states = build_states(world, work, days, cfg, pipeline)
    timed_run(world, work, states[days[0]], days[0], cfg, pipeline)   # loads the embedder: not timed
    runs = []
    if args.append and Path(args.json).exists():
        kept = json.loads(Path(args.json).read_text(encoding="utf-8"))
        if (kept["code"], kept["turns"], kept["seed"], kept["at"]) != (str(code), args.turns, args.seed, days):
            raise SystemExit(f"{args.json} holds runs of other code or another world; not appended")
        runs = kept["runs"]
    for round_ in range(args.rounds + bool(args.profile_dir)):
        for day in days:
            profile = Path(args.profile_dir) / f"day{day}.prof" if args.profile_dir and round_ == 0 else None
            runs.append(timed_run(world, work, states[day], day, cfg, pipeline, profile))
            print(json.dumps(runs[-1]), flush=True)
    table = markdown(runs, days)
    Path(args.json).write_text(json.dumps({
        "code": str(code), "turns": args.turns, "days": args.days, "seed": args.seed, "embedder": args.embedder,
        "at": days, "runs": runs,
        "medians": {str(d): medians(runs, d) for d in days},
        "cpu_medians": {str(d): medians(runs, d, "stages_cpu_s") for d in days},
        "machine": f"{os.cpu_count()} vCPU {platform.machine()}, Python {platform.python_version()}",
        "date": dt.date.today().isoformat()}, indent=2) + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

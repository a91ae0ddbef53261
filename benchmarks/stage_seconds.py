"""One run, stage by stage, in this process: wall and CPU seconds per stage, optionally a cProfile per stage.

    .venv/bin/python benchmarks/stage_seconds.py LOGS OUT [--profile variants,graph,labels,export --prof-dir D]

Run it twice on the same logs and output folder for a warm re-run (the second run embeds nothing and reads
its kNN searches back); on a copy of a finished output folder to time or profile the whole-window stages
(variants, graph, labels, export) without a cold run. CPU seconds are printed beside wall seconds because a
shared machine stretches wall time; they include faiss's and DuckDB's threads. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import time
from pathlib import Path

from selflearn.config import load_config
from selflearn.pipeline import STAGES, PipelineRun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("logs")
    parser.add_argument("out")
    parser.add_argument("--embedder", default="auto")
    parser.add_argument("--profile", default="", help="comma-separated stages to profile")
    parser.add_argument("--prof-dir", default="stage-profiles", help="where <stage>.prof files go")
    args = parser.parse_args()
    profiled = set(filter(None, args.profile.split(",")))
    cfg = load_config(overrides={"embedding.backend": args.embedder, "run.progress": False})
    started = time.perf_counter()
    pipeline = PipelineRun(args.logs, args.out, cfg, say=lambda message: None)
    cpu: dict[str, float] = {}
    try:
        for name in STAGES:
            cpu_start = time.process_time()
            if name in profiled:
                Path(args.prof_dir).mkdir(parents=True, exist_ok=True)
                profile = cProfile.Profile()
                profile.runcall(pipeline.stage, name)
                profile.dump_stats(str(Path(args.prof_dir) / f"{name}.prof"))
            else:
                pipeline.stage(name)
            cpu[name] = round(time.process_time() - cpu_start, 2)
        result = pipeline.result()
    finally:
        pipeline.close()
    print(json.dumps({"wall_s": round(time.perf_counter() - started, 1), "stage_s": result.timings, "stage_cpu_s": cpu,
                      "embedded": result.manifest["embedding"].get("embedded"), "labels": len(result.labels)}))


if __name__ == "__main__":
    main()

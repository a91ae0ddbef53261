"""Ingest at the scale of odd input: peak memory and seconds for many tiny rows in one file, and for many tiny files.

    python benchmarks/ingest_scale.py --root /tmp/ingest-scale                 # 2,000,000 rows; 1,849 files
    python benchmarks/ingest_scale.py --root /tmp/s --rows 200000 --files 200  # a quick look

Each case runs `selflearn.stages.ingest.ingest` in a fresh Python process (so its peak resident memory is its
own, read from the kernel with wait4) over logs written once under --root. Prints one line per case:
rows, files, wall seconds (and CPU seconds: on a shared machine the wall time says more about the neighbours),
peak RSS. Figures go to docs/BENCHMARKS.md with the machine and the date.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CHILD = """
import sys
from pathlib import Path
from selflearn.config import load_config
from selflearn.stages.ingest import ingest
report = ingest(sys.argv[1], Path(sys.argv[2]), load_config(None, {"embedding.backend": "hashing"}))
print(report.totals()["rows_in"])
"""


def tiny_rows(n: int, start: int = 0) -> pa.Table:
    """n minimal contract rows: short ids, one locale, short distinct texts (the worst case per byte)."""
    ids = range(start, start + n)
    return pa.table({
        "event_id": pa.array([f"e{i}" for i in ids]),
        "user_id": pa.array([f"u{i % 5000}" for i in ids]),
        "locale": pa.array(["en-US"] * n).dictionary_encode(),
        "ts": pa.array([T0 + timedelta(seconds=i) for i in ids], pa.timestamp("us", tz="UTC")),
        "utterance": pa.array([f"play song {i}" for i in ids]),
    })


def write_cases(root: Path, rows: int, files: int) -> dict[str, Path]:
    one_file = root / "one_file"
    if not one_file.exists():
        one_file.mkdir(parents=True)
        chunk = 250_000
        with pq.ParquetWriter(one_file / "part-0.parquet", tiny_rows(1).schema) as writer:
            for start in range(0, rows, chunk):
                writer.write_table(tiny_rows(min(chunk, rows - start), start))
    many_files = root / "many_files"
    if not many_files.exists():
        for i in range(files):
            path = many_files / f"day=2026-11-{1 + i % 28:02d}" / f"part-{i:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(tiny_rows(3, 3 * i), path)
    return {"one_file": one_file, "many_files": many_files}


def run_case(logs: Path, out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(logs), str(out)], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    rows = child.stdout.read().strip()
    child.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ingest of {logs} failed (exit {os.waitstatus_to_exitcode(status)})")
    return {"rows": int(rows), "seconds": round(seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path, help="logs are written here once and reused")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--files", type=int, default=1_849)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    cases = write_cases(args.root / f"logs-{args.rows}-{args.files}", args.rows, args.files)
    results = {}
    for name, logs in cases.items():
        files = sum(1 for _ in logs.rglob("*.parquet"))
        size_mb = sum(p.stat().st_size for p in logs.rglob("*.parquet")) / 2**20
        results[name] = {"files": files, "input_mb": round(size_mb, 1), **run_case(logs, args.root / f"out-{name}")}
        print(f"{name:10}  {results[name]['rows']:>9,} rows  {files:>5,} files  {size_mb:6.1f} MB in  "
              f"{results[name]['seconds']:6.1f} s ({results[name]['cpu_seconds']:.1f} s CPU)  "
              f"peak RSS {results[name]['peak_rss_mb']:,} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} CPUs",
                                         "python": platform.python_version(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

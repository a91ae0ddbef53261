"""Whether two output folders published the same run: every file of the published run compared.

    .venv/bin/python benchmarks/compare_outputs.py OUT_A OUT_B

Parquet files are compared as tables (schema and values, so equal data written twice compares equal);
JSON, JSONL and text by bytes; the manifest without `timings_s`; the catalog by its view names; the report
(it prints the timings) and the run id (`_COMPLETE`) are not compared. Used to check that code meant to be
faster gives the outputs of the code before it: run both on copies of one output folder, then compare.
Prints one line per difference and a count; exits 1 when anything differs.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

NOT_COMPARED = {"_COMPLETE": "the run id", "report.html": "holds the timings"}


def published(out: Path) -> Path:
    current = out / ".current"
    return Path(os.path.realpath(current)) if current.is_symlink() else out


def views(catalog: Path) -> list[str]:
    with duckdb.connect(str(catalog), read_only=True) as con:
        return [row[0] for row in con.sql("select view_name from duckdb_views() where not internal order by 1")
                .fetchall()]


def same(a: Path, b: Path) -> bool:
    if a.suffix == ".parquet":
        return pq.read_table(a).equals(pq.read_table(b))
    if a.name == "manifest.json":
        ma, mb = json.loads(a.read_text()), json.loads(b.read_text())
        return {k: v for k, v in ma.items() if k != "timings_s"} == {k: v for k, v in mb.items() if k != "timings_s"}
    if a.suffix == ".duckdb":
        return views(a) == views(b)
    return a.read_bytes() == b.read_bytes()


def main() -> int:
    a, b = (published(Path(p)) for p in sys.argv[1:3])
    files_a = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and p.name not in NOT_COMPARED}
    files_b = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and p.name not in NOT_COMPARED}
    differ = [f"only in one: {rel}" for rel in sorted(files_a ^ files_b)]
    differ += [f"different: {rel}" for rel in sorted(files_a & files_b) if not same(a / rel, b / rel)]
    for line in differ:
        print(line)
    print(f"{len(files_a & files_b)} files compared, {len(differ)} differences")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())

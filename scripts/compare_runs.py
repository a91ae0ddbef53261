"""Compare two `selflearn run` output folders: are the outputs the same?

    python scripts/compare_runs.py BEFORE_OUT AFTER_OUT

For a refactoring that must not change results (issue #14): run the same command from the old and the new
commit into two folders, then compare. Every Parquet file (published outputs, work/, curated/, quarantine/)
is compared row for row after sorting every row (Parquet metadata and row group layout may differ); the
MASSIVE JSONL files, the dataset card and the ingest ledger byte for byte, with each folder's own path
written as <out>; eval.json as parsed JSON without wall times (`seconds`); manifest.json as parsed JSON without the
keys that record wall time (`timings_s`) or that only the newer layout writes (`outputs`, `stages`); report.html byte
for byte once the timings table is cut out; catalog.duckdb by its view names and each view's row count (the
views name absolute paths of their own run folder, which differ by design). The embedding cache is skipped.
Exit status 0 when everything matches, 1 with one line per difference otherwise.

The two runs must share the user-key salt (else every user key differs): copy BEFORE_OUT/.selflearn-salt
into the new folder before the second run, e.g.

    mkdir after && cp before/.selflearn-salt after/
    python -m selflearn run --logs sample_logs/logs --out after --truth sample_logs/truth
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

SKIPPED_FOLDERS = ("cache",)
MANIFEST_KEYS_IGNORED = ("timings_s", "outputs", "stages")
EVAL_KEYS_IGNORED = ("seconds",)  # the closed loop's wall time
_TIMINGS = re.compile(r"<h2[^>]*>Timings</h2>.*?</table>", re.S)


def files_of(out: Path) -> dict[str, Path]:
    """Relative name -> file, the published links followed (`training/` -> `.current/training/`); hidden
    entries (.runs/, .current, the lock and the salt) and the embedding cache are left out."""
    found = {}
    for folder, dirs, files in os.walk(out, followlinks=True):
        rel_folder = Path(folder).relative_to(out)
        dirs[:] = [d for d in dirs if not d.startswith(".") and not (rel_folder == Path(".") and d in SKIPPED_FOLDERS)]
        for name in files:
            if not name.startswith("."):
                found[(rel_folder / name).as_posix()] = Path(folder) / name
    return dict(sorted(found.items()))


def sorted_rows(path: Path) -> list:
    table = pq.read_table(path)
    return sorted((json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist())), table.schema


def compare_parquet(a: Path, b: Path) -> str | None:
    rows_a, schema_a = sorted_rows(a)
    rows_b, schema_b = sorted_rows(b)
    if not schema_a.equals(schema_b):
        return f"schema differs: {schema_a} vs {schema_b}"
    if rows_a != rows_b:
        first = next((i for i, (x, y) in enumerate(zip(rows_a, rows_b)) if x != y), min(len(rows_a), len(rows_b)))
        return f"rows differ ({len(rows_a)} vs {len(rows_b)} rows; first difference at sorted row {first})"
    return None


def compare_manifest(a: Path, b: Path) -> str | None:
    def load(p: Path) -> dict:
        manifest = json.loads(p.read_text(encoding="utf-8"))
        return {k: v for k, v in manifest.items() if k not in MANIFEST_KEYS_IGNORED}
    left, right = load(a), load(b)
    keys = [k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)]
    return f"manifest keys differ: {keys}" if keys else None


def _without(value, keys: tuple[str, ...]):
    if isinstance(value, dict):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [_without(v, keys) for v in value]
    return value


def compare_eval(a: str, b: str) -> str | None:
    left, right = (_without(json.loads(t), EVAL_KEYS_IGNORED) for t in (a, b))
    return None if left == right else "eval.json differs (outside wall times)"


def compare_report(a: str, b: str) -> str | None:
    cut = [_TIMINGS.sub("", text) for text in (a, b)]
    return None if cut[0] == cut[1] else "report.html differs (outside the timings table)"


def catalog_summary(path: Path) -> dict[str, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        views = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal "
                                           "order by view_name").fetchall()]
        return {v: con.execute(f'select count(*) from "{v}"').fetchone()[0] for v in views}
    finally:
        con.close()


def compare_catalog(a: Path, b: Path) -> str | None:
    left, right = catalog_summary(a), catalog_summary(b)
    return None if left == right else f"catalog views or row counts differ: {left} vs {right}"


def _text(path: Path, out: Path) -> str:
    """A file's text with its own output folder's path written as <out> (eval.json names the run folder)."""
    return path.read_text(encoding="utf-8").replace(str(out.resolve()), "<out>").replace(str(out), "<out>")


def compare(before: Path, after: Path) -> list[str]:
    a, b = files_of(before), files_of(after)
    problems = [f"only in {before}: {n}" for n in sorted(set(a) - set(b))]
    problems += [f"only in {after}: {n}" for n in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        if name.endswith(".parquet"):
            why = compare_parquet(a[name], b[name])
        elif name == "eval.json":
            why = compare_eval(_text(a[name], before), _text(b[name], after))
        elif name == "manifest.json":
            why = compare_manifest(a[name], b[name])
        elif name == "report.html":
            why = compare_report(_text(a[name], before), _text(b[name], after))
        elif name.endswith(".duckdb"):
            why = compare_catalog(a[name], b[name])
        elif name.endswith((".json", ".jsonl", ".md", ".txt")):
            why = None if _text(a[name], before) == _text(b[name], after) else "bytes differ (output folder named <out>)"
        else:
            why = None if a[name].read_bytes() == b[name].read_bytes() else "bytes differ"
        if why:
            problems.append(f"{name}: {why}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = Path(argv[0]), Path(argv[1])
    problems = compare(before, after)
    compared = len(set(files_of(before)) & set(files_of(after)))
    for line in problems:
        print(line)
    print(f"{compared} files compared: " + ("identical" if not problems else f"{len(problems)} difference(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    pa.set_cpu_count(1)
    raise SystemExit(main(sys.argv[1:]))

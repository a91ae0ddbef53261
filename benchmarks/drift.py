"""After launch: how fast a new failing phrasing gets a label, how fast a fixed one loses it, and whether labels flip.

    .venv/bin/python benchmarks/drift.py [--days 14] [--turns 60000] [--seed 11] [--embedder use-onnx]
    .venv/bin/python benchmarks/drift.py --days 28 --turns 120000     # the same daily traffic over 28 days
    .venv/bin/python benchmarks/drift.py --world clinc --turns 40000  # the CLINC150 world, retrained on day 6

Simulates the drift world (selflearn/sim/worlds.py: new entities and wordings from day 3, an NLU retrained on
day 6, hi-IN launching on day 4) and runs the pipeline once a day into one --out, as a daily deployment would:
run d sees the log partitions of days 0..d (the window grows; --window-days makes it slide). `--world clinc`
mines the CLINC150 world instead (selflearn/sim/clinc_world.py, one en-US locale, nothing emerges): its NLU is a
real few-shot classifier, retrained on --retrain-day on --retrain-extra more queries per intent, so a real
classifier decides which texts the retraining fixes (in the drift world each text is fixed by its own coin flip:
the worst case for borrowing a neighbour's evidence). From the runs'
training sets, their private lifecycle state (work/label_lifecycle.parquet) and the world's truth
(truth/drift_texts.parquet) it reports:
- latency: for new failing phrasings (emerging entity or wording, wrong under the first NLU) said by at least
  --min-daily-users distinct users a day on average before the retrain, the days from the text's first
  appearance to the first run whose training set holds it with its true intent (never: counted as infinite);
- retirement: of the labels live before the retrain whose text the retraining fixed, the share retired by the
  run on the --retire-within-th day the retrained NLU serves (day 6 counts as the first), overall and among
  texts said often enough in those days for the lifecycle to see the fix (and, apart, labels retired whose
  text still fails); and, for the labels whose text was not said at all in those days, how many were fixed and
  how many still fail, overall and where neighbours (same locale and intent) lend evidence;
- flips: labels whose state left and came back (live -> retired -> live), and labels that left the training
  set and came back;
- per-stage timings of every daily run, with the days each run computed and reused (stages/daily.py: a daily run
  computes the new day and the day before it), and the two runs of --timing-days side by side (default: the 7th
  and the last).
Writes benchmarks/results/drift.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout's selflearn, not an installed one
from selflearn import pipeline  # noqa: E402
from selflearn.config import load_config  # noqa: E402
from selflearn.embedders import get_embedder, thresholds_for  # noqa: E402
from selflearn.sim.clinc_world import RETRAIN_EXTRA, build_clinc_world  # noqa: E402
from selflearn.sim.worlds import WORLDS  # noqa: E402
from selflearn.simulate import simulate  # noqa: E402
from selflearn.text import match_key  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
WORLD = WORLDS["drift"]
LIVE = ("new", "confirmed")
KEY, LABEL = ["locale", "utt_norm"], ["locale", "utt_norm", "intent"]
SIMILAR_STRICT = 0.9   # a second, stricter closeness for borrowed evidence than the embedder's variant threshold


def simulate_once(root: Path, turns: int, seed: int, days: int) -> Path:
    path = root / f"world-s{seed}-t{turns}-d{days}"
    if not (path / "truth" / "drift_texts.parquet").exists():
        simulate(path, turns=turns, seed=seed, days=days, world="drift")
    return path


def clinc_once(root: Path, turns: int, seed: int, days: int, retrain_day: int, retrain_extra: int) -> Path:
    path = root / f"clinc-s{seed}-t{turns}-d{days}-r{retrain_day}x{retrain_extra}"
    if not (path / "truth" / "drift_texts.parquet").exists():
        summary = build_clinc_world(path, seed=seed, turns=turns, days=days, retrain_day=retrain_day,
                                    retrain_extra=retrain_extra)
        print(f"  CLINC world: classifier error {summary['classifier_error']:.1%} -> "
              f"{summary['retrained_classifier_error']:.1%} after the retrain; of {summary['texts_said']} texts said, "
              f"{summary['texts_fixed_by_retrain']} fixed and {summary['texts_broken_by_retrain']} broken")
    return path


def run_daily(world: Path, out: Path, cfg, say=print) -> list[dict]:
    """One pipeline run per day into `out`; per run: day index, manifest timings, emitted labels, lifecycle state."""
    shutil.rmtree(out, ignore_errors=True)
    logs = out.parent / f"{out.name}-logs"
    shutil.rmtree(logs, ignore_errors=True)
    states = out.parent / f"{out.name}-states"
    shutil.rmtree(states, ignore_errors=True)
    runs = []
    for day, partition in enumerate(sorted((world / "logs").glob("day=*"))):
        shutil.copytree(partition, logs / partition.name)   # today's file lands beside the earlier days'
        result = pipeline.run(str(logs), out, cfg, say=lambda m: None)
        states.mkdir(parents=True, exist_ok=True)   # every run's state, for analyses after the benchmark
        shutil.copyfile(out / "work" / "label_lifecycle.parquet", states / f"{partition.name}.parquet")
        runs.append({"day": day, "as_of": partition.name.removeprefix("day="),
                     "timings": result.manifest["timings_s"],
                     "turns_in_window": result.manifest["counts"]["turns_in_window"],
                     "days_recomputed": len(result.manifest["days"]["recomputed"]),
                     "days_reused": result.manifest["days"]["reused"],
                     "labels": pd.read_parquet(out / "training" / "parquet")[LABEL],
                     "state": pd.read_parquet(out / "work" / "label_lifecycle.parquet")[
                         [*LABEL, "state", "reason", "pending_intent"]]})
        say(f"  day {day:>2}: {runs[-1]['turns_in_window']} turns, {len(runs[-1]['labels'])} labels, "
            f"{sum(result.manifest['timings_s'].values()):.1f}s, days computed {runs[-1]['days_recomputed']} "
            f"reused {runs[-1]['days_reused']}")
    return runs


def daily_users(world: Path) -> pd.DataFrame:
    """(locale, utt_norm, day index) -> distinct users and events that day."""
    logs = pd.concat(pd.read_parquet(f, columns=["user_id", "locale", "ts", "utterance"])
                     for f in sorted((world / "logs").glob("day=*/*.parquet")))
    start = logs["ts"].min().normalize()
    logs["day"] = (logs["ts"].dt.normalize() - start).dt.days
    logs["utt_norm"] = logs["utterance"].map(match_key)
    return logs.groupby([*KEY, "day"]).agg(users=("user_id", "nunique"), events=("user_id", "size")).reset_index()


def truth_texts(world: Path) -> pd.DataFrame:
    """One row per (locale, utt_norm) of the world's text truth, with the day index it first appeared."""
    texts = pd.read_parquet(world / "truth" / "drift_texts.parquet")
    texts["utt_norm"] = texts["utterance"].map(match_key)
    start = texts["first_day"].min()
    texts["first_day_index"] = [(d - start).days for d in texts["first_day"]]
    # several display texts can share a matching key: the earliest says when the key appeared
    texts = texts.sort_values([*KEY, "first_day_index"], kind="stable").drop_duplicates(KEY)
    return texts.reset_index(drop=True)


def label_latency(runs: list[dict], texts: pd.DataFrame, users: pd.DataFrame, min_daily_users: float,
                  retrain_day: int) -> dict:
    """Days from first appearance to a correct label for new failing phrasings used by enough users a day."""
    new_failing = texts[texts["emerging"].notna() & ~texts["old_nlu_correct"]]
    before_retrain = users[users["day"] < retrain_day].merge(new_failing[[*KEY, "first_day_index"]], on=KEY)
    before_retrain = before_retrain[before_retrain["day"] >= before_retrain["first_day_index"]]
    days_live = (retrain_day - new_failing.set_index(KEY)["first_day_index"]).clip(lower=1)
    mean_users = before_retrain.groupby(KEY)["users"].sum() / days_live.reindex(
        before_retrain.groupby(KEY).size().index)
    busy = new_failing.set_index(KEY).loc[mean_users[mean_users >= min_daily_users].index].reset_index()
    first_correct = {}
    for run in runs:
        hit = run["labels"].merge(busy[[*KEY, "true_intent"]].rename(columns={"true_intent": "intent"}), on=LABEL)
        for key in zip(hit["locale"], hit["utt_norm"]):
            first_correct.setdefault(key, run["day"])
    latency = [first_correct.get(k, math.inf) - d for k, d in zip(zip(busy["locale"], busy["utt_norm"]),
                                                                  busy["first_day_index"])]
    series = pd.Series(latency, dtype="float64")
    by_kind = {}
    for name, mask in (("fixed_by_retrain", busy["fixed_by_retrain"]), ("still_failing", ~busy["fixed_by_retrain"])):
        part = series[mask.to_numpy()]
        by_kind[name] = {"phrasings": int(len(part)), "median_days": _median(part),
                         "labelled": int(part.lt(math.inf).sum())}
    return {"phrasings": int(len(series)), "median_days": _median(series),
            "labelled_correctly": int(series.lt(math.inf).sum()),
            "within_2_days": int(series.le(2).sum()),
            "histogram": {str(k): int(v) for k, v in series.replace(math.inf, -1).value_counts().sort_index().items()},
            "by_kind": by_kind}


def _median(series: pd.Series):
    if not len(series):
        return None
    value = float(series.median())
    return None if math.isinf(value) else value


def retirement(runs: list[dict], texts: pd.DataFrame, users: pd.DataFrame, within_days: int,
               min_recent_events: int, retrain_day: int, embed=None, min_cosines: tuple = ()) -> dict:
    """Of the labels live on the last run before the retrain whose text the retraining fixed: how many are
    retired by each day after the retrain, overall and among those said at least `min_recent_events` times in
    the `within_days` days from the retrain (enough for the lifecycle to see the fix); and how many labels whose
    text still fails were retired."""
    by_day = {r["day"]: r for r in runs}
    before = by_day[retrain_day - 1]["state"]
    live = before[before["state"].isin(LIVE)].merge(
        texts[[*KEY, "old_nlu_correct", "fixed_by_retrain", "retrained_nlu_correct"]], on=KEY, how="left")
    said = users[users["day"].between(retrain_day, retrain_day + within_days - 1)]
    said = said.groupby(KEY)["events"].sum().rename("events_after_retrain").reset_index()
    live = live.merge(said, on=KEY, how="left").fillna({"events_after_retrain": 0})
    fixed = live[live["fixed_by_retrain"].eq(True)]
    seen = fixed[fixed["events_after_retrain"] >= min_recent_events]
    still_failing = live[live["retrained_nlu_correct"].eq(False)]
    curves = {"fixed": {}, "fixed_and_said_enough": {}, "still_failing": {}}
    for day in sorted(d for d in by_day if d >= retrain_day):
        state = by_day[day]["state"]
        retired = state[state["state"] == "retired"][LABEL]
        for name, group in (("fixed", fixed), ("fixed_and_said_enough", seen), ("still_failing", still_failing)):
            curves[name][str(day - retrain_day)] = int(len(group.merge(retired, on=LABEL)))

    # why labels whose text still fails were retired by the within-th day: relabeled (another interpretation
    # won) or "the NLU now handles it" (a wrong retirement)
    last = by_day.get(retrain_day + within_days - 1, runs[-1])["state"]
    gone = still_failing[LABEL].merge(last[last["state"] == "retired"][[*LABEL, "reason"]], on=LABEL)
    why = gone["reason"].str.split(":").str[0].str.replace(r"relabeled to .*", "relabeled", regex=True)

    borrowed = neighbour_evidence(live, last, embed, min_cosines)
    if embed is not None:
        borrowed["nearest_neighbour_truth"] = nearest_neighbour_truth(live, embed, min_cosines)

    def share(name: str, group: pd.DataFrame):
        within = curves[name].get(str(within_days - 1))   # the run on the within_days-th day of the new NLU
        return None if within is None or not len(group) else round(within / len(group), 3)
    return {"labels_whose_text_the_retrain_fixed": int(len(fixed)),
            "retired_by_day_after_retrain": curves["fixed"], "share_retired_within": share("fixed", fixed),
            "of_those_said_enough_after_retrain": int(len(seen)),
            "said_enough_retired_by_day": curves["fixed_and_said_enough"],
            "said_enough_share_retired_within": share("fixed_and_said_enough", seen),
            "labels_whose_text_still_fails": int(len(still_failing)),
            "of_those_retired_by_day_after_retrain": curves["still_failing"],
            "of_those_retired_within_by_reason": {k: int(v) for k, v in why.value_counts().sort_index().items()},
            "precision_within": precision(curves, within_days),
            "not_said_after_retrain": borrowed}


def precision(curves: dict, within_days: int):
    """Of the labels retired by the within_days-th day of the new NLU whose text the retraining either fixed or
    left failing: the share fixed (relabels of still-failing texts count against it)."""
    day = str(within_days - 1)
    fixed, failing = curves["fixed"].get(day), curves["still_failing"].get(day)
    return None if fixed is None or not (fixed + failing) else round(fixed / (fixed + failing), 3)


def neighbour_evidence(live: pd.DataFrame, last: pd.DataFrame, embed=None, min_cosines: tuple = ()) -> dict:
    """Could neighbours lend evidence to the labels whose text was not said at all in the days after the retrain?
    Of those labels, how many the retraining fixed and how many still fail: overall, and among those whose
    neighbours (the other labels of the same locale and intent live before the retrain) were all said and read
    right, i.e. retired by reading, with at least one such neighbour and none said and still live; with `embed`
    (texts -> unit vectors), the same among neighbours whose text is also at least each of `min_cosines` close
    (the pipeline's same-locale variant threshold is the principled one: the cosine above which 90 % of nearest
    neighbours share an intent). A rule that borrows is only as precise as these splits: the guard (no label
    retired whose text still fails) needs them near 100 % fixed."""
    by_reading = last[(last["state"] == "retired") & last["reason"].str.startswith("the NLU now handles it")][LABEL]
    said = live[live["events_after_retrain"] > 0].merge(by_reading.assign(read_right=True), on=LABEL, how="left")
    said["read_right"] = said["read_right"].eq(True)
    unsaid = live[live["events_after_retrain"] == 0]
    pairs = unsaid[LABEL].merge(said[[*LABEL, "read_right"]], on=["locale", "intent"], suffixes=("", "_said"))

    def lent(neighbours: pd.DataFrame) -> pd.DataFrame:
        votes = neighbours.groupby(LABEL).agg(read_right=("read_right", "sum"),
                                              not_yet=("read_right", lambda s: int((~s).sum())))
        votes = votes[(votes["read_right"] >= 1) & (votes["not_yet"] == 0)].reset_index()
        return unsaid.merge(votes[LABEL], on=LABEL)

    def split(frame: pd.DataFrame) -> dict:
        return {"labels": int(len(frame)), "fixed": int(frame["fixed_by_retrain"].eq(True).sum()),
                "still_failing": int(frame["retrained_nlu_correct"].eq(False).sum())}
    out = {"all": split(unsaid), "every_said_neighbour_read_right": split(lent(pairs))}
    if embed is not None and len(pairs):
        texts = sorted(set(pairs["utt_norm"]) | set(pairs["utt_norm_said"]))
        vectors = dict(zip(texts, embed(texts)))
        pairs["cosine"] = [float(vectors[a] @ vectors[b]) for a, b in zip(pairs["utt_norm"], pairs["utt_norm_said"])]
        for cosine in min_cosines:
            out[f"every_said_neighbour_above_{cosine:g}_read_right"] = split(lent(pairs[pairs["cosine"] >= cosine]))
    return out


def nearest_neighbour_truth(live: pd.DataFrame, embed, min_cosines: tuple) -> dict:
    """The ceiling of any rule that borrows from neighbours, from the truth rather than the lifecycle: of the labels
    live before the retrain whose text the first NLU misread, with their nearest other such label of the same
    locale and intent (by embedding) at least each cosine close, how often the label's text was fixed when the
    neighbour's was and when it was not. Independent fixes (the drift world's coin flips) give the same share
    both ways; a classifier that fixes similar phrasings together gives a gap."""
    misread = live[live["old_nlu_correct"].eq(False)].reset_index(drop=True)
    if len(misread) < 2:
        return {}
    vectors = embed(misread["utt_norm"].tolist())
    fixed = misread["fixed_by_retrain"].eq(True).to_numpy()
    own, theirs, cosine = [], [], []
    for _, group in misread.groupby(["locale", "intent"]):
        rows = group.index.to_numpy()
        if len(rows) < 2:
            continue
        sims = vectors[rows] @ vectors[rows].T
        np.fill_diagonal(sims, -np.inf)
        nearest = sims.argmax(axis=1)
        own += fixed[rows].tolist()
        theirs += fixed[rows[nearest]].tolist()
        cosine += sims[np.arange(len(rows)), nearest].tolist()
    pairs = pd.DataFrame({"fixed": own, "neighbour_fixed": theirs, "cosine": cosine})
    out = {}
    for least in (0.0, *min_cosines):
        close = pairs[pairs["cosine"] >= least]
        out[f"cosine_at_least_{least:g}"] = {
            "labels": int(len(close)),
            "neighbour_fixed": [int(close.loc[close["neighbour_fixed"], "fixed"].sum()),
                                int(close["neighbour_fixed"].sum())],
            "neighbour_not_fixed": [int(close.loc[~close["neighbour_fixed"], "fixed"].sum()),
                                    int((~close["neighbour_fixed"]).sum())]}
    return out


def flips(runs: list[dict]) -> dict:
    """Labels whose lifecycle state went live -> retired -> live, and labels that left the training set and
    came back, across consecutive runs."""
    states = pd.concat(r["state"].assign(day=r["day"]) for r in runs)
    states["live"] = states["state"].isin(LIVE)
    in_training = pd.concat(r["labels"].assign(day=r["day"]) for r in runs)
    days = [r["day"] for r in runs]
    grid = pd.MultiIndex.from_product([in_training[LABEL].drop_duplicates().itertuples(index=False), days])
    present = pd.Series(False, index=grid)
    present.loc[list(zip(in_training[LABEL].itertuples(index=False), in_training["day"]))] = True
    sequences = present.groupby(level=0).apply(list)
    flipped = [label for label, seq in sequences.items() if _returns(pd.Series([seq]))]
    # why a label was missing from the training set on a run between two runs that had it
    why = {}
    for label in flipped:
        seq = sequences[label]
        first, last = seq.index(True), len(seq) - 1 - seq[::-1].index(True)
        for day in (days[i] for i in range(first, last) if not seq[i]):
            row = states[(states["day"] == day) & (states[LABEL].apply(tuple, axis=1) == tuple(label))]
            reason = ("no state" if row.empty else "retired" if not row["live"].iloc[0]
                      else "contested" if isinstance(row["pending_intent"].iloc[0], str) else "labeler abstained")
            why[reason] = why.get(reason, 0) + 1
    return {"state_flips": _returns(states.sort_values("day").groupby(LABEL)["live"].apply(list)),
            "training_set_flips": len(flipped), "training_set_gap_runs_by_reason": why}


def _returns(sequences: pd.Series) -> int:
    """Sequences of booleans that go True -> False -> True somewhere."""
    def back_and_forth(seq):
        s = "".join("1" if v else "0" for v in seq).lstrip("0")
        return "10" in s and "1" in s[s.index("10") + 2:]
    return int(sum(back_and_forth(seq) for seq in sequences))


def timings(runs: list[dict], days: list[int]) -> dict:
    by_day = {r["day"] + 1: r for r in runs}   # "day 7" is the seventh daily run
    return {str(d): {"turns_in_window": by_day[d]["turns_in_window"], "stages_s": by_day[d]["timings"],
                     "days_recomputed": by_day[d]["days_recomputed"], "days_reused": by_day[d]["days_reused"],
                     "total_s": round(sum(by_day[d]["timings"].values()), 2)} for d in days if d in by_day}


def timings_per_day(runs: list[dict]) -> dict:
    """Every daily run: turns in the window, days computed and reused, seconds per stage and in all."""
    return {str(r["day"] + 1): {"turns_in_window": r["turns_in_window"], "days_recomputed": r["days_recomputed"],
                                "days_reused": r["days_reused"], "stages_s": r["timings"],
                                "total_s": round(sum(r["timings"].values()), 2)} for r in runs}


def markdown(result: dict) -> str:
    lat, ret, fl, tim = result["latency"], result["retirement"], result["flips"], result["timings"]
    share = ret["share_retired_within"]
    na = ret["not_said_after_retrain"]
    nl = na["every_said_neighbour_read_right"]
    pct = lambda v: "n/a" if v is None else f"{100 * v:.0f} %"  # noqa: E731
    fmt = lambda v: "never (median)" if v is None else f"{v:g}"  # noqa: E731
    lines = ["| measure | target | measured |", "|---|---|---:|",
             f"| median days to a correct label, new failing phrasings with >= {result['config']['min_daily_users']} "
             f"users/day ({lat['phrasings']}; {lat['labelled_correctly']} labelled) | <= 2 | {fmt(lat['median_days'])} |",
             f"| labels whose text the retraining fixed, retired within {result['config']['retire_within_days']}"
             f" days ({ret['labels_whose_text_the_retrain_fixed']}) | >= 90 % | {pct(share)} |",
             f"| of those, texts said >= 3 times in those days ({ret['of_those_said_enough_after_retrain']}) | - | "
             f"{pct(ret['said_enough_share_retired_within'])} |",
             f"| precision: of the labels retired in those days, whose text was fixed (vs still failing) | - | "
             f"{pct(ret['precision_within'])} |",
             f"| labels whose text the retrained NLU still gets wrong ({ret['labels_whose_text_still_fails']}), retired "
             f"within those days by reason | 0 by 'the NLU now handles it' | "
             f"{ret['of_those_retired_within_by_reason'] or 0} |",
             "| labels not said in those days, fixed / still failing: all; where every said neighbour of the "
             "same locale and intent was read right | - | "
             f"{na['all']['fixed']} / {na['all']['still_failing']}; "
             f"{nl['fixed']} / {nl['still_failing']} |",
             *[f"| of those, every said neighbour of the same intent with cosine >= {key.split('_')[4]} read right "
               f"| - | {v['fixed']} / {v['still_failing']} |" for key, v in na.items() if "_above_" in key],
             f"| labels whose state flipped back and forth | 0 | {fl['state_flips']} |",
             f"| labels that left the training set and came back | - | {fl['training_set_flips']} |"]
    for key, v in na.get("nearest_neighbour_truth", {}).items():
        (a, n), (b, m) = v["neighbour_fixed"], v["neighbour_not_fixed"]
        lines.append(f"| truth: labels misread before the retrain, nearest same-intent label {key.replace('_', ' ')}"
                     f" ({v['labels']}): fixed when it was fixed / when it was not | - | {a}/{n}; {b}/{m} |")
    if len(tim) == 2:
        (a, ta), (b, tb) = tim.items()
        lines += ["", f"| stage | day {a} ({ta['turns_in_window']} turns, {ta['days_recomputed']} days computed) s"
                      f" | day {b} ({tb['turns_in_window']} turns, {tb['days_recomputed']} days computed) s"
                      f" | ratio |", "|---|---:|---:|---:|"]
        for stage in ta["stages_s"]:
            x, y = ta["stages_s"][stage], tb["stages_s"].get(stage, 0.0)
            lines.append(f"| {stage} | {x:.2f} | {y:.2f} | {y / x if x else float('nan'):.2f} |")
        lines.append(f"| total | {ta['total_s']:.2f} | {tb['total_s']:.2f} | {tb['total_s'] / ta['total_s']:.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", choices=("drift", "clinc"), default="drift",
                        help="drift: the simulator's drift world (a retrain fixes each text by its own draw); "
                             "clinc: the CLINC150 world whose retrain is a real classifier's")
    parser.add_argument("--retrain-day", type=int, default=WORLD.retrain_day,
                        help="clinc world only: the day the retrained NLU starts serving (the drift world's: 6)")
    parser.add_argument("--retrain-extra", type=int, default=RETRAIN_EXTRA,
                        help="clinc world only: queries per intent the retrained NLU learns beyond the seed")
    parser.add_argument("--root", default="/tmp/selflearn-drift")
    parser.add_argument("--turns", type=int, default=60_000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--embedder", default="use-onnx")
    parser.add_argument("--window-days", type=int, default=28, help="28 (default): the window grows over the run")
    parser.add_argument("--min-daily-users", type=float, default=3.0)
    parser.add_argument("--retire-within", type=int, default=3)
    parser.add_argument("--timing-days", default=None, help="two daily runs to compare (default: 7 and the last)")
    parser.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "drift.json"))
    args = parser.parse_args()
    root = Path(args.root)
    if args.world == "clinc":
        retrain_day = args.retrain_day
        world = clinc_once(root, args.turns, args.seed, args.days, retrain_day, args.retrain_extra)
        knobs = {"retrain_day": retrain_day, "retrain_extra": args.retrain_extra,
                 **json.loads((world / "truth" / "world.json").read_text())["knobs"]}
    else:
        retrain_day, knobs = WORLD.retrain_day, WORLD.knobs()
        world = simulate_once(root, args.turns, args.seed, args.days)
    cfg = load_config(None, {"embedding.backend": args.embedder, "run.progress": False,
                             "run.window_days": args.window_days, "privacy.user_salt": "drift-benchmark",
                             "embedding.cache_dir": str(root / "embedding-cache")})
    runs = run_daily(world, root / "out", cfg)
    texts, users = truth_texts(world), daily_users(world)
    result = {
        "config": {"world": args.world, "turns": args.turns, "days": args.days, "seed": args.seed,
                   "embedder": args.embedder, "window_days": args.window_days,
                   "min_daily_users": args.min_daily_users, "retire_within_days": args.retire_within,
                   "world_knobs": knobs},
        "latency": label_latency(runs, texts, users, args.min_daily_users, retrain_day),
        "retirement": retirement(runs, texts, users, args.retire_within, cfg.lifecycle.min_recent_events,
                                 retrain_day, get_embedder(cfg.embedding).encode,
                                 (thresholds_for(cfg.embedding)[0], SIMILAR_STRICT)),
        "flips": flips(runs),
        "timings": timings(runs, [int(d) for d in (args.timing_days or f"7,{args.days}").split(",")]),
        "timings_per_day": timings_per_day(runs),
        "labels_per_day": {str(r["day"]): int(len(r["labels"])) for r in runs},
        "machine": f"{os.cpu_count()} vCPU {platform.machine()}, Python {platform.python_version()}",
        "date": dt.date.today().isoformat(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

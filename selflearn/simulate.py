"""Realistic multilingual assistant logs with ground truth, grounded in MASSIVE.

    simulate("sample_logs", turns=6000, seed=7)
    simulate("/tmp/real_like", turns=20000, seed=11, world="real-like")   # an evaluation world

writes, under the output folder:
    logs/day=YYYY-MM-DD/part-0.parquet   the input log contract v1 (contract.LOG_SCHEMA), by UTC day
    truth/turns.parquet                  one row per event (contract.TRUTH_TURNS_SCHEMA)
    truth/pairs.parquet                  every consecutive pair of one user's turns (TRUTH_PAIRS_SCHEMA)
    truth/nlu_seed.parquet               phrasings the simulated system was trained on (and gets right)
    truth/nlu_test.parquet               fresh labeled draws from the users' request/phrasing distribution
    truth/world.json                     the world's name and knobs
    truth/drift_texts.parquet            drift worlds only: per text, the day it first appeared, what is
                                         new about it, whether the retrained NLU fixed it (sim/drift.py)
    README.md                            parameters, the world and the MASSIVE attribution

How the world works (selflearn/sim/): catalog.py (requests, phrasings, Zipf popularity), nlu.py (the
imperfect production NLU), behavior.py (users, sessions, rephrase chains, hard negatives, timing),
surface.py (light edits, ASR noise, PII), output.py (tables), worlds.py (named settings that differ from
the default the way real logs do: unlogged friction, uninformative confidence, long tail, chatty users,
double failures). Same seed and world, same bytes; the default world "simulator" is the simulator as it
always was.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from selflearn.sim import behavior, catalog, drift, massive, output, worlds

DEFAULT_LOCALES = ["en-US", "de-DE", "fr-FR", "es-ES", "ja-JP", "hi-IN"]
TURNS_PER_USER = 12
LOGGING_STREAM = 7927             # key of the random stream for what gets logged, apart from what happens
GOAL_DRIFT_STREAM = 7933          # key of the random stream that sends goals to what emerged


def simulate(out_dir: str | Path, turns: int = 5000, locales: list[str] | None = None, seed: int = 7,
             days: int = 7, start_date: str = "2026-11-01", users: int | None = None,
             massive_path: str | Path | None = None, progress: bool = False,
             world: str | worlds.World = worlds.DEFAULT_WORLD) -> dict:
    """Write simulated logs and their ground truth under `out_dir`; return summary counts. `world` is a
    name in `selflearn.sim.worlds.WORLDS` or a `World`."""
    if turns < 1 or days < 1:
        raise ValueError("turns and days must be positive")
    world_name, world = worlds.resolve(world)
    locales = list(locales or DEFAULT_LOCALES)
    if world.launch_locale is not None and world.launch_locale not in locales:
        locales.append(world.launch_locale)
    n_users = max(1, min(turns, users if users is not None else max(1, turns // TURNS_PER_USER)))
    clock = _Clock(progress)
    rng = np.random.default_rng(seed)
    data = massive.load(massive_path, locales)
    cat = catalog.build(data, locales, rng, world)
    drift_plan = drift.plan(cat, world, seed)
    outcomes = behavior.TextOutcomes(cat, seed, world.retrain_fix_share if world.retrain_day is not None else 0.0)
    clock.lap(f"catalog: {len(cat.req_locale)} requests, {cat.n_base_phr} phrasings")
    sim = behavior.simulate_events(cat, outcomes, turns, n_users, days, rng, world, drift_plan,
                                   np.random.default_rng([seed, GOAL_DRIFT_STREAM]))
    clock.lap(f"behaviour: {len(sim.text)} turns")
    logs, truth_turns, truth_pairs = output.log_and_truth(sim, cat, outcomes, start_date, rng, world,
                                                          np.random.default_rng([seed, LOGGING_STREAM]))
    seed_set, test_set = output.nlu_seed(cat, outcomes), output.nlu_test(cat, turns, seed)
    clock.lap("tables")

    out = Path(out_dir)
    for sub in ("logs", "truth"):
        shutil.rmtree(out / sub, ignore_errors=True)
    day_of = (sim.ts_us + output.start_epoch_us(start_date)) // 86_400_000_000   # UTC day number
    for day in np.unique(day_of).tolist():
        part = out / "logs" / f"day={np.datetime64(int(day), 'D')}"
        part.mkdir(parents=True)
        _write(logs.filter(pa.array(day_of == day)), part / "part-0.parquet")
    (out / "truth").mkdir(parents=True)
    tables = [("turns", truth_turns), ("pairs", truth_pairs), ("nlu_seed", seed_set), ("nlu_test", test_set)]
    if world.drifts:
        retrained = outcomes.retrained_intent if outcomes.retrain_fix_share > 0 else outcomes.intent
        tables.append(("drift_texts", drift.text_truth(logs, truth_turns, cat, drift_plan, outcomes.intent,
                                                       retrained, sim.text, sim.phr)))
    for name, table in tables:
        _write(table, out / "truth" / f"{name}.parquet")
    world_record = {"name": world_name, "description": world.description, "knobs": world.knobs()}
    (out / "truth" / "world.json").write_text(json.dumps(world_record, indent=2) + "\n", encoding="utf-8")
    summary = _summary(logs, truth_turns, truth_pairs, sim, seed_set, test_set)
    summary.update(seed=seed, days=days, start_date=start_date, locales=locales,
                   massive=str(massive_path) if massive_path else "bundled excerpt", out_dir=str(out),
                   world=world_name, world_knobs=world.knobs())
    (out / "README.md").write_text(_readme(summary), encoding="utf-8")
    clock.lap("written")
    return summary


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)


def _summary(logs, truth_turns, truth_pairs, sim, seed_set, test_set) -> dict:
    correct = truth_turns["system_correct"].to_numpy(zero_copy_only=False)
    failing = (~correct) | (sim.status != behavior.STATUSES.index("success"))   # as it happened, logged or not
    kinds = _counts(truth_pairs["kind"])
    n_sess = len(np.unique(sim.session))
    return {
        "turns": logs.num_rows,
        "users": len(np.unique(sim.user)),
        "sessions": n_sess,
        "users_with_session_id": pc.count_distinct(logs.filter(pc.is_valid(logs["session_id"]))["user_id"]).as_py(),
        "per_locale": _counts(logs["locale"]),
        "failing_share": round(float(failing.mean()), 4),
        "wrong_nlu_share": round(float((~correct).mean()), 4),
        "barge_in_share": round(float(pc.mean(pc.cast(pc.fill_null(logs["barge_in"], False), pa.int8())).as_py()), 4),
        "pairs": truth_pairs.num_rows,
        "rephrase_pairs": int(sum(kinds.get(k, 0) for k in behavior.REPHRASE_KINDS)),
        "pair_kinds": kinds,
        "distinct_texts": int(pc.count_distinct(logs["utterance"]).as_py()),
        "nlu_seed_rows": seed_set.num_rows,
        "nlu_test_rows": test_set.num_rows,
    }


def _counts(column) -> dict[str, int]:
    pairs = [(v["values"], v["counts"]) for v in pc.value_counts(column).to_pylist()]
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def _readme(s: dict) -> str:
    return f"""# Simulated assistant logs (selflearn.simulate)

Synthetic voice-assistant logs with ground truth, generated by `selflearn.simulate.simulate(...)` with
seed={s['seed']}, turns={s['turns']}, days={s['days']}, start_date={s['start_date']},
locales={', '.join(s['locales'])}, requests from MASSIVE ({s['massive']}),
world={s['world']} ({', '.join(f'{k}={v}' for k, v in s['world_knobs'].items())}; `truth/world.json`).

- `logs/day=YYYY-MM-DD/part-0.parquet`: the input log contract v1 (`selflearn.contract.LOG_SCHEMA`).
- `truth/turns.parquet`, `truth/pairs.parquet`: the true intent of every turn; every consecutive pair of
  one user's turns with `is_rephrase` and `kind` ({', '.join(s['pair_kinds'])}).
- `truth/nlu_seed.parquet`: what the simulated system was trained on; `truth/nlu_test.parquet`: fresh
  labeled draws from the users' request and phrasing distribution (distinct texts).
- The truth is the truth in every world; the logs show only what the world lets a logger see (a failing
  turn may be logged as a success, without barge-in or confidence).

{s['turns']} turns, {s['users']} users, {s['sessions']} sessions; {s['failing_share']:.1%} of turns failed (logged
or not); {s['rephrase_pairs']} rephrase pairs. Utterances are not real user data; some contain made-up e-mail
addresses and phone numbers on purpose (to exercise PII scrubbing).

Requests and wordings come from MASSIVE (FitzGerald et al., "MASSIVE: A 1M-Example Multilingual Natural
Language Understanding Dataset with 51 Typologically-Diverse Languages", ACL 2023,
https://github.com/alexa/massive), licensed CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/).
Changes: utterances recombined (slot substitution), lightly edited, noised, and arranged into sessions.
"""


class _Clock:
    def __init__(self, on: bool):
        self.on, self.t0 = on, time.perf_counter()

    def lap(self, what: str) -> None:
        if self.on:
            print(f"[simulate {time.perf_counter() - self.t0:6.1f}s] {what}", file=sys.stderr, flush=True)


def write_world(out_dir, name: str, *, seed: int, turns: int) -> dict:
    """Logs and ground truth of any named world (simulator setting or real-NLU world) under `out_dir`."""
    if name in worlds.REAL_NLU_WORLDS:
        from selflearn.sim.clinc_world import build_clinc_world   # sklearn and the CLINC data: only here
        return build_clinc_world(out_dir, seed=seed, turns=turns)
    return simulate(out_dir, turns=turns, seed=seed, world=name)


def cached_world(root, name: str, *, seed: int, turns: int, say=print) -> Path:
    """`root/<name>-s<seed>-t<turns>`, simulated on first use and reused after (benchmarks share worlds)."""
    path = Path(root) / f"{name}-s{seed}-t{turns}"
    if not (path / "truth" / "pairs.parquet").exists():
        say(f"  simulating {path.name} ...")
        write_world(path, name, seed=seed, turns=turns)
    return path

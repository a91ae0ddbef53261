"""A real-NLU evaluation world from CLINC150: real paraphrases by different people, a real classifier's
real mistakes, arranged into users and sessions the way selflearn.simulate arranges MASSIVE.

    build_clinc_world("/tmp/clinc", seed=1, turns=30000, friction_coverage=0.5)
    python -m selflearn.sim.clinc_world --out /tmp/clinc --turns 30000 --seed 1 --friction-coverage 0.5

writes what selflearn.simulate.simulate writes, so `selflearn run` and `selflearn eval` work unchanged:
    logs/day=YYYY-MM-DD/part-0.parquet   contract.LOG_SCHEMA, by UTC day, rows sorted by (user_id, ts)
    truth/turns.parquet                  TRUTH_TURNS_SCHEMA; request_id is the intent, true_scenario its domain
    truth/pairs.parquet                  every consecutive pair of one user's turns (TRUTH_PAIRS_SCHEMA)
    truth/nlu_seed.parquet               the production NLU's training split (en-US, utt, intent, annot_utt)
    truth/nlu_test.parquet               CLINC `test` queries (never said in the logs, never in the seed),
                                         drawn by the users' intent popularity
    truth/world.json, README.md          parameters, measured figures and the CLINC150 attribution
    truth/drift_texts.parquet            with a retrain_day only: per text, the day it first appeared and whether
                                         the first and the retrained NLU read it right (sim/drift.TEXT_TRUTH_SCHEMA)

The world (queries, roles and classifier: clinc_nlu.py):
- A request is an intent; its phrasings are CLINC's queries of that intent. Users pick intents by a Zipf
  popularity over a random order of the 150 intents and phrasings by a flat Zipf popularity over a random
  order of the intent's queries; an intent offers only as many queries as its traffic repeats (TAIL_USES),
  so most texts (misread ones too) are said by 2-4 users and a head by dozens.
- The production NLU is a few-shot TF-IDF + logistic regression classifier: the same text always gets the
  same intent and confidence (its highest class probability); what it gets wrong is a real mistake.
- After a misread the user retries within seconds, with probability REPHRASE_P by step: another query of
  the same intent (which can be misread too), or now and then the same words again (which fail again);
  otherwise the user gives up. Later goals of a session are quick unrelated requests (another domain),
  related but different ones (another intent of the same CLINC domain), or later requests.
- OOS_SHARE of the goals are CLINC out-of-scope queries, mostly said once each; the system rejects them
  (nlu_intent null, status "unhandled") and that is right (system_correct true, true_intent "oos"): noise
  after which the next turn is never a rephrase.
- What happens and what is logged are apart: on a misread the user barges in or the action errs or is
  unhandled (FRICTION_MIX), and a backend error now and then follows a correct reading; a failing turn
  logs that friction only with probability `friction_coverage`, else status "success" and no barge-in.
  Logging draws from a random stream of its own, so the knobs never change the turns.
- With a `retrain_day`, sessions planned from that day on are served by the same classifier retrained on the
  seed plus `retrain_extra` more CLINC queries per intent (clinc_nlu.production_nlu): which texts it now gets
  right, and which it now gets wrong, a real classifier decides, so similar phrasings are fixed together (the
  simulator's drift world fixes each text by its own coin flip). A session keeps the NLU of its planned day,
  as in sim/drift.py. Without a retrain_day the world is the one it was before retraining existed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from selflearn import contract
from selflearn.sim import drift
from selflearn.sim.behavior import KINDS, LOCAL_HOUR_WEIGHT, REPHRASE_KINDS
from selflearn.sim.clinc_nlu import DOMAIN_OF, DOMAINS, OOS, SEED_PER_INTENT, ClincNLU, production_nlu
from selflearn.sim.output import EVAL_COLUMNS, start_epoch_us

WORLD_NAME = "clinc-real"
CONFIDENCE_MODES = ("informative", "absent", "uninformative")
LOCALE = "en-US"
UTC_OFFSET_H = -5.0
DAYS = 7
RETRAIN_EXTRA = 20                # queries per intent the retrained NLU learns beyond the seed: 30 in all
START_DATE = "2026-11-01"
TURNS_PER_USER = 12
SESSIONS_PER_TURN = 0.5           # ~2.7 turns per session: a third more sessions than needed, trimmed to `turns`
INTENT_ZIPF_S = 0.8               # share of the k-th most asked intent ~ (k + 1) ** -s
PHRASING_ZIPF_S = 0.4             # share of an intent's k-th most said query ~ (k + 1) ** -s: a flat body
TAIL_USES = 1.5                   # expected uses (per `turns`) of the least said phrasing an intent offers:
                                  # most misread texts are then said by 2-4 users, a head by dozens
OOS_SHARE = 0.02
GOALS_PER_SESSION_P = 0.45        # geometric: 1 + ~1.2 more goals per session
FOLLOW_UP = (0.22, 0.15, 0.63)    # later goals: quick unrelated, related but different, later request
HABIT_SHARE = 0.3                 # first and later goals that repeat one of the user's favourite phrasings
FAVOURITES = 3
REPHRASE_P = (0.6, 0.55, 0.45, 0.35, 0.0)   # retry after a failure, by step: chains end after five turns
SAME_WORDS_SHARE = {"misread": 0.2, "backend": 0.7}   # retries that repeat the words rather than rephrase
BACKEND_ERROR = 0.02              # status "error" although the NLU read it right
NEEDLESS_BARGE_IN = 0.03          # users cut off right answers too
FRICTION_MIX = (0.5, 0.3, 0.2)    # how a misread shows: barge-in, status "error", status "unhandled"
STATUS_ONLY_FRICTION_MIX = (0.0, 0.6, 0.4)   # the same where the device reports no barge-in
NO_SESSION_DEVICE_SHARE = 0.1     # car-like devices: no session id, no barge-in reports
MIN_SESSION_GAP_S = 1800.0
LOGGING_STREAM = 7927             # key of the random stream for what gets logged, apart from what happens
TEST_STREAM = 7919                # key of the random stream that draws nlu_test
GOAL_FIRST, GOAL_QUICK, GOAL_RELATED, GOAL_LATER = range(4)
SUCCESS, ERROR, UNHANDLED = range(3)
STATUS_NAMES = ("success", "error", "unhandled")
NO_BARGE, BARGE, BARGE_UNREPORTED = range(3)


@dataclass
class _Catalog:
    """Phrasing rows sorted by (intent, popularity rank); intent index len(names) - 1 is OOS."""
    names: list[str]
    domain: np.ndarray                # per intent
    log_popularity: np.ndarray        # per in-scope intent
    text: np.ndarray                  # per phrasing row
    intent: np.ndarray
    correct: np.ndarray               # the NLU reads it right (OOS: rejects it, which is right)
    predicted: np.ndarray             # object: intent name or None
    confidence: np.ndarray
    retrained_correct: np.ndarray     # the same three for the retrained NLU (the first NLU's without a retrain)
    retrained_predicted: np.ndarray
    retrained_confidence: np.ndarray
    draw_key: np.ndarray              # intent + cumulative share within the intent, for inverse-CDF draws

    @property
    def oos(self) -> int:
        return len(self.names) - 1

    def draw(self, intent: np.ndarray, u: np.ndarray) -> np.ndarray:
        """A phrasing row of each `intent` by its popularity, for uniforms `u` in [0, 1)."""
        return np.searchsorted(self.draw_key, intent + u, side="right")

    def reads_right(self, phr: np.ndarray, retrained: np.ndarray) -> np.ndarray:
        """Whether the NLU serving each turn (the retrained one where `retrained`) reads its phrasing right."""
        return np.where(retrained, self.retrained_correct[phr], self.correct[phr])


def build_clinc_world(out_dir: str | Path, *, seed: int = 0, turns: int = 30000, friction_coverage: float = 0.5,
                      confidence: str = "informative", clinc_path: str | Path | None = None, days: int = DAYS,
                      retrain_day: int | None = None, retrain_extra: int = RETRAIN_EXTRA) -> dict:
    """Write CLINC150-world logs and their ground truth under `out_dir`; return summary figures. With
    `retrain_day`, the NLU is retrained on the seed plus `retrain_extra` queries per intent from that day on."""
    if days < 1:
        raise ValueError(f"days must be positive, got {days}")
    if retrain_day is not None and not 0 < retrain_day < days:
        raise ValueError(f"retrain_day must fall within the {days} days after day 0, got {retrain_day}")
    if retrain_day is not None and retrain_extra < 1:
        raise ValueError(f"a retrain needs retrain_extra >= 1 queries per intent, got {retrain_extra}")
    if turns < 1:
        raise ValueError(f"turns must be positive, got {turns}")
    if not 0.0 <= friction_coverage <= 1.0:
        raise ValueError(f"friction_coverage must be in [0, 1], got {friction_coverage}")
    if confidence not in CONFIDENCE_MODES:
        raise ValueError(f"confidence must be one of {CONFIDENCE_MODES}, got {confidence!r}")
    nlu = production_nlu(str(clinc_path) if clinc_path else None, seed, 0 if retrain_day is None else retrain_extra)
    rng = np.random.default_rng(seed)
    cat = _catalog(nlu, turns, rng)
    ev = _events(cat, turns, days, retrain_day, rng)
    logging_rng = np.random.default_rng([seed, LOGGING_STREAM])
    logs, truth_turns, truth_pairs = _tables(cat, ev, friction_coverage, confidence, rng, logging_rng)
    seed_set, test_set = _eval_table(nlu.seed), _eval_table(_traffic_test(nlu, cat, turns, seed))

    out = Path(out_dir)
    for sub in ("logs", "truth"):
        shutil.rmtree(out / sub, ignore_errors=True)
    day = (ev["ts_us"] + start_epoch_us(START_DATE)) // 86_400_000_000   # UTC day number
    for d in np.unique(day).tolist():
        part = out / "logs" / f"day={np.datetime64(int(d), 'D')}"
        part.mkdir(parents=True)
        _write(logs.filter(pa.array(day == d)), part / "part-0.parquet")
    (out / "truth").mkdir(parents=True)
    tables = [("turns", truth_turns), ("pairs", truth_pairs), ("nlu_seed", seed_set), ("nlu_test", test_set)]
    if retrain_day is not None:
        tables.append(("drift_texts", drift.truth_table(logs, truth_turns, ev["phr"], [None] * len(ev["phr"]),
                                                        cat.correct, cat.retrained_correct)))
    for name, table in tables:
        _write(table, out / "truth" / f"{name}.parquet")
    summary = _summary(cat, ev, logs, truth_pairs, nlu, seed_set, test_set)
    summary.update(world=WORLD_NAME, seed=seed, friction_coverage=friction_coverage, confidence=confidence,
                   days=days, start_date=START_DATE, clinc=str(clinc_path or "default"), out_dir=str(out))
    knobs = {"friction_coverage": friction_coverage, "confidence": confidence}
    if retrain_day is not None:
        summary.update(retrain_day=retrain_day, retrain_extra=retrain_extra,
                       **_retrain_summary(cat, drift_texts=tables[-1][1]))
        knobs.update(days=days, retrain_day=retrain_day, retrain_extra=retrain_extra)
    record = {"name": WORLD_NAME, "description": "CLINC150 queries, a real few-shot classifier's mistakes",
              "knobs": knobs}
    (out / "truth" / "world.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(summary), encoding="utf-8")
    return summary


# ---------------------------------------------------------------- what users can say
def _catalog(nlu: ClincNLU, turns: int, rng: np.random.Generator) -> _Catalog:
    names = nlu.intents + [OOS]
    n_intents = len(nlu.intents)
    domains = list(DOMAINS) + [OOS]
    phr = nlu.phrasings
    intent = phr["intent"].map({n: i for i, n in enumerate(names)}).to_numpy()
    available = np.bincount(intent, minlength=len(names))
    if (available[:n_intents] < 2).any():   # a rephrase needs another phrasing of the same intent
        raise ValueError("every CLINC intent needs at least two queries outside the seed and test splits")
    log_popularity = -INTENT_ZIPF_S * np.log(rng.permutation(n_intents) + 1.0)
    # Popularity rank within an intent: a random order, so what the NLU gets wrong is spread over head and tail.
    shuffled = rng.permutation(len(intent))
    rank = np.empty(len(intent), dtype=np.int64)
    rank[shuffled] = pd.Series(intent[shuffled]).groupby(intent[shuffled]).cumcount().to_numpy()
    # An intent offers as many phrasings as its traffic says each ~TAIL_USES times; OOS queries are said
    # about once each.
    share = np.exp(log_popularity) / np.exp(log_popularity).sum()
    k = np.arange(1, available.max() + 1)
    tail_uses = turns * share[:, None] * k ** -PHRASING_ZIPF_S / np.cumsum(k ** -PHRASING_ZIPF_S)
    offered = np.r_[np.clip((tail_uses >= TAIL_USES).sum(axis=1), 2, available[:n_intents]), available[-1]]
    said = np.flatnonzero(rank < offered[intent])
    said = said[np.lexsort((rank[said], intent[said]))]
    intent, rank = intent[said], rank[said]
    weight = np.where(intent == n_intents, 1.0, (rank + 1.0) ** -PHRASING_ZIPF_S)
    by_intent = pd.Series(weight).groupby(intent)
    cum = by_intent.cumsum().to_numpy() / np.repeat(by_intent.sum().to_numpy(), offered)
    cum[np.cumsum(offered) - 1] = 1.0   # exact block ends: a draw never spills into the next intent
    predicted = phr["predicted"].to_numpy()[said]
    retrained = phr["retrained_predicted"].to_numpy()[said]
    return _Catalog(
        names=names, domain=np.array([domains.index(DOMAIN_OF.get(n, OOS)) for n in names]),
        log_popularity=log_popularity, text=phr["text"].to_numpy()[said], intent=intent,
        correct=np.where(intent == n_intents, True, predicted == np.array(names, dtype=object)[intent]),
        predicted=predicted, confidence=phr["confidence"].to_numpy()[said],
        retrained_correct=np.where(intent == n_intents, True, retrained == np.array(names, dtype=object)[intent]),
        retrained_predicted=retrained, retrained_confidence=phr["retrained_confidence"].to_numpy()[said],
        draw_key=intent + cum)


# ---------------------------------------------------------------- what users do
def _events(cat: _Catalog, turns: int, days: int, retrain_day: int | None,
            rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Turns sorted by (user, ts): user, session, phr, kind (index into KINDS), happened (status as it
    happened), barge (NO_BARGE / BARGE / BARGE_UNREPORTED), backend_error, correct (the serving NLU reads it
    right), retrained (the retrained NLU serves it), ts_us; plus per-session arrays."""
    n_users = max(1, turns // TURNS_PER_USER)
    device_reports = rng.random(n_users) >= NO_SESSION_DEVICE_SHARE   # session ids and barge-ins
    activity = rng.lognormal(0.0, 0.9, n_users)
    favourite = cat.draw(_draw_intents(cat, np.ones((n_users * FAVOURITES, 1), dtype=bool), rng),
                         rng.random(n_users * FAVOURITES)).reshape(n_users, FAVOURITES)
    # ---- sessions, sorted by (user, start)
    n_sess = max(n_users, int(np.ceil(turns * SESSIONS_PER_TURN)) + 10)
    s_user = np.concatenate([np.arange(n_users), rng.choice(n_users, n_sess - n_users, p=activity / activity.sum())])
    hours = np.arange(days * 24 - 1)
    hour_weight = LOCAL_HOUR_WEIGHT[np.floor((hours + UTC_OFFSET_H) % 24).astype(int)]
    s_raw = (rng.choice(hours, n_sess, p=hour_weight / hour_weight.sum()) + rng.random(n_sess)) * 3600.0
    order = np.lexsort((s_raw, s_user))
    s_user, s_raw = s_user[order], s_raw[order]
    # ---- goals, sorted by (session, position)
    s_goals = rng.geometric(GOALS_PER_SESSION_P, n_sess)
    g_sess = np.repeat(np.arange(n_sess), s_goals)
    g_pos = np.arange(len(g_sess)) - np.repeat(np.cumsum(s_goals) - s_goals, s_goals)
    g_type = np.where(g_pos == 0, GOAL_FIRST,
                      rng.choice([GOAL_QUICK, GOAL_RELATED, GOAL_LATER], len(g_sess), p=list(FOLLOW_UP)))
    g_phr = _goal_phrasings(cat, g_type, g_pos, favourite[s_user[g_sess]], rng)
    # ---- turns: the first try, then retries while it fails
    # the NLU of the session's planned day serves all of it (no draw: a world without a retrain is unchanged)
    s_retrained = np.zeros(n_sess, dtype=bool) if retrain_day is None else s_raw >= retrain_day * 86_400.0
    ev = _turn_chains(cat, g_phr, s_retrained[g_sess], rng)
    ev_sess = g_sess[ev["goal"]]
    first_kind = np.array([KINDS.index(k) for k in
                           ("new_session", "unrelated_quick", "related_different", "later_request")])
    kind = np.where(ev["step"] > 0, ev["retry_kind"], first_kind[g_type[ev["goal"]]])
    happened, barge = _friction(cat, ev, device_reports[s_user[ev_sess]], rng)
    ts = _timestamps(ev_sess, kind, barge == BARGE, s_user, s_raw, rng)
    keep = _keep(ev_sess, ts, turns, days, rng)
    return {"user": s_user[ev_sess[keep]], "session": ev_sess[keep], "phr": ev["phr"][keep], "kind": kind[keep],
            "happened": happened[keep], "barge": barge[keep], "backend_error": ev["backend_error"][keep],
            "correct": ev["correct"][keep], "retrained": ev["retrained"][keep],
            "ts_us": ts[keep], "n_users": n_users, "n_sessions": n_sess, "session_has_id": device_reports[s_user]}


def _draw_intents(cat: _Catalog, allowed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An in-scope intent per row by popularity among the row's `allowed` ones (Gumbel-max); `allowed`
    broadcasts against [rows, intents]."""
    allowed = np.broadcast_to(allowed, (allowed.shape[0], len(cat.log_popularity)))
    scores = np.where(allowed, cat.log_popularity + rng.gumbel(size=allowed.shape), -np.inf)
    return scores.argmax(axis=1)


def _goal_phrasings(cat: _Catalog, g_type, g_pos, g_favourite, rng) -> np.ndarray:
    """A phrasing row per goal. Goals are drawn position by position, as each depends on the one before:
    a quick follow-up comes from another domain, a related one from the same domain, a later one is
    another intent; first and later goals are sometimes a favourite phrasing."""
    n_intents = len(cat.log_popularity)
    g_phr = np.empty(len(g_type), dtype=np.int64)
    for pos in range(int(g_pos.max()) + 1):
        at = np.flatnonzero(g_pos == pos)
        kind = g_type[at]
        if pos == 0:
            prev = np.full(len(at), -1)
            allowed = np.ones((len(at), n_intents), dtype=bool)
        else:
            prev = cat.intent[g_phr[at - 1]]
            is_prev = np.arange(n_intents) == prev[:, None]
            same_domain = cat.domain[:n_intents] == cat.domain[prev][:, None]
            allowed = np.select([(kind == GOAL_QUICK)[:, None], (kind == GOAL_RELATED)[:, None]],
                                [~same_domain, same_domain & ~is_prev], ~is_prev)
        drawn = cat.draw(_draw_intents(cat, allowed, rng), rng.random(len(at)))
        favourite = g_favourite[at, rng.integers(0, FAVOURITES, len(at))]
        habit = (np.isin(kind, (GOAL_FIRST, GOAL_LATER)) & (rng.random(len(at)) < HABIT_SHARE)
                 & (cat.intent[favourite] != prev))
        g_phr[at] = np.where(habit, favourite, drawn)
    # Out-of-scope noise replaces goals that no related follow-up hangs on.
    next_related = np.r_[g_type[1:] == GOAL_RELATED, False]
    oos = np.flatnonzero((g_type != GOAL_RELATED) & ~next_related & (rng.random(len(g_type)) < OOS_SHARE))
    g_phr[oos] = cat.draw(np.full(len(oos), cat.oos), rng.random(len(oos)))
    return g_phr


def _turn_chains(cat: _Catalog, g_phr: np.ndarray, g_retrained: np.ndarray,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Turns sorted by (goal, step): retries after a misread or a backend error, each step with
    REPHRASE_P[step]; a retry is another phrasing of the intent or the same words again. A goal's turns are
    all read by the NLU `g_retrained` says."""
    goal, phr, rounds = np.arange(len(g_phr)), g_phr.copy(), []
    in_scope = cat.intent != cat.oos
    for step, p_retry in enumerate(REPHRASE_P):
        r = rng.random((len(goal), 3))
        correct = cat.reads_right(phr, g_retrained[goal])
        backend_error = correct & in_scope[phr] & (r[:, 0] < BACKEND_ERROR)
        rounds.append({"goal": goal, "step": np.full(len(goal), step), "phr": phr, "backend_error": backend_error,
                       "correct": correct, "retrained": g_retrained[goal]})
        retry = (~correct | backend_error) & (r[:, 1] < p_retry)
        same_words = r[retry, 2] < np.where(backend_error[retry], SAME_WORDS_SHARE["backend"],
                                            SAME_WORDS_SHARE["misread"])
        goal, phr = goal[retry], phr[retry]
        new = phr.copy()
        clash = ~same_words
        while clash.any():            # another phrasing: every intent has at least two
            new[clash] = cat.draw(cat.intent[phr[clash]], rng.random(int(clash.sum())))
            clash = ~same_words & (new == phr)
        phr = new
    ev = {key: np.concatenate([rd[key] for rd in rounds]) for key in rounds[0]}
    order = np.lexsort((ev["step"], ev["goal"]))
    ev = {key: v[order] for key, v in ev.items()}
    ev["retry_kind"] = np.where(np.r_[-1, ev["phr"][:-1]] == ev["phr"], KINDS.index("repetition"),
                                KINDS.index("paraphrase"))
    return ev


def _friction(cat: _Catalog, ev: dict, reports_barge: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """(status, barge) as it happened. A misread shows as a barge-in, an error or "unhandled"
    (FRICTION_MIX; where the device reports no barge-in, as one of the two statuses); OOS is rejected."""
    phr, n = ev["phr"], len(ev["phr"])
    r = rng.random((n, 2))
    mix = np.where(reports_barge[:, None], FRICTION_MIX, STATUS_ONLY_FRICTION_MIX)
    how = (r[:, :1] >= np.cumsum(mix, axis=1)[:, :2]).sum(axis=1)   # 0 barge-in, 1 error, 2 unhandled
    misread = ~ev["correct"]
    oos = cat.intent[phr] == cat.oos
    status = np.select([misread & (how == 1), misread & (how == 2), ev["backend_error"], oos],
                       [ERROR, UNHANDLED, ERROR, UNHANDLED], SUCCESS)
    barged = (misread & (how == 0)) | (~misread & ~oos & (r[:, 1] < NEEDLESS_BARGE_IN))
    barge = np.where(~reports_barge, BARGE_UNREPORTED, np.where(barged, BARGE, NO_BARGE))
    return status, barge


def _timestamps(ev_sess, kind, barged, s_user, s_raw, rng) -> np.ndarray:
    """Microseconds from the start date: gaps by turn kind, a user's sessions MIN_SESSION_GAP_S apart."""
    n = len(ev_sess)
    first = np.r_[True, ev_sess[1:] != ev_sess[:-1]]
    names = np.array(KINDS)[kind]
    after_barge_in = np.r_[False, barged[:-1]]   # a user who cut the answer off speaks again at once
    rephrase_gap = np.where(after_barge_in, rng.uniform(1.5, 5.0, n), np.clip(2.0 + rng.gamma(2.0, 2.5, n), 2, 20))
    gap = np.select(
        [first, np.isin(names, REPHRASE_KINDS), names == "unrelated_quick", names == "related_different"],
        [0.0, rephrase_gap, np.clip(3.0 + rng.gamma(2.0, 2.5, n), 3, 20), np.clip(3.0 + rng.gamma(2.0, 2.0, n), 3, 15)],
        np.clip(20.0 + rng.lognormal(np.log(45.0), 0.8, n), 20, 270))
    offset = np.cumsum(gap)
    first_ix = np.flatnonzero(first)
    within = offset - np.repeat(offset[first_ix], np.diff(np.r_[first_ix, n]))
    duration = np.zeros(len(s_user))
    last_ix = np.r_[first_ix[1:] - 1, n - 1]
    duration[ev_sess[last_ix]] = within[last_ix]
    # start_i = max(raw_i, start_{i-1} + span_{i-1}) per user: a grouped cummax of raw - (spans before i)
    span = duration + MIN_SESSION_GAP_S + rng.exponential(2400.0, len(s_user))
    before = pd.Series(span).groupby(s_user).cumsum().to_numpy() - span
    start = pd.Series(s_raw - before).groupby(s_user).cummax().to_numpy() + before
    return np.round((start[ev_sess] + within) * 1e6).astype(np.int64)


def _keep(ev_sess: np.ndarray, ts: np.ndarray, turns: int, days: int, rng: np.random.Generator) -> np.ndarray:
    """Keep-mask of exactly `turns` turns: whole random sessions that end within the horizon, then the
    first turns of one more (a prefix, so every kept turn's story stays true)."""
    n_sess = int(ev_sess.max()) + 1
    sizes = np.bincount(ev_sess, minlength=n_sess)
    ends = np.full(n_sess, -1, dtype=np.int64)
    np.maximum.at(ends, ev_sess, ts)
    candidates = rng.permutation(np.flatnonzero(ends < days * 86_400 * 1_000_000))
    cum = np.cumsum(sizes[candidates])
    if cum[-1] < turns:
        raise ValueError(f"only {cum[-1]} turns fit in {days} days; ask for fewer than {turns}")
    whole = candidates[cum <= turns]
    keep = np.isin(ev_sess, whole)
    partial = candidates[len(whole)] if len(whole) < len(candidates) else -1
    position = np.arange(len(ev_sess)) - np.searchsorted(ev_sess, ev_sess)   # turn index within its session
    keep |= (ev_sess == partial) & (position < turns - int(keep.sum()))
    return keep


# ---------------------------------------------------------------- tables
def _random_ids(rng: np.random.Generator, n: int, prefix: str) -> np.ndarray:
    """n distinct random ids `prefix` + 16 hex digits, in ascending order."""
    return np.array([f"{prefix}{v:016x}" for v in np.sort(rng.choice(2 ** 62, n, replace=False)).tolist()],
                    dtype=object)


def _tables(cat: _Catalog, ev: dict, friction_coverage: float, confidence: str, rng: np.random.Generator,
            logging_rng: np.random.Generator) -> tuple[pa.Table, pa.Table, pa.Table]:
    n = len(ev["phr"])
    event_ids = _random_ids(rng, n, "ev-")[rng.permutation(n)]
    user_ids = _random_ids(rng, ev["n_users"], "u-")   # ascending in user order: files sort by (user_id, ts)
    session_ids = np.where(ev["session_has_id"], _random_ids(rng, ev["n_sessions"], "s-"), None)
    phr = ev["phr"]
    # What gets logged: a failing turn's friction only with probability friction_coverage.
    failing = ~ev["correct"] | ev["backend_error"]
    unlogged = failing & (logging_rng.random(n) >= friction_coverage)
    status = np.where(unlogged, SUCCESS, ev["happened"])
    barge = np.where(unlogged & (ev["barge"] == BARGE), NO_BARGE, ev["barge"])
    new = ev["retrained"]
    if confidence == "informative":
        score = pa.array(np.where(new, cat.retrained_confidence[phr], cat.confidence[phr]))
    elif confidence == "uninformative":   # every text keeps one score, shuffled across texts: same spread, no signal
        shuffled = logging_rng.permutation(len(cat.confidence))
        score = pa.array(np.where(new, cat.retrained_confidence[shuffled][phr], cat.confidence[shuffled][phr]))
    else:
        score = pa.nulls(n, pa.float64())
    predicted = np.where(new, cat.retrained_predicted[phr], cat.predicted[phr])
    logs = pa.table({
        "event_id": pa.array(event_ids, pa.string()),
        "user_id": pa.array(user_ids[ev["user"]], pa.string()),
        "session_id": pa.array(session_ids[ev["session"]], pa.string()),
        "locale": pa.array(np.full(n, LOCALE, dtype=object), pa.string()),
        "ts": pa.array(ev["ts_us"] + start_epoch_us(START_DATE), pa.timestamp("us", tz="UTC")),
        "utterance": pa.array(cat.text[phr], pa.string()),
        "nlu_intent": pa.array(predicted, pa.string()),
        "nlu_slots": pa.array([None if p is None else [] for p in predicted.tolist()], contract.SLOTS),
        "nlu_confidence": score,
        "response_status": pa.array(np.array(STATUS_NAMES, dtype=object)[status], pa.string()),
        "barge_in": pa.array(barge == BARGE, mask=barge == BARGE_UNREPORTED),
    }, schema=contract.LOG_SCHEMA)
    true_intent = np.array(cat.names, dtype=object)[cat.intent[phr]]
    truth_turns = pa.table({
        "event_id": pa.array(event_ids, pa.string()),
        "true_intent": pa.array(true_intent, pa.string()),
        "true_scenario": pa.array([DOMAIN_OF.get(i, OOS) for i in true_intent.tolist()], pa.string()),
        "true_annot_utt": pa.array(cat.text[phr], pa.string()),   # CLINC has no slots: the text is its annotation
        "true_slots": pa.array([[]] * n, contract.SLOTS),
        "request_id": pa.array(true_intent, pa.string()),
        "system_correct": pa.array(ev["correct"]),
    }, schema=contract.TRUTH_TURNS_SCHEMA)
    b = np.flatnonzero(ev["user"][1:] == ev["user"][:-1]) + 1
    kinds = np.array(KINDS, dtype=object)[ev["kind"][b]]
    truth_pairs = pa.table({
        "event_id_a": pa.array(event_ids[b - 1], pa.string()),
        "event_id_b": pa.array(event_ids[b], pa.string()),
        "is_rephrase": pa.array(np.isin(kinds, REPHRASE_KINDS)),
        "kind": pa.array(kinds, pa.string()),
    }, schema=contract.TRUTH_PAIRS_SCHEMA)
    return logs, truth_turns, truth_pairs


def _traffic_test(nlu: ClincNLU, cat: _Catalog, turns: int, seed: int) -> pd.DataFrame:
    """nlu_test: turns // 4 (1,000 to 50,000) draws of a held-out CLINC `test` query, its intent drawn by the
    users' intent popularity, the query uniformly; with replacement. Its accuracy is then accuracy on
    traffic, as the simulator's: on CLINC's uniform test split, labels mined where traffic is (popular
    intents) shift the closed-loop classifier toward those intents and cost the rare ones more than they add."""
    rng = np.random.default_rng([seed, TEST_STREAM])
    n = int(np.clip(turns // 4, 1000, 50_000))
    share = np.exp(cat.log_popularity) / np.exp(cat.log_popularity).sum()
    test_intent = nlu.test["intent"].map({name: i for i, name in enumerate(cat.names)}).to_numpy()   # sorted
    intent = rng.choice(len(share), n, p=share)
    first = np.searchsorted(test_intent, intent)
    count = np.bincount(test_intent, minlength=len(share))[intent]
    return nlu.test.iloc[first + (rng.random(n) * count).astype(np.int64)]


def _eval_table(queries: pd.DataFrame) -> pa.Table:
    rows = queries.sort_values(["text", "intent"])
    return pa.table({"locale": [LOCALE] * len(rows), "utt": rows["text"].tolist(), "intent": rows["intent"].tolist(),
                     "annot_utt": rows["text"].tolist()}, schema=EVAL_COLUMNS)


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)


# ---------------------------------------------------------------- figures
def _summary(cat: _Catalog, ev: dict, logs: pa.Table, truth_pairs: pa.Table, nlu: ClincNLU, seed_set: pa.Table,
             test_set: pa.Table) -> dict:
    phr = ev["phr"]
    oos = cat.intent[phr] == cat.oos
    misread = ~ev["correct"]
    failing = misread | ev["backend_error"]
    first_try = ~np.isin(ev["kind"], [KINDS.index(k) for k in REPHRASE_KINDS])
    status = logs["response_status"].to_numpy(zero_copy_only=False)
    barge = logs["barge_in"].fill_null(False).to_numpy(zero_copy_only=False)
    users_per_failing_text = pd.Series(ev["user"][misread]).groupby(phr[misread]).nunique()
    score = logs["nlu_confidence"].to_numpy(zero_copy_only=False)
    judged = ~oos & ~np.isnan(score.astype(float))
    kinds = pd.Series(truth_pairs["kind"].to_numpy(zero_copy_only=False)).value_counts()
    return {
        "turns": len(phr),
        "users": len(np.unique(ev["user"])),
        "sessions": len(np.unique(ev["session"])),
        "seed_per_intent": SEED_PER_INTENT,
        "classifier_error": round(nlu.classifier_error, 4),
        "misread_share": round(float(misread.mean()), 4),
        "first_try_misread_share": round(float(misread[first_try].mean()), 4),
        "oos_turns": int(oos.sum()),
        "failing_texts": len(users_per_failing_text),
        "median_users_per_failing_text": float(users_per_failing_text.median()),
        "failing_texts_with_2plus_users": round(float((users_per_failing_text >= 2).mean()), 4),
        "max_users_per_failing_text": int(users_per_failing_text.max()),
        "logged_friction_share_of_failing": round(float(((status[failing] != "success") | barge[failing]).mean()), 4),
        "confidence_auc": (round(float(roc_auc_score(~misread[judged], score[judged].astype(float))), 4)
                           if judged.any() and misread[judged].any() else None),
        "pairs": truth_pairs.num_rows,
        "rephrase_pairs": int(kinds.reindex(list(REPHRASE_KINDS)).fillna(0).sum()),
        "pair_kinds": {k: int(v) for k, v in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))},
        "distinct_texts": len(np.unique(phr)),
        "nlu_seed_rows": seed_set.num_rows,
        "nlu_test_rows": test_set.num_rows,
        "nlu_test_texts": len(set(test_set["utt"].to_pylist())),
    }


def _retrain_summary(cat: _Catalog, drift_texts: pa.Table) -> dict:
    """What the retraining did to the texts said in the logs: fixed, broken, and the retrained error rate."""
    old_ok = drift_texts["old_nlu_correct"].to_numpy(zero_copy_only=False)
    new_ok = drift_texts["retrained_nlu_correct"].to_numpy(zero_copy_only=False)
    return {"retrained_classifier_error": round(float(1.0 - cat.retrained_correct[cat.intent != cat.oos].mean()), 4),
            "texts_said": len(old_ok), "texts_misread_by_first_nlu": int((~old_ok).sum()),
            "texts_fixed_by_retrain": int((~old_ok & new_ok).sum()),
            "texts_broken_by_retrain": int((old_ok & ~new_ok).sum())}


def _retrain_readme(s: dict) -> str:
    if "retrain_day" not in s:
        return ""
    return f"""
From day {s['retrain_day']} on, sessions are served by the same classifier retrained on the seed plus
{s['retrain_extra']} more `train` queries per intent (never said in the logs): it misreads
{s['retrained_classifier_error']:.1%} of the queries users can say; of the {s['texts_misread_by_first_nlu']} texts
said in the logs that the first NLU misreads it fixes {s['texts_fixed_by_retrain']}, and it breaks
{s['texts_broken_by_retrain']} the first read right. `truth/drift_texts.parquet` says which, per text.
"""


def _readme(s: dict) -> str:
    return f"""# CLINC150 real-NLU world (selflearn.sim.clinc_world)

Assistant logs with ground truth, generated by `selflearn.sim.clinc_world.build_clinc_world(...)` with
seed={s['seed']}, turns={s['turns']}, friction_coverage={s['friction_coverage']}, confidence={s['confidence']},
days={s['days']}, start_date={s['start_date']}, locale {LOCALE}.

- `logs/day=YYYY-MM-DD/part-0.parquet`: the input log contract v1 (`selflearn.contract.LOG_SCHEMA`).
- `truth/turns.parquet`, `truth/pairs.parquet`: the true intent of every turn (request_id is the intent,
  true_scenario its CLINC domain, no slots); every consecutive pair of one user's turns with `is_rephrase`
  and `kind` ({', '.join(s['pair_kinds'])}).
- `truth/nlu_seed.parquet`: the {s['seed_per_intent']} queries per intent the production NLU (TF-IDF char + word
  n-grams, logistic regression) was trained on; `truth/nlu_test.parquet`: {s['nlu_test_rows']} draws (with
  replacement, {s['nlu_test_texts']} distinct) of CLINC's `test` queries, never said in the logs and never in the
  seed, by the users' intent popularity: closed-loop accuracy is accuracy on traffic.

Every utterance is a real CLINC query; the queries of one intent, written by different crowd workers, are
the phrasings users choose from. The NLU's mistakes are the classifier's real mistakes: it misreads
{s['classifier_error']:.1%} of the queries users can say and {s['misread_share']:.1%} of the turns. Out-of-scope
queries ({s['oos_turns']} turns) are rejected as "unhandled" and count as handled right (true_intent "oos").
A failing turn logs its friction (barge-in, "error", "unhandled") with probability friction_coverage,
else "success"; the truth is the truth either way.

{s['turns']} turns, {s['users']} users, {s['sessions']} sessions; {s['failing_texts']} misread texts, said by a
median of {s['median_users_per_failing_text']:g} users; {s['rephrase_pairs']} rephrase pairs.
{_retrain_readme(s)}
Utterances come from CLINC150 (Larson et al., "An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", EMNLP 2019, https://github.com/clinc/oos-eval, data_full.json), licensed
Creative Commons Attribution 3.0 Unported (https://creativecommons.org/licenses/by/3.0/). Changes: the
queries are unchanged; they are split into seed, test and said roles, deduplicated, and arranged into
simulated users, sessions and rephrase chains.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selflearn.sim.clinc_world",
                                     description="Write a CLINC150 real-NLU world: logs and ground truth.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--turns", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--friction-coverage", type=float, default=0.5)
    parser.add_argument("--confidence", choices=CONFIDENCE_MODES, default="informative")
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--retrain-day", type=int, default=None,
                        help="from this day on a retrained NLU serves (default: no retrain)")
    parser.add_argument("--retrain-extra", type=int, default=RETRAIN_EXTRA,
                        help="queries per intent the retrained NLU learns beyond the seed")
    parser.add_argument("--clinc", help="CLINC150 parquet (split, text, intent); default ../shared/data/clinc150")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        summary = build_clinc_world(args.out, seed=args.seed, turns=args.turns,
                                    friction_coverage=args.friction_coverage, confidence=args.confidence,
                                    clinc_path=args.clinc, days=args.days, retrain_day=args.retrain_day,
                                    retrain_extra=args.retrain_extra)
    except (ValueError, FileNotFoundError) as exc:
        print(f"clinc_world: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    print(f"logs in {Path(args.out, 'logs').resolve()}, ground truth in {Path(args.out, 'truth').resolve()} "
          f"({time.perf_counter() - started:.1f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

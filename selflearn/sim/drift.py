"""A world that changes over its days: new entities and wordings appear, the NLU is retrained, a locale launches.

`plan` picks, from a random stream of its own, which requests are new entities and which get a new wording,
and hides them from the catalog's usage shares, so nothing draws them before `World.emerging_day`;
`redirect_goals` then sends goals planned from that day on to them. Which NLU serves a goal (the first or
the retrained one) and whether a session may be in the launch locale follow from the day its session was
planned to start; a session pushed past midnight by its user's previous one keeps its planned day's NLU, as
a session in progress keeps the model it started with. `text_truth` is the ground truth a drift benchmark
reads: when each text first appeared, what is new about it, and whether the retraining fixed it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selflearn.sim.catalog import Catalog
from selflearn.sim.worlds import World

DRIFT_STREAM = 8111                 # key of the random stream for the drift plan, apart from the behaviour
RETRAIN_KEY = "retrain"             # keys the per-text draw of "does the retrained NLU fix it"
WORDING_POOL = (3, 60)              # popularity ranks whose requests may get a new wording: said often enough
ENTITY_POOL = (15, 150)             # ranks of the new entities: mid-popularity, like a new title catching on
DAY_S = 86_400.0


@dataclass
class DriftPlan:
    world: World
    entities: list[np.ndarray]      # per locale index: requests nobody asks before emerging_day
    wording_of: np.ndarray          # per request: the phrasing row nobody says before emerging_day, or -1

    @property
    def new_rows(self) -> set[int]:
        return set(self.wording_of[self.wording_of >= 0].tolist())


def plan(cat: Catalog, world: World, seed: int) -> DriftPlan | None:
    """Pick the new entities and wordings and hide them from `cat`'s usage shares (None: nothing emerges)."""
    if world.emerging_day is None:
        return None
    rng = np.random.default_rng([seed, DRIFT_STREAM])
    entities, wording_of = [], np.full(len(cat.req_locale), -1, dtype=np.int64)
    # a text several requests share ("alarm please") is not new when one of them is: only own texts emerge
    uses = np.bincount(np.asarray(cat.phr_text[:cat.n_base_phr]), minlength=len(cat.texts))

    def own_texts(req: int, rows=None) -> bool:
        rows = rows or range(cat.req_phr_start[req], cat.req_phr_start[req] + cat.req_nphr[req])
        return all(uses[cat.phr_text[r]] == 1 for r in rows)

    for li in range(len(cat.locales)):
        reqs = np.flatnonzero(cat.req_locale == li)
        by_rank = reqs[np.argsort(cat.req_rank[reqs], kind="stable")]
        # three or more wordings: a retry's "another wording" must still have one the user already knew
        wordable = [r for r in by_rank[slice(*WORDING_POOL)]
                    if cat.req_nphr[r] >= 3 and own_texts(r, [cat.req_phr_start[r] + cat.req_nphr[r] - 1])]
        reworded = np.sort(rng.permutation(wordable)[:world.emerging_wordings]).astype(np.int64)
        wording_of[reworded] = cat.req_phr_start[reworded] + cat.req_nphr[reworded] - 1
        cat.phr_weights[reworded, cat.req_nphr[reworded] - 1] = 0.0
        # an entity is a slot value: a new title, a new app name
        pool = [r for r in np.setdiff1d(by_rank[slice(*ENTITY_POOL)], reworded).tolist()
                if own_texts(r) and "[" in cat.phr_annot[cat.req_phr_start[r]]]
        new = np.sort(rng.permutation(np.array(pool, dtype=np.int64))[:world.emerging_entities])
        entities.append(new)
        cat.req_pop[new] = 0.0
        cat.req_pop[reqs] /= cat.req_pop[reqs].sum()
    rows = [r for new in entities for req in new.tolist()
            for r in range(cat.req_phr_start[req], cat.req_phr_start[req] + cat.req_nphr[req])]
    for row in rows + wording_of[wording_of >= 0].tolist():
        cat.text_p_err[cat.phr_text[row]] = world.emerging_error   # the NLU never saw them
    return DriftPlan(world, entities, wording_of)


def redirect_goals(cat: Catalog, drift: DriftPlan | None, g_phr: np.ndarray, g_day: np.ndarray,
                   g_loc: np.ndarray, pick, rng: np.random.Generator) -> np.ndarray:
    """Goals planned from emerging_day on: a share go to a new entity, and goals of a reworded request use
    its new wording with probability emerging_wording_use. `pick(cat, req, u)` draws a request's phrasing."""
    if drift is None:
        return g_phr
    world, g_phr = drift.world, g_phr.copy()
    after = g_day >= world.emerging_day
    u = rng.random((len(g_phr), 3))
    to_entity = after & (u[:, 0] < world.emerging_traffic)
    for li, new in enumerate(drift.entities):
        goals = np.flatnonzero(to_entity & (g_loc == li))
        if len(new) and len(goals):
            req = new[(u[goals, 1] * len(new)).astype(np.int64)]
            g_phr[goals] = pick(cat, req, u[goals, 2])
    # a related follow-up can still land on a hidden request (every request stays a follow-up candidate):
    # before its day, such a goal asks for a request that exists then
    early = np.flatnonzero(~after & np.isin(np.asarray(cat.phr_req)[g_phr], np.concatenate(drift.entities)))
    for i in early.tolist():
        reqs = np.flatnonzero(cat.req_locale == g_loc[i])
        req = reqs[min(int(np.searchsorted(np.cumsum(cat.req_pop[reqs]), u[i, 1])), len(reqs) - 1)]
        g_phr[i] = pick(cat, np.array([req]), u[i:i + 1, 2])[0]
    row = drift.wording_of[np.asarray(cat.phr_req)[g_phr]]
    reword = after & ~to_entity & (row >= 0) & (u[:, 2] < world.emerging_wording_use)
    g_phr[reword] = row[reword]
    return g_phr


def locale_shares(locales: list[str], share: np.ndarray, world: World, days: int) -> np.ndarray:
    """Users' primary-locale shares: the launch locale gets what makes it ~launch_share of the traffic on
    the days it is live (its sessions all fall on those days, see `launch_session_times`)."""
    if world.launch_locale not in locales:
        return share
    li = locales.index(world.launch_locale)
    live = max(days - world.launch_day, 0) / days
    out = share.copy()
    out[li] = 0.0
    out *= (1.0 - world.launch_share * live) / out.sum()
    out[li] = world.launch_share * live
    return out


def launch_session_times(s_raw: np.ndarray, s_locale: np.ndarray, locales: list[str], world: World,
                         days: int) -> np.ndarray:
    """Session start seconds with the launch locale's sessions folded onto its live days, hour kept."""
    if world.launch_locale not in locales or world.launch_day >= days:
        return s_raw
    mask = s_locale == locales.index(world.launch_locale)
    out = s_raw.copy()
    out[mask] = world.launch_day * DAY_S + np.mod(s_raw[mask], (days - world.launch_day) * DAY_S)
    return out


def from_day(g_day: np.ndarray, day: int | None) -> np.ndarray | None:
    """Per goal: planned on or after `day` (None when the world has no such day)."""
    return None if day is None else g_day >= day


def retrained_interpretation(u_fix: np.ndarray, intent: np.ndarray, confidence: np.ndarray, slots: list,
                             true_intent: np.ndarray, true_slots: list, share: float, correct_confidence):
    """(intent, confidence, slots) of the retrained NLU: what the first NLU got wrong and `u_fix` < share
    is now right, with a right answer's confidence and the true slots; the rest as before."""
    fixed = (intent != true_intent) & (u_fix < share)
    new_conf = np.where(fixed, correct_confidence, confidence)
    new_slots = [true_slots[i] if fixed[i] else s for i, s in enumerate(slots)]
    return np.where(fixed, true_intent, intent), new_conf, new_slots


TEXT_TRUTH_SCHEMA = pa.schema([
    ("locale", pa.string()), ("utterance", pa.string()), ("true_intent", pa.string()),
    ("first_day", pa.date32()), ("emerging", pa.string()), ("old_nlu_correct", pa.bool_()),
    ("retrained_nlu_correct", pa.bool_()), ("fixed_by_retrain", pa.bool_()),
])


def text_truth(logs: pa.Table, truth_turns: pa.Table, cat: Catalog, drift: DriftPlan | None, old_intent,
               new_intent, text: np.ndarray, phr: np.ndarray) -> pa.Table:
    """One row per (locale, utterance) in the logs: the day it first appeared, what is new about it
    ("entity", "wording" or null), and whether the first and the retrained NLU get it right."""
    meaning = np.asarray(cat.text_intent)
    return truth_table(logs, truth_turns, text, _emerging_kind(cat, drift, phr), np.asarray(old_intent) == meaning,
                       np.asarray(new_intent) == meaning)


def truth_table(logs: pa.Table, truth_turns: pa.Table, text: np.ndarray, emerging: list[str | None],
                old_ok: np.ndarray, new_ok: np.ndarray) -> pa.Table:
    """TEXT_TRUTH_SCHEMA from the logs, per event its text index `text` and what is new about it (`emerging`), and
    per text index whether the first (`old_ok`) and the retrained NLU (`new_ok`) read it right: any world that
    retrains its NLU (this simulator's, sim/clinc_world.py) writes its truth with it."""
    events = pa.table({
        "locale": logs["locale"], "utterance": logs["utterance"], "true_intent": truth_turns["true_intent"],
        "day": pc.cast(logs["ts"], pa.date32()), "text": pa.array(text),
        "emerging": pa.array(emerging, type=pa.string()),
    })
    first = events.group_by(["locale", "utterance"]).aggregate(
        [("day", "min"), ("text", "min"), ("true_intent", "min"), ("emerging", "max")])
    text = first["text_min"].to_numpy()
    old, new = np.asarray(old_ok)[text], np.asarray(new_ok)[text]
    table = pa.table({
        "locale": first["locale"], "utterance": first["utterance"], "true_intent": first["true_intent_min"],
        "first_day": first["day_min"], "emerging": first["emerging_max"], "old_nlu_correct": pa.array(old),
        "retrained_nlu_correct": pa.array(new), "fixed_by_retrain": pa.array(~old & new),
    }, schema=TEXT_TRUTH_SCHEMA)
    return table.sort_by([("locale", "ascending"), ("utterance", "ascending")])


def _emerging_kind(cat: Catalog, drift: DriftPlan | None, phr: np.ndarray) -> list[str | None]:
    if drift is None:
        return [None] * len(phr)
    entity_reqs = np.concatenate(drift.entities) if drift.entities else np.empty(0, dtype=np.int64)
    base = np.asarray(cat.phr_base)[phr]
    req = np.asarray(cat.phr_req)[phr]
    kind = np.full(len(phr), None, dtype=object)
    kind[np.isin(base, list(drift.new_rows))] = "wording"
    kind[np.isin(req, entity_reqs)] = "entity"
    return kind.tolist()

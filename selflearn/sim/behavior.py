"""Who talks when, and what they do after the assistant gets it wrong.

users -> sessions -> goals (one request each) -> turns (the first try, then rephrases while it fails).
Everything is vectorized over all users at once; chains of rephrases are grown one step per round.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from selflearn.sim import drift, nlu, surface
from selflearn.sim.catalog import Catalog
from selflearn.sim.worlds import World

TRAFFIC = {"en-US": 0.42, "de-DE": 0.14, "es-ES": 0.13, "fr-FR": 0.12, "ja-JP": 0.10, "hi-IN": 0.09}
UTC_OFFSET_H = {"en-US": -5.0, "de-DE": 1.0, "fr-FR": 1.0, "es-ES": 1.0, "ja-JP": 9.0, "hi-IN": 5.5}
LOCAL_HOUR_WEIGHT = np.array([.3, .15, .1, .1, .15, .4, 1.2, 2.2, 2.4, 1.8, 1.4, 1.3,
                              1.5, 1.3, 1.2, 1.3, 1.6, 2.0, 2.4, 2.5, 2.3, 1.9, 1.2, .6])
DEVICES = (("speaker", 0.48, True, True), ("phone", 0.42, False, True), ("car", 0.10, False, False))
BILINGUAL_SHARE = 0.03
GOALS_PER_SESSION_P = 0.45        # geometric: 1 + ~1.2 more goals per session
HABIT_SHARE = 0.3                 # goals that repeat one of the user's favourite requests
INITIAL_ASR_NOISE = 0.03          # first tries misrecognized by ASR
PII_SHARE = 0.003
REPHRASE_P = (0.6, 0.55, 0.45, 0.35, 0.0)   # by step: chains end after five turns
BACKEND_RETRY_MIX = (0.3, 0.6, 0.1)   # paraphrase, repetition, asr; after a misread: World.misread_retry_mix
BACKEND_ERROR = 0.02              # status "error" although the NLU was right
WRONG_STATUS_ERROR = 0.12         # the wrongly chosen action itself fails
BARGE_IN = {"wrong": 0.55, "unhandled": 0.2, "error": 0.1, "ok": 0.04}
MIN_SESSION_GAP_S = 1800.0
RELATED_EXTRA = {                 # "play X" -> "louder": different scenario, clearly related
    "play_music": ["audio_volume_up", "audio_volume_down", "audio_volume_mute", "music_likeness", "music_query"],
    "play_radio": ["audio_volume_up", "audio_volume_down", "audio_volume_mute"],
    "play_podcasts": ["audio_volume_up", "audio_volume_down"], "play_audiobook": ["audio_volume_up"],
    "music_query": ["play_music"], "cooking_recipe": ["lists_createoradd"], "weather_query": ["datetime_query"],
}
KINDS = ("", "paraphrase", "repetition", "asr_noise", "unrelated_quick", "related_different",
         "later_request", "new_session")
REPHRASE_KINDS = ("paraphrase", "repetition", "asr_noise")
STATUSES = ("success", "error", "unhandled")
GOAL_FIRST, GOAL_QUICK, GOAL_RELATED, GOAL_LATER = range(4)


@dataclass
class Simulated:
    user: np.ndarray                  # per event, events sorted by (user, ts)
    session: np.ndarray
    phr: np.ndarray
    text: np.ndarray
    kind: np.ndarray                  # index into KINDS: how this turn relates to the user's previous one
    status: np.ndarray                # index into STATUSES
    barge: np.ndarray                 # -1 unknown (device reports none), 0, 1
    ts_us: np.ndarray                 # microseconds since the start date, UTC
    n_users: int
    sess_has_id: np.ndarray           # per session
    user_device: np.ndarray
    nlu_version: np.ndarray | None = None   # per event: 0 the first NLU, 1 the retrained one (drift worlds)


class TextOutcomes:
    """NLU interpretation of every text in the catalog, computed in batches as new texts appear."""

    def __init__(self, cat: Catalog, seed: int, retrain_fix_share: float = 0.0):
        self.cat, self.seed, self.retrain_fix_share = cat, seed, retrain_fix_share
        self.confusions = nlu.confusable(cat.intents, cat.intent_scenario)
        self.intent = np.empty(0, dtype=np.int64)
        self.confidence = np.empty(0)
        self.slots: list = []
        self.u = np.empty((0, 8))
        # the retrained NLU (drift worlds): the same texts, some failures fixed
        self.retrained_intent, self.retrained_confidence = np.empty(0, dtype=np.int64), np.empty(0)
        self.retrained_slots: list = []

    def update(self) -> None:
        c, lo = self.cat, len(self.intent)
        if lo == len(c.texts):
            return
        u = nlu.text_uniforms(self.seed, c.locales, c.text_locale[lo:], c.texts[lo:])
        intent, conf, slots = nlu.interpret(u, np.array(c.text_p_err[lo:]), np.array(c.text_intent[lo:]),
                                            c.text_slots[lo:], self.confusions, len(c.intents))
        self.intent = np.concatenate([self.intent, intent])
        self.confidence = np.concatenate([self.confidence, conf])
        self.slots.extend(slots)
        self.u = np.vstack([self.u, u])
        if self.retrain_fix_share > 0:
            u_fix = nlu.text_uniforms(f"{self.seed}/{drift.RETRAIN_KEY}", c.locales, c.text_locale[lo:],
                                      c.texts[lo:])[:, 0]
            intent, conf, slots = drift.retrained_interpretation(
                u_fix, intent, conf, slots, np.array(c.text_intent[lo:]), c.text_slots[lo:],
                self.retrain_fix_share, nlu.correct_confidence(u))
            self.retrained_intent = np.concatenate([self.retrained_intent, intent])
            self.retrained_confidence = np.concatenate([self.retrained_confidence, conf])
            self.retrained_slots.extend(slots)

    def intent_served(self, text: np.ndarray, retrained: np.ndarray | None) -> np.ndarray:
        """The NLU's intent for each text, from the retrained NLU where `retrained` (None: the first NLU)."""
        if retrained is None:
            return self.intent[text]
        return np.where(retrained, self.retrained_intent[text], self.intent[text])


def simulate_events(cat: Catalog, outcomes: TextOutcomes, turns: int, n_users: int, days: int,
                    rng: np.random.Generator, world: World, drift_plan: drift.DriftPlan | None = None,
                    drift_rng: np.random.Generator | None = None) -> Simulated:
    n_loc = len(cat.locales)
    share = np.array([TRAFFIC.get(loc, 0.1) for loc in cat.locales])
    share /= share.sum()
    share = drift.locale_shares(cat.locales, share, world, days)
    # ---- users
    primary = rng.choice(n_loc, n_users, p=share)
    bilingual = (rng.random(n_users) < BILINGUAL_SHARE) & (n_loc > 1)
    second = (primary + 1 + rng.integers(0, max(n_loc - 1, 1), n_users)) % n_loc
    device = rng.choice(len(DEVICES), n_users, p=[d[1] for d in DEVICES])
    activity = rng.lognormal(0.0, 0.9, n_users)
    fav_req = _draw_requests(cat, np.repeat(primary, 3), rng).reshape(n_users, 3)
    fav_phr = _pick_phrasing(cat, fav_req.ravel(), rng.random(n_users * 3)).reshape(n_users, 3)
    # ---- sessions, sorted by (user, start)
    n_sess = max(n_users, int(round(turns * GOALS_PER_SESSION_P)))
    s_user = np.concatenate([np.arange(n_users), rng.choice(n_users, n_sess - n_users, p=activity / activity.sum())])
    s_locale = np.where(bilingual[s_user] & (rng.random(n_sess) < 0.35), second[s_user], primary[s_user])
    s_raw = drift.launch_session_times(_session_times(cat, s_locale, days, rng), s_locale, cat.locales, world, days)
    order = np.lexsort((s_raw, s_user))
    s_user, s_locale, s_raw = s_user[order], s_locale[order], s_raw[order]
    s_goals = rng.geometric(GOALS_PER_SESSION_P, n_sess)
    # ---- goals, sorted by (session, position)
    g_sess = np.repeat(np.arange(n_sess), s_goals)
    g_pos = np.arange(len(g_sess)) - np.repeat(np.cumsum(s_goals) - s_goals, s_goals)
    g_user, g_loc = s_user[g_sess], s_locale[g_sess]
    g_type = np.where(g_pos == 0, GOAL_FIRST,
                      rng.choice([GOAL_QUICK, GOAL_RELATED, GOAL_LATER], len(g_sess), p=list(world.follow_up)))
    g_type[1:][(g_type[1:] == GOAL_RELATED) & (g_type[:-1] == GOAL_RELATED)] = GOAL_LATER
    g_phr = _goal_requests(cat, g_user, g_loc, g_type, primary, fav_phr, rng)
    g_day = np.floor(s_raw[g_sess] / drift.DAY_S)   # the day the goal's session was planned for
    g_phr = drift.redirect_goals(cat, drift_plan, g_phr, g_day, g_loc, _pick_phrasing, drift_rng)
    # ---- turns: first tries, then rephrases while the user keeps trying
    ev = _turn_chains(cat, outcomes, g_phr, g_loc, device[g_user], world.misread_retry_mix,
                      world.once_seen_share, rng, drift.from_day(g_day, world.retrain_day))
    ev_goal = ev["goal"]
    ev_sess = g_sess[ev_goal]
    kind = np.where(ev["step"] > 0, ev["kind"],
                    np.select([g_type[ev_goal] == t for t in (GOAL_QUICK, GOAL_RELATED, GOAL_LATER)],
                              [KINDS.index(k) for k in ("unrelated_quick", "related_different", "later_request")],
                              KINDS.index("new_session")))
    ts = _timestamps(ev, ev_sess, kind, s_user, s_raw, rng)
    keep = _trim(ev_sess, s_user, ts, turns, days, rng)
    return Simulated(user=s_user[ev_sess[keep]], session=ev_sess[keep], phr=ev["phr"][keep], text=ev["text"][keep],
                     kind=kind[keep], status=ev["status"][keep], barge=ev["barge"][keep], ts_us=ts[keep],
                     n_users=n_users, sess_has_id=np.array([d[2] for d in DEVICES])[device[s_user]],
                     user_device=device, nlu_version=None if world.retrain_day is None else ev["nlu_version"][keep])


def _draw_requests(cat: Catalog, locale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(len(locale), dtype=np.int64)
    for li in range(len(cat.locales)):
        mask = locale == li
        reqs = np.flatnonzero(cat.req_locale == li)
        out[mask] = rng.choice(reqs, mask.sum(), p=cat.req_pop[reqs])
    return out


def _pick_phrasing(cat: Catalog, req: np.ndarray, u: np.ndarray, exclude_k: np.ndarray | None = None) -> np.ndarray:
    """Phrasing rows of `req` drawn by usage share (inverse CDF), optionally never rank `exclude_k`."""
    w = cat.phr_weights[req].copy()
    if exclude_k is not None:
        w[np.arange(len(req)), exclude_k] = 0.0
    cum = w.cumsum(axis=1)
    k = (cum < (u * cum[:, -1])[:, None]).sum(axis=1)
    return cat.req_phr_start[req] + np.minimum(k, cat.req_nphr[req] - 1)


def _session_times(cat: Catalog, s_locale: np.ndarray, days: int, rng: np.random.Generator) -> np.ndarray:
    """Session start (seconds from the start date, UTC), following each locale's waking hours."""
    hours = np.arange(days * 24 - 1)
    out = np.empty(len(s_locale))
    for li, loc in enumerate(cat.locales):
        mask = s_locale == li
        local = np.floor((hours + UTC_OFFSET_H.get(loc, 0.0)) % 24).astype(int)
        w = LOCAL_HOUR_WEIGHT[local]
        out[mask] = (rng.choice(hours, mask.sum(), p=w / w.sum()) + rng.random(mask.sum())) * 3600.0
    return out


def _goal_requests(cat: Catalog, g_user, g_loc, g_type, primary, fav_phr, rng) -> np.ndarray:
    """A phrasing row per goal: favourites, popular requests, follow-ups unlike (or related to) the last."""
    n = len(g_user)
    g_req = _draw_requests(cat, g_loc, rng)
    g_phr = _pick_phrasing(cat, g_req, rng.random(n))
    habit = (g_loc == primary[g_user]) & (rng.random(n) < HABIT_SHARE)
    g_phr[habit] = fav_phr[g_user[habit], rng.integers(0, 3, habit.sum())]
    rel_start, rel_count, rel_reqs = _related_requests(cat)
    phr_req, scen = np.asarray(cat.phr_req), cat.intent_scenario
    dirty = np.ones(n, dtype=bool)               # goals whose request changed: their followers need a look
    for _ in range(200):
        req = phr_req[g_phr]
        # related follow-ups: a request of a related other intent than the previous goal's
        rel = np.flatnonzero((g_type == GOAL_RELATED) & np.r_[False, dirty[:-1]])
        prev = req[rel - 1]
        ok = rel_count[prev] > 0
        pick = rel_start[prev] + (rng.random(len(rel)) * rel_count[prev]).astype(np.int64)
        g_phr[rel[ok]] = _pick_phrasing(cat, rel_reqs[np.minimum(pick[ok], len(rel_reqs) - 1)], rng.random(ok.sum()))
        g_type[rel[~ok]] = GOAL_QUICK             # nothing related to follow with: an unrelated request
        dirty[rel] = True
        req = phr_req[g_phr]
        check = np.flatnonzero((dirty | np.r_[False, dirty[:-1]]) & (g_type != GOAL_FIRST))
        intent, prev_intent = cat.req_intent[req[check]], cat.req_intent[req[check - 1]]
        clash = check[((g_type[check] == GOAL_QUICK) & (scen[intent] == scen[prev_intent])) |
                      ((g_type[check] == GOAL_LATER) & (req[check] == req[check - 1]))]
        if not len(clash):
            break
        g_phr[clash] = _pick_phrasing(cat, _draw_requests(cat, g_loc[clash], rng), rng.random(len(clash)))
        dirty[:] = False
        dirty[clash] = True
    else:   # only with degenerate data (one scenario): settle for "later, different request"
        g_type[clash] = GOAL_LATER
    return g_phr


def _related_requests(cat: Catalog) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (start, count, requests): for each request, same-locale requests of a related other intent,
    repeated by popularity so a uniform pick favours popular ones."""
    ix = {n: i for i, n in enumerate(cat.intents)}
    rel_intents = []
    for i, name in enumerate(cat.intents):
        same = {j for j in range(len(cat.intents)) if j != i and cat.intent_scenario[j] == cat.intent_scenario[i]}
        rel_intents.append(same | {ix[n] for n in RELATED_EXTRA.get(name, []) if n in ix})
    by_loc_intent: dict[tuple[int, int], np.ndarray] = {}
    for li in range(len(cat.locales)):
        for j in range(len(cat.intents)):
            reqs = np.flatnonzero((cat.req_locale == li) & (cat.req_intent == j))
            reps = np.maximum(1, np.round(cat.req_pop[reqs] * 2000)).astype(np.int64)
            by_loc_intent[(li, j)] = np.repeat(reqs, reps)
    starts, counts, flat, pos = [], [], [], 0
    for r in range(len(cat.req_locale)):
        li, i = cat.req_locale[r], cat.req_intent[r]
        parts = [by_loc_intent[(li, j)] for j in sorted(rel_intents[i])]
        cands = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        starts.append(pos)
        counts.append(len(cands))
        flat.append(cands)
        pos += len(cands)
    return np.array(starts), np.array(counts), np.concatenate(flat).astype(np.int64)


def _turn_chains(cat: Catalog, out: TextOutcomes, g_phr, g_loc, g_device, misread_retry_mix,
                 once_seen_share: float, rng, g_retrained: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per event: goal, step, phrasing, text, status, barge-in, kind (and nlu_version where `g_retrained`
    says which goals the retrained NLU serves)."""
    n = len(g_phr)
    goal, phr = np.arange(n), g_phr.copy()
    text = np.asarray(cat.phr_text)[phr]
    noisy = np.flatnonzero(rng.random(n) < INITIAL_ASR_NOISE)
    text[noisy] = _noisy_texts(cat, phr[noisy], g_loc[noisy], rng)
    pii = np.flatnonzero(rng.random(n) < PII_SHARE * 0.9)   # ~0.9 of turns are first tries
    phr[pii], text[pii] = _pii_phrasings(cat, phr[pii], g_loc[pii], rng)
    if once_seen_share > 0:   # own stream (a child of this one): the main stream draws exactly as before
        tail_rng = np.random.default_rng(rng.bit_generator.seed_seq.spawn(1)[0])
        tail = np.flatnonzero(tail_rng.random(n) < once_seen_share)
        text[tail] = _noisy_texts(cat, phr[tail], g_loc[tail], tail_rng, max_edits=3)
    phr_req, phr_text, phr_base = np.asarray(cat.phr_req), np.asarray(cat.phr_text), np.asarray(cat.phr_base)
    rounds = []
    for step in range(len(REPHRASE_P)):
        out.update()
        true_intent = cat.req_intent[phr_req[phr]]
        retrained = None if g_retrained is None else g_retrained[goal]
        nlu_intent = out.intent_served(text, retrained)
        correct = nlu_intent == true_intent
        unhandled = nlu_intent < 0
        r = rng.random((len(goal), 4))
        status = np.where(unhandled, 2, np.where(correct, r[:, 0] < BACKEND_ERROR, r[:, 0] < WRONG_STATUS_ERROR))
        p_barge = np.select([unhandled, ~correct, status == 1], [BARGE_IN["unhandled"], BARGE_IN["wrong"],
                            BARGE_IN["error"]], BARGE_IN["ok"])
        barge = np.where(np.array([d[3] for d in DEVICES])[g_device[goal]], r[:, 1] < p_barge, -1)
        rounds.append({"goal": goal, "step": np.full(len(goal), step), "phr": phr, "text": text,
                       "status": status.astype(np.int8), "barge": barge.astype(np.int8)})
        if retrained is not None:
            rounds[-1]["nlu_version"] = retrained.astype(np.int8)
        retry = (~correct | (status == 1)) & (r[:, 2] < REPHRASE_P[step])
        if not retry.any():
            break
        backend = correct[retry]
        goal, phr, text, u = goal[retry], phr[retry], text[retry], r[retry, 3]
        base = phr_base[phr]
        req = phr_req[phr]
        mix_para = np.where(backend, BACKEND_RETRY_MIX[0], misread_retry_mix[0])
        mix_rep = mix_para + np.where(backend, BACKEND_RETRY_MIX[1], misread_retry_mix[1])
        para = (u < mix_para) & (cat.req_nphr[req] > 1)
        asr = (u >= mix_rep) | ((u < mix_para) & ~para)
        new_phr = phr.copy()
        k = np.asarray(cat.phr_k)[base[para]]
        new_phr[para] = _pick_phrasing(cat, req[para], rng.random(para.sum()), exclude_k=k)
        text = phr_text[new_phr]
        text[asr] = _noisy_texts(cat, new_phr[asr], cat.req_locale[req[asr]], rng)
        phr = new_phr
    ev = {key: np.concatenate([rd[key] for rd in rounds]) for key in rounds[0]}
    order = np.lexsort((ev["step"], ev["goal"]))
    ev = {key: v[order] for key, v in ev.items()}
    same_goal = np.concatenate([[False], ev["goal"][1:] == ev["goal"][:-1]])
    prev_phr, prev_text = np.roll(ev["phr"], 1), np.roll(ev["text"], 1)
    ev["kind"] = np.where(~same_goal, 0, np.where(
        prev_phr != ev["phr"], KINDS.index("paraphrase"),
        np.where(prev_text == ev["text"], KINDS.index("repetition"), KINDS.index("asr_noise"))))
    return ev


def _noisy_texts(cat: Catalog, phr: np.ndarray, loc: np.ndarray, rng, max_edits: int = 1) -> np.ndarray:
    """Texts of phrasings `phr` misrecognized by 1..max_edits stacked ASR edits (1: one draw of 3 uniforms)."""
    u = rng.random((len(phr), 3))
    extra = (rng.random((len(phr), max_edits - 1, 4)) if max_edits > 1 else np.zeros((len(phr), 0, 4)))
    out = np.empty(len(phr), dtype=np.int64)
    for i, (p, li) in enumerate(zip(phr.tolist(), loc.tolist())):
        clean = cat.phr_text[p]
        noisy = surface.asr_noise(cat.texts[clean], cat.locales[li], tuple(u[i]))
        for more in extra[i]:
            if more[0] < 0.6:   # each further edit with probability 0.6: mostly 2, sometimes 3
                noisy = surface.asr_noise(noisy, cat.locales[li], tuple(more[1:]))
        present = [(n, v) for n, v in cat.text_slots[clean] if v in noisy]
        p_err = min(0.8, cat.text_p_err[clean] + 0.25)
        out[i] = cat.add_text(li, noisy, p_err, cat.text_intent[clean], present, noisy != cat.texts[clean])
    return out


def _pii_phrasings(cat: Catalog, phr: np.ndarray, loc: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    u = rng.random((len(phr), 3))
    new_phr, new_text = np.empty(len(phr), dtype=np.int64), np.empty(len(phr), dtype=np.int64)
    for i, (p, li) in enumerate(zip(phr.tolist(), loc.tolist())):
        base = cat.phr_base[p]
        annot, text = surface.with_pii(cat.phr_annot[base], cat.locales[li], tuple(u[i]))
        clean = cat.phr_text[base]
        tid = cat.add_text(li, text, min(0.8, cat.text_p_err[clean] + 0.1), cat.text_intent[clean],
                           cat.text_slots[clean], False)
        new_phr[i], new_text[i] = cat.add_pseudo_phrasing(base, annot, tid), tid
    return new_phr, new_text


def _timestamps(ev, ev_sess, kind, s_user, s_raw, rng) -> np.ndarray:
    """Microseconds from the start date: gaps by turn kind, sessions kept apart by MIN_SESSION_GAP_S."""
    n = len(ev_sess)
    first = np.concatenate([[True], ev_sess[1:] != ev_sess[:-1]])
    k = np.array(KINDS)[kind]
    prev_barge = np.concatenate([[0], ev["barge"][:-1]]) == 1
    rephrase_gap = np.where(prev_barge, rng.uniform(1.5, 5.0, n), np.clip(2.0 + rng.gamma(2.0, 2.5, n), 2, 20))
    gap = np.select(
        [first, np.isin(k, REPHRASE_KINDS), k == "unrelated_quick", k == "related_different"],
        [0.0, rephrase_gap, np.clip(3.0 + rng.gamma(2.0, 2.5, n), 3, 20), np.clip(3.0 + rng.gamma(2.0, 2.0, n), 3, 15)],
        np.clip(20.0 + rng.lognormal(np.log(45.0), 0.8, n), 20, 270))
    offset = np.cumsum(gap)
    first_ix = np.flatnonzero(first)
    within = offset - np.repeat(offset[first_ix], np.diff(np.append(first_ix, n)))
    duration = np.zeros(len(s_user))
    last_ix = np.append(first_ix[1:] - 1, n - 1)
    duration[ev_sess[last_ix]] = within[last_ix]
    # s_i = max(t_i, s_{i-1} + d_{i-1} + gap): a grouped cummax of t - D (D: cumulative spans before i)
    span = duration + 10.0 + MIN_SESSION_GAP_S + rng.exponential(2400.0, len(s_user))
    cum = pd.Series(span).groupby(s_user).cumsum().to_numpy() - span
    start = pd.Series(s_raw - cum).groupby(s_user).cummax().to_numpy() + cum
    return np.round((start[ev_sess] + within) * 1e6).astype(np.int64)


def _trim(ev_sess, s_user, ts, turns, days, rng) -> np.ndarray:
    """Keep-mask: drop turns past the horizon, then whole later sessions, then session tails, to `turns`."""
    keep = ts < days * 86_400 * 1_000_000
    excess = int(keep.sum()) - turns
    if excess <= 0:
        return keep
    sizes = np.bincount(ev_sess[keep], minlength=len(s_user))
    first_of_user = np.concatenate([[True], s_user[1:] != s_user[:-1]])
    cands = rng.permutation(np.flatnonzero(~first_of_user & (sizes > 0)))
    cum = np.cumsum(sizes[cands])
    drop = cands[cum <= excess]
    keep &= ~np.isin(ev_sess, drop)
    excess = int(keep.sum()) - turns
    if excess > 0:  # the last few: tails of random sessions (a suffix, so the story stays true)
        idx = np.flatnonzero(keep)
        sess = ev_sess[idx]
        rev = _reverse_position(sess)
        opens_user = np.concatenate([[True], sess[1:] != sess[:-1]]) & first_of_user[sess]
        cand = np.flatnonzero(~opens_user)
        prio = rng.random(len(cand))
        chosen = cand[np.lexsort((prio, rev[cand]))[:excess]]
        keep[idx[chosen]] = False
    return keep


def _reverse_position(sess: np.ndarray) -> np.ndarray:
    """0 for a session's last turn, 1 for the one before, ... (`sess` sorted)."""
    pos = np.arange(len(sess))
    end = np.concatenate([np.flatnonzero(sess[1:] != sess[:-1]), [len(sess) - 1]])
    return np.repeat(end, np.diff(np.concatenate([[-1], end]))) - pos

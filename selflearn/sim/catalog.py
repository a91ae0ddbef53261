"""What users ask and how they say it: requests, their phrasings, popularity, and the texts seen so far.

A request is one MASSIVE id in one locale. Its phrasings are the MASSIVE utterance, slot-substitution
paraphrases (another utterance of the same intent with the same slot names, filled with this request's
values) and light edits; they get a skewed popularity so head texts recur across many users (how skewed,
and whether the most-said ones can fail at all, are World knobs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from selflearn.sim import surface
from selflearn.sim.massive import plain_text, slots_of, substitute
from selflearn.sim.worlds import World

ZIPF_S = 1.1
MAX_PHRASINGS = 5
INTENT_BOOST = {                  # real assistant traffic is dominated by a few everyday intents
    "weather_query": 3.0, "play_music": 3.0, "alarm_set": 2.5, "iot_hue_lightoff": 2.0, "iot_hue_lighton": 2.0,
    "audio_volume_up": 2.0, "datetime_query": 2.0, "alarm_query": 1.5, "audio_volume_down": 1.5,
    "audio_volume_mute": 1.5, "news_query": 1.5, "play_radio": 1.5, "calendar_query": 1.5, "calendar_set": 1.5,
    "general_joke": 1.2, "lists_createoradd": 1.2, "qa_factoid": 1.2,
}
# Zero-slot utterances of these intents are interchangeable ("lights off" / "turn off the lights"); for
# open-domain intents two zero-slot utterances are different questions, so no zero-slot paraphrase there.
ZERO_SLOT_PARAPHRASE = {
    "alarm_query", "alarm_remove", "alarm_set", "audio_volume_down", "audio_volume_mute", "audio_volume_up",
    "calendar_query", "datetime_query", "email_query", "general_greet", "general_joke", "iot_cleaning",
    "iot_coffee", "iot_hue_lightchange", "iot_hue_lightdim", "iot_hue_lightoff", "iot_hue_lighton",
    "iot_hue_lightup", "iot_wemo_off", "iot_wemo_on", "lists_query", "music_dislikeness", "music_likeness",
    "music_query", "music_settings", "news_query", "play_music", "play_radio", "play_podcasts",
    "play_audiobook", "play_game", "transport_taxi", "transport_traffic", "weather_query",
}
NO_SUBSTITUTION = {"general_quirky", "qa_factoid", "social_post", "email_sendemail", "social_query"}


def _array():
    return field(default_factory=lambda: np.empty(0))


@dataclass
class Catalog:
    locales: list[str]
    intents: list[str]
    scenarios: list[str]
    intent_scenario: np.ndarray             # intent index -> scenario index
    req_locale: np.ndarray = _array()       # requests: one per (locale, MASSIVE id)
    req_massive_id: np.ndarray = _array()   # object array of str
    req_intent: np.ndarray = _array()
    req_rank: np.ndarray = _array()         # popularity rank within its locale (0 = most asked)
    req_pop: np.ndarray = _array()          # share of its locale's requests
    req_phr_start: np.ndarray = _array()    # phrasings of request r: rows start .. start + n - 1, by rank
    req_nphr: np.ndarray = _array()
    phr_weights: np.ndarray = _array()      # [n_requests, MAX_PHRASINGS] usage share of each phrasing rank
    phr_req: list[int] = field(default_factory=list)    # phrasing rows (base rows, later pseudo rows)
    phr_k: list[int] = field(default_factory=list)      # usage rank within the request (0 = most used)
    phr_annot: list[str] = field(default_factory=list)
    phr_text: list[int] = field(default_factory=list)   # text id
    phr_base: list[int] = field(default_factory=list)   # the base row a pseudo row (PII) was made from
    n_base_phr: int = 0
    texts: list[str] = field(default_factory=list)
    text_locale: list[int] = field(default_factory=list)
    text_p_err: list[float] = field(default_factory=list)
    text_intent: list[int] = field(default_factory=list)   # what the text means (first request that used it)
    text_slots: list[list[tuple[str, str]]] = field(default_factory=list)
    text_noisy: list[bool] = field(default_factory=list)
    text_index: dict[tuple[int, str], int] = field(default_factory=dict)

    def add_text(self, locale: int, text: str, p_err: float, intent: int, slots: list, noisy: bool) -> int:
        key = (locale, text)
        tid = self.text_index.get(key)
        if tid is None:
            tid = len(self.texts)
            self.text_index[key] = tid
            self.texts.append(text)
            self.text_locale.append(locale)
            self.text_p_err.append(p_err)
            self.text_intent.append(intent)
            self.text_slots.append(slots)
            self.text_noisy.append(noisy)
        return tid

    def add_pseudo_phrasing(self, base: int, annot: str, text_id: int) -> int:
        self.phr_req.append(self.phr_req[base])
        self.phr_k.append(self.phr_k[base])
        self.phr_annot.append(annot)
        self.phr_text.append(text_id)
        self.phr_base.append(base)
        return len(self.phr_req) - 1


def phrasing_error_rate(traffic_share: np.ndarray, locale_penalty: float, fixed_head_share: float) -> np.ndarray:
    """System NLU error probability of each phrasing from how often it is said (its share of the locale's
    traffic): ~2-4% for the main phrasings of head requests, rising to ~55% for the rarest wordings; zero
    for the most-said phrasings that together carry `fixed_head_share` of the traffic."""
    log_share = np.log10(traffic_share)
    x = (log_share.max() - log_share) / max(float(log_share.max() - log_share.min()), 1e-9)
    p_err = np.clip(0.02 + 0.53 * x ** 2.5 + locale_penalty, 0.0, 0.55)
    by_use = np.argsort(-traffic_share, kind="stable")
    said_more = np.cumsum(traffic_share[by_use]) - traffic_share[by_use]   # traffic of the phrasings said more
    p_err[by_use[said_more < fixed_head_share * traffic_share.sum()]] = 0.0
    return p_err


LOCALE_PENALTY = {"hi-IN": 0.03, "ja-JP": 0.03}   # less training data for the simulated system


def build(massive: pd.DataFrame, locales: list[str], rng: np.random.Generator, world: World) -> Catalog:
    intents = sorted(massive["intent"].unique())
    intent_ix = {n: i for i, n in enumerate(intents)}
    scenarios = sorted(massive["scenario"].unique())
    scen_of = massive.drop_duplicates("intent").set_index("intent")["scenario"]
    intent_scenario = np.array([scenarios.index(scen_of[i]) for i in intents])
    ids = massive["id"].drop_duplicates().to_numpy()
    id_intent = massive.drop_duplicates("id").set_index("id")["intent"]
    # Popularity: shared across locales (an everyday intent is popular everywhere), perturbed per locale.
    base = np.log([INTENT_BOOST.get(id_intent[i], 1.0) for i in ids]) + rng.gumbel(size=len(ids))
    rows = {(r.locale, r.id): r for r in massive.itertuples(index=False)}
    by_group: dict[tuple[str, str, str], list[str]] = {}
    for r in massive.itertuples(index=False):
        sig = "|".join(sorted(n for n, _ in slots_of(r.annot_utt)))
        by_group.setdefault((r.locale, r.intent, sig), []).append(r.id)

    req_locale, req_mid, req_intent, req_rank, req_pop = [], [], [], [], []
    start, nphr = [], []
    weights = np.zeros((len(ids) * len(locales), MAX_PHRASINGS))
    cat = Catalog(locales, intents, scenarios, intent_scenario)
    for li, loc in enumerate(locales):
        score = base + 0.6 * rng.standard_normal(len(ids))
        rank = np.empty(len(ids), dtype=np.int64)
        rank[np.argsort(-score, kind="stable")] = np.arange(len(ids))
        pop = (rank + 1.0) ** -ZIPF_S
        pop /= pop.sum()
        first_row = len(cat.phr_req)
        for j, mid in enumerate(ids):
            r = rows[(loc, mid)]
            annots = _phrasings(r, by_group, rows, rng)
            order = list(range(len(annots)))
            if len(annots) > 1 and rng.random() >= 0.5:   # the MASSIVE wording is not always the usual one
                order = list(rng.permutation(len(annots)))
            ri = len(req_locale)
            start.append(len(cat.phr_req))
            nphr.append(len(annots))
            w = np.arange(1, len(annots) + 1) ** -world.phrasing_decay
            weights[ri, :len(annots)] = w / w.sum()
            for k, a_ix in enumerate(order):
                annot = annots[a_ix]
                text = r.utt if a_ix == 0 else plain_text(annot, loc)
                tid = cat.add_text(li, text, 1.0, intent_ix[r.intent], slots_of(annot), False)
                cat.phr_req.append(ri)
                cat.phr_k.append(k)
                cat.phr_annot.append(annot)
                cat.phr_text.append(tid)
                cat.phr_base.append(len(cat.phr_base))
            req_locale.append(li)
            req_mid.append(str(mid))
            req_intent.append(intent_ix[r.intent])
            req_rank.append(rank[j])
            req_pop.append(pop[j])
        rows_req = np.asarray(cat.phr_req[first_row:])
        share = np.asarray(req_pop)[rows_req] * weights[rows_req, cat.phr_k[first_row:]]
        p_err = phrasing_error_rate(share, LOCALE_PENALTY.get(loc, 0.0), world.fixed_head_share)
        for tid, p in zip(cat.phr_text[first_row:], p_err.tolist()):
            cat.text_p_err[tid] = min(cat.text_p_err[tid], p)   # a text two requests share: the easier
    cat.req_locale = np.array(req_locale)
    cat.req_massive_id = np.array(req_mid, dtype=object)
    cat.req_intent = np.array(req_intent)
    cat.req_rank = np.array(req_rank)
    cat.req_pop = np.array(req_pop)
    cat.req_phr_start = np.array(start)
    cat.req_nphr = np.array(nphr)
    cat.phr_weights = weights[: len(req_locale)]
    cat.n_base_phr = len(cat.phr_req)
    return cat


def _phrasings(r, by_group: dict, rows: dict, rng: np.random.Generator) -> list[str]:
    """Distinct annotations for one request: MASSIVE's first, then up to two slot-substitution paraphrases,
    then light edits; at most MAX_PHRASINGS."""
    own = slots_of(r.annot_utt)
    annots = [r.annot_utt]
    sig = "|".join(sorted(n for n, _ in own))
    allowed = r.intent not in NO_SUBSTITUTION and (bool(own) or r.intent in ZERO_SLOT_PARAPHRASE)
    if allowed:
        others = [i for i in by_group[(r.locale, r.intent, sig)] if i != r.id]
        for i in rng.permutation(len(others))[:2] if others else []:
            filled = substitute(rows[(r.locale, others[i])].annot_utt, own)
            if filled and plain_text(filled, r.locale) not in {plain_text(a, r.locale) for a in annots}:
                annots.append(filled)
    for source in annots[:2]:
        for edited in surface.light_edits(source, r.locale):
            if plain_text(edited, r.locale) not in {plain_text(a, r.locale) for a in annots}:
                annots.append(edited)
    return annots[:MAX_PHRASINGS]

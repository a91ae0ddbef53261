"""The simulated production NLU: deterministic per (locale, text), wrong more often on tail phrasings.

Each text's random draws come from a keyed hash of (seed, locale, text), so the same text always gets the
same interpretation, as a deployed model would, however many times and by whom it is said.
"""
from __future__ import annotations

import hashlib

import numpy as np
from scipy.special import betaincinv

UNHANDLED_SHARE = 0.3             # of NLU errors: no intent at all ("sorry, I can't help with that")
CONFUSABLE_SHARE = 0.7            # of wrong intents: a confusable intent (same scenario or curated)
CONFIDENCE_BETA = {"correct": (7.0, 2.0), "wrong": (4.0, 3.0), "unhandled": (2.0, 5.0)}
# Cross-scenario confusions a real model makes; same-scenario intents are always candidates too.
CONFUSIONS = {
    "play_music": ["play_radio", "music_query", "play_podcasts", "music_likeness"],
    "play_radio": ["play_music", "play_podcasts"], "play_podcasts": ["play_audiobook", "play_radio", "news_query"],
    "music_query": ["play_music"], "alarm_set": ["calendar_set"], "alarm_query": ["datetime_query"],
    "calendar_set": ["alarm_set", "lists_createoradd"], "calendar_query": ["datetime_query"],
    "qa_factoid": ["general_quirky"], "general_quirky": ["qa_factoid", "general_joke"],
    "weather_query": ["datetime_query"], "datetime_query": ["weather_query", "alarm_query"],
    "iot_hue_lightup": ["audio_volume_up"], "audio_volume_up": ["iot_hue_lightup", "play_music"],
    "audio_volume_down": ["iot_hue_lightdim"], "lists_createoradd": ["calendar_set"],
    "email_sendemail": ["social_post"], "social_post": ["email_sendemail"],
    "transport_query": ["recommendation_locations"], "takeaway_query": ["recommendation_locations"],
    "news_query": ["qa_factoid"],
}


def confusable(intents: list[str], intent_scenario: np.ndarray) -> list[np.ndarray]:
    """For each intent, the intents a model plausibly mistakes it for."""
    ix = {n: i for i, n in enumerate(intents)}
    out = []
    for i, name in enumerate(intents):
        same = [j for j in range(len(intents)) if j != i and intent_scenario[j] == intent_scenario[i]]
        extra = [ix[n] for n in CONFUSIONS.get(name, []) if n in ix]
        out.append(np.array(sorted(set(same + extra)), dtype=np.int64))
    return out


def text_uniforms(seed: int | str, locales: list[str], text_locale: list[int], texts: list[str]) -> np.ndarray:
    """[n, 8] uniforms in [0, 1) keyed by (seed, locale, text): columns 0-5 drive `interpret`, 6 the
    training seed (output.nlu_seed), 7 `uninformative_confidence`."""
    digest = b"".join(
        hashlib.blake2b(f"{seed}\x1f{locales[loc]}\x1f{t}".encode(), digest_size=32).digest()
        for loc, t in zip(text_locale, texts))
    words = np.frombuffer(digest, dtype="<u4").reshape(-1, 8)
    return (words.astype(np.float64) + 0.5) / 2.0 ** 32


def interpret(u: np.ndarray, p_err: np.ndarray, true_intent: np.ndarray, slots: list[list],
              confusions: list[np.ndarray], n_intents: int) -> tuple[np.ndarray, np.ndarray, list]:
    """(nlu_intent with -1 for unhandled, confidence, nlu_slots or None) for texts with uniforms `u`."""
    err = u[:, 0] < p_err
    unhandled = err & (u[:, 1] < UNHANDLED_SHARE)
    wrong = err & ~unhandled
    nlu = true_intent.copy()
    nlu[unhandled] = -1
    for i in np.flatnonzero(wrong):
        cands = confusions[true_intent[i]]
        if len(cands) and u[i, 2] < CONFUSABLE_SHARE:
            nlu[i] = cands[int(u[i, 3] * len(cands))]
        else:
            j = int(u[i, 3] * (n_intents - 1))
            nlu[i] = j + (j >= true_intent[i])
    a = np.full(len(u), CONFIDENCE_BETA["correct"][0])
    b = np.full(len(u), CONFIDENCE_BETA["correct"][1])
    for kind, mask in (("wrong", wrong), ("unhandled", unhandled)):
        a[mask], b[mask] = CONFIDENCE_BETA[kind]
    confidence = np.round(betaincinv(a, b, u[:, 4]), 4)
    out_slots: list = []
    for i, s in enumerate(slots):
        if unhandled[i]:
            out_slots.append(None)
        elif wrong[i]:
            out_slots.append(s[: int(u[i, 5] * len(s))])   # partial or empty
        else:
            out_slots.append(s)
    return nlu, confidence, out_slots


def correct_confidence(u: np.ndarray) -> np.ndarray:
    """The confidence `interpret` gives a right answer for texts with uniforms `u` (a retrained NLU that
    now gets a text right scores it like one it always got right)."""
    return np.round(betaincinv(*CONFIDENCE_BETA["correct"], u[:, 4]), 4)


def uninformative_confidence(u: np.ndarray) -> np.ndarray:
    """Confidence of an overconfident NLU for texts with uniforms `u`: every text's score comes from the
    distribution of right answers, whether the NLU is right or not, so it says nothing about correctness."""
    return np.round(betaincinv(*CONFIDENCE_BETA["correct"], u[:, 7]), 4)

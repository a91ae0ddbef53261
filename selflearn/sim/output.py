"""Simulated events -> Arrow tables in the log contract and the ground-truth schemas, and the eval sets."""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from selflearn import contract
from selflearn.sim import nlu
from selflearn.sim.behavior import KINDS, REPHRASE_KINDS, STATUSES, TRAFFIC, Simulated, TextOutcomes
from selflearn.sim.catalog import Catalog
from selflearn.sim.massive import slots_of
from selflearn.sim.worlds import World

SEED_OTHER_PHRASINGS = 0.6        # share of correctly understood non-main phrasings in the training seed
EVAL_COLUMNS = pa.schema([("locale", pa.string()), ("utt", pa.string()), ("intent", pa.string()),
                          ("annot_utt", pa.string())])


def _hex_ids(rng: np.random.Generator, n: int, prefix: str, bits: int) -> pa.Array:
    """n distinct random ids `prefix` + hex, in ascending order (index order is string order)."""
    values = np.sort(rng.integers(0, 2 ** bits, n, dtype=np.int64))
    while n > 1 and (np.diff(values) == 0).any():
        values = np.unique(values)
        values = np.sort(np.concatenate([values, rng.integers(0, 2 ** bits, n - len(values), dtype=np.int64)]))
    width = (bits + 3) // 4
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64) * 4
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[(values[:, None] >> shifts) & 0xF]
    head = np.broadcast_to(np.frombuffer(prefix.encode(), dtype=np.uint8), (n, len(prefix)))
    data = np.ascontiguousarray(np.hstack([head, digits]))
    offsets = np.arange(n + 1, dtype=np.int32) * data.shape[1]
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def start_epoch_us(start_date: str) -> int:
    """Microseconds since 1970 of `start_date` (ISO date or datetime; naive means UTC)."""
    start = datetime.fromisoformat(start_date)
    start = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start.astimezone(timezone.utc)
    return int(start.timestamp() * 1_000_000)


def _slots_array(slots: list) -> pa.Array:
    return pa.array([None if s is None else [{"name": n, "value": v} for n, v in s] for s in slots],
                    type=contract.SLOTS)


def log_and_truth(sim: Simulated, cat: Catalog, out: TextOutcomes, start_date: str, rng: np.random.Generator,
                  world: World, logging_rng: np.random.Generator) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(logs, truth turns, truth pairs). The logs show what `world` lets a logger see; the truth is the
    simulated truth in every world. `logging_rng` is a stream of its own, so the logging knobs never
    change the ids and the turns `rng` draws."""
    n = len(sim.text)
    event_ids = _hex_ids(rng, n, "ev-", 63).take(pa.array(rng.permutation(n)))
    user_ids = _hex_ids(rng, sim.n_users, "u-", 48)
    sess_ids = _hex_ids(rng, len(sim.sess_has_id), "s-", 63)
    sess_ids = pc.if_else(pa.array(sim.sess_has_id), sess_ids, pa.nulls(len(sim.sess_has_id), pa.string()))
    epoch_us = start_epoch_us(start_date)
    text_intent = _intent_names(cat, out.intent)
    text_idx = pa.array(sim.text)
    locales = pa.array(cat.locales, type=pa.string())
    phr_req = np.asarray(cat.phr_req)
    true_intent = cat.req_intent[phr_req[sim.phr]]
    retrained = None if sim.nlu_version is None else sim.nlu_version == 1
    correct = out.intent_served(sim.text, retrained) == true_intent
    nlu_intent, nlu_slots = text_intent.take(text_idx), _slots_array(out.slots).take(text_idx)
    nlu_confidence = _logged_confidence(out.confidence, out, sim.text, world)
    if retrained is not None:   # a retrained NLU served some events: each event logs what its NLU said
        mask = pa.array(retrained)
        nlu_intent = pc.if_else(mask, _intent_names(cat, out.retrained_intent).take(text_idx), nlu_intent)
        nlu_slots = pc.if_else(mask, _slots_array(out.retrained_slots).take(text_idx), nlu_slots)
        nlu_confidence = pc.if_else(mask, _logged_confidence(out.retrained_confidence, out, sim.text, world),
                                    nlu_confidence)
    status, barge = _logged_friction(sim, ~correct | (sim.status == STATUSES.index("error")), world, logging_rng)
    logs = pa.table({
        "event_id": event_ids,
        "user_id": user_ids.take(pa.array(sim.user)),
        "session_id": sess_ids.take(pa.array(sim.session)),
        "locale": locales.take(pa.array(np.asarray(cat.text_locale)[sim.text])),
        "ts": pa.array(sim.ts_us + epoch_us, type=pa.timestamp("us", tz="UTC")),
        "utterance": pa.array(cat.texts, type=pa.string()).take(text_idx),
        "nlu_intent": nlu_intent,
        "nlu_slots": nlu_slots,
        "nlu_confidence": nlu_confidence,
        "response_status": pa.array(list(STATUSES), type=pa.string()).take(pa.array(status)),
        "barge_in": pa.array(barge == 1, mask=barge < 0),
    }, schema=contract.LOG_SCHEMA)

    phr_idx = pa.array(sim.phr)
    truth_turns = pa.table({
        "event_id": event_ids,
        "true_intent": pa.array(cat.intents, type=pa.string()).take(pa.array(true_intent)),
        "true_scenario": pa.array(cat.scenarios, type=pa.string()).take(pa.array(cat.intent_scenario[true_intent])),
        "true_annot_utt": pa.array(cat.phr_annot, type=pa.string()).take(phr_idx),
        "true_slots": _slots_array([slots_of(a) for a in cat.phr_annot]).take(phr_idx),
        "request_id": pa.array(cat.req_massive_id.tolist(), type=pa.string()).take(pa.array(phr_req[sim.phr])),
        "system_correct": pa.array(correct),
    }, schema=contract.TRUTH_TURNS_SCHEMA)

    b = np.flatnonzero(sim.user[1:] == sim.user[:-1]) + 1
    kinds = np.array(KINDS, dtype=object)[sim.kind[b]]
    truth_pairs = pa.table({
        "event_id_a": event_ids.take(pa.array(b - 1)),
        "event_id_b": event_ids.take(pa.array(b)),
        "is_rephrase": pa.array(np.isin(kinds, REPHRASE_KINDS)),
        "kind": pa.array(kinds.tolist(), type=pa.string()),
    }, schema=contract.TRUTH_PAIRS_SCHEMA)
    return logs, truth_turns, truth_pairs


def _logged_friction(sim: Simulated, failing: np.ndarray, world: World,
                     logging_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(status, barge) as logged: a failing turn outside the world's friction coverage logs "success" and
    no barge-in (still null where the device never reports one); the user's behaviour is unchanged."""
    unlogged = failing & (logging_rng.random(len(failing)) >= world.friction_coverage)
    status = np.where(unlogged, STATUSES.index("success"), sim.status)
    barge = np.where(unlogged & (sim.barge == 1), 0, sim.barge)
    return status, barge


def _intent_names(cat: Catalog, intent: np.ndarray) -> pa.Array:
    return pa.array([cat.intents[i] if i >= 0 else None for i in intent.tolist()], type=pa.string())


def _logged_confidence(confidence: np.ndarray, out: TextOutcomes, text: np.ndarray, world: World) -> pa.Array:
    if world.confidence == "absent":
        return pa.nulls(len(text), pa.float64())
    if world.confidence == "uninformative":
        return pa.array(nlu.uninformative_confidence(out.u[text]))
    return pa.array(confidence[text])


def nlu_seed(cat: Catalog, out: TextOutcomes) -> pa.Table:
    """Phrasings the simulated system was trained on: its main phrasings and some others, all ones it
    gets right (so a classifier trained on them reproduces the system's blind spots)."""
    rows = np.arange(cat.n_base_phr)
    text = np.asarray(cat.phr_text)[rows]
    intent = cat.req_intent[np.asarray(cat.phr_req)[rows]]
    trained = (np.asarray(cat.phr_k)[rows] == 0) | (out.u[text, 6] < SEED_OTHER_PHRASINGS)
    keep = rows[(out.intent[text] == intent) & trained]
    return _eval_table(cat, keep)


def nlu_test(cat: Catalog, turns: int, seed: int) -> pa.Table:
    """Fresh draws (own random stream) of request and phrasing, as users ask them; distinct texts."""
    rng = np.random.default_rng([seed, 7919])
    n = int(np.clip(turns // 4, 1000, 50_000))
    share = np.array([TRAFFIC.get(loc, 0.1) for loc in cat.locales])
    locale = rng.choice(len(cat.locales), n, p=share / share.sum())
    req = np.empty(n, dtype=np.int64)
    for li in range(len(cat.locales)):
        mask = locale == li
        reqs = np.flatnonzero(cat.req_locale == li)
        req[mask] = rng.choice(reqs, mask.sum(), p=cat.req_pop[reqs])
    w = cat.phr_weights[req]
    cum = w.cumsum(axis=1)
    k = np.minimum((cum < rng.random(n)[:, None] * cum[:, -1:]).sum(axis=1), cat.req_nphr[req] - 1)
    return _eval_table(cat, cat.req_phr_start[req] + k)


def _eval_table(cat: Catalog, phr_rows: np.ndarray) -> pa.Table:
    seen: set[tuple[int, int]] = set()
    rows = []
    for p in phr_rows.tolist():
        tid = cat.phr_text[p]
        key = (cat.text_locale[tid], tid)
        if key not in seen:
            seen.add(key)
            rows.append((cat.locales[cat.text_locale[tid]], cat.texts[tid],
                         cat.intents[cat.req_intent[cat.phr_req[p]]], cat.phr_annot[p]))
    rows.sort()
    return pa.table({name: [r[i] for r in rows] for i, name in enumerate(EVAL_COLUMNS.names)}, schema=EVAL_COLUMNS)

"""A label's life across runs in one output folder: new, confirmed, retired; what changed since the last run.

    advance(base, labels, text_days, as_of, rules) -> Lifecycle(state, changes, emitted)

`base` is the state the previous published run left (work/label_lifecycle.parquet), one row per (locale,
utt_norm, intent) ever labelled; `labels` this run's weak labels; `text_days` the daily events and defective
events of every text in the window (sql/text_days.sql); `as_of` the newest day in the window. A label is

    new        labelled, its text failed on fewer than `confirm_days` distinct days so far
    confirmed  labelled, its text failed on at least `confirm_days` distinct days
    retired    the NLU now handles the text: after the text last failed, the NLU read it as the labelled
               intent with normal friction on `retire_on_read_as` days (per-text per-day statistics: `text_days` per
               day and interpretation), or its friction over the last `recent_days` fell to `retire_defect_rate`;
               or the labeler gave the text another intent on two days `relabel_after_days` apart (the evidence
               flipped)

Hysteresis keeps labels from flipping: a retired label comes back only when its text fails at least
`revive_defect_rate` of the time again (the band between the two rates keeps the state) and failed on
`confirm_days` distinct days since it was retired (the evidence a new label needs to be confirmed: one noisy
day, e.g. quick follow-ups read as friction, does not revive it; benchmarks/drift.py); a label retired because
the NLU read its text as the labelled intent counts only the days its text failed mostly under another reading
(the NLU misreads it again: a text said once a day and followed twice by a quick request read as friction, still
read right, would otherwise come back; benchmarks/drift.py --world clinc), and a new
interpretation replaces a label only when it holds on a later day. While it waits, neither intent is emitted.
Everything is a function of (base, window, as_of): a re-run over the same days gives the same state, and the
caller re-advances from the same base when the previous run had the same `as_of` (pipeline, export stage).
Pure: pandas and numpy only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from selflearn.config import LifecycleConfig

KEY = ["locale", "utt_norm"]
LABEL = [*KEY, "intent"]
ACTIVE = ("new", "confirmed")
STATE_COLUMNS = [*LABEL, "state", "reason", "first_seen", "first_labelled", "last_evidence", "evidence_days",
                 "state_since", "pending_intent", "pending_since", "as_of"]
CHANGE_COLUMNS = ["as_of", *LABEL, "change", "state", "reason"]
READ_AS_REASON = "the NLU now handles it: read as"   # how a retirement by reading begins its reason


@dataclass
class Lifecycle:
    state: pd.DataFrame      # STATE_COLUMNS, one row per label ever given (private: work/)
    changes: pd.DataFrame    # CHANGE_COLUMNS: this run's changes against the base
    emitted: pd.DataFrame    # this run's labels that are live (new or confirmed), with the lifecycle columns
    withheld: pd.DataFrame   # this run's labels that are not: retired, or contested by another interpretation


def empty_state() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in STATE_COLUMNS})


def advance(base: pd.DataFrame | None, labels: pd.DataFrame, text_days: pd.DataFrame, as_of: str,
            rules: LifecycleConfig) -> Lifecycle:
    base = empty_state() if base is None or base.empty else base[STATE_COLUMNS]
    given = dict(zip(zip(labels["locale"], labels["utt_norm"]), labels["intent"])) if len(labels) else {}
    rows = {tuple(r[c] for c in LABEL): dict(r) for r in base.to_dict(orient="records")}
    keys = sorted({k[:2] for k in rows} | set(given))
    days = _daily(_of_texts(text_days, keys), rules, as_of)
    by_text: dict[tuple, list[dict]] = {}   # a text's labels, without a scan of every label per text
    for k, r in rows.items():
        by_text.setdefault(k[:2], []).append(r)
    for key in keys:
        info = days.get(key, _NO_DAYS)
        intent_now = given.get(key)
        mine = by_text.get(key, [])
        live = next((r for r in mine if r["state"] in ACTIVE), None)
        for r in mine:   # every label of the text sees the same days
            r["evidence_days"] = _union(r["evidence_days"], info["evidence_days"])
            r["last_evidence"] = max(r["evidence_days"], default=r["last_evidence"])
            r["first_seen"] = min(filter(None, [r["first_seen"], info["first_seen"]]), default=None)
        if live is not None and intent_now not in (None, live["intent"]):
            if live["pending_intent"] != intent_now:
                live["pending_intent"], live["pending_since"] = intent_now, as_of
            if _relabeled_away(rows.get((*key, intent_now))):
                continue      # the labeler went back to an interpretation it left: contested, emit neither
            if _days_between(live["pending_since"], as_of) >= rules.relabel_after_days:
                _set(live, "retired", f"relabeled to {intent_now}", as_of)
                live["pending_intent"] = live["pending_since"] = None
                live = None   # the new interpretation starts below
            else:
                continue      # contested: keep the state, emit neither
        elif live is not None:
            live["pending_intent"] = live["pending_since"] = None
        if live is None and intent_now is not None:
            old = rows.get((*key, intent_now))
            if old is None:
                old = rows[(*key, intent_now)] = {
                    "locale": key[0], "utt_norm": key[1], "intent": intent_now, "state": None, "reason": None,
                    "first_seen": info["first_seen"], "first_labelled": as_of,
                    "evidence_days": info["evidence_days"], "last_evidence": max(info["evidence_days"], default=None),
                    "state_since": as_of, "pending_intent": None, "pending_since": None}
                _set(old, "new", "labelled", as_of)
                live = old
            elif old["state"] == "retired" and not _relabeled_away(old) \
                    and info["recent_rate"] >= rules.revive_defect_rate \
                    and info["recent_events"] >= rules.min_recent_events and old["state_since"] != as_of \
                    and len(_failed_since(old, info)) >= rules.confirm_days:
                # it keeps its days of evidence (they include the confirm_days failed days since its retirement
                # that revived it), so it is confirmed in this run, not read as a label seen for the first time
                _set(old, "new", "fails again", as_of)
                live = old
        if live is None:
            continue
        read_as = _read_as_since(info, live)
        if rules.retire_on_read_as and len(read_as) >= rules.retire_on_read_as:
            _set(live, "retired", f"{READ_AS_REASON} {live['intent']} with normal friction on "
                                  f"{len(read_as)} day(s)", as_of)
        elif not _misread(info, live["intent"]) \
                and info["recent_events"] >= rules.min_recent_events and info["recent_rate"] <= rules.retire_defect_rate:
            # a text whose failures were read as the labelled intent (slots, ASR): only its friction can tell
            _set(live, "retired", "the NLU now handles it", as_of)
        elif len(live["evidence_days"]) >= rules.confirm_days and live["state"] == "new":
            _set(live, "confirmed", f"failed on {len(live['evidence_days'])} days", as_of)
    state = pd.DataFrame([{**r, "as_of": as_of} for r in rows.values()], columns=STATE_COLUMNS)
    state = state.sort_values(LABEL, kind="stable").reset_index(drop=True)
    emitted = _emitted(labels, state)
    withheld = labels.merge(emitted[LABEL], on=LABEL, how="left", indicator=True) if len(labels) else labels
    withheld = withheld[withheld["_merge"] == "left_only"].drop(columns="_merge") if len(labels) else labels
    return Lifecycle(state, _changes(base, state, as_of), emitted, withheld)


_NO_DAYS = {"evidence_days": [], "first_seen": None, "recent_events": 0, "recent_rate": 0.0, "read_as": {},
            "defective_by_intent": {}, "defective_by_day": {}}


def _daily(text_days: pd.DataFrame, rules: LifecycleConfig, as_of: str) -> dict:
    """(locale, utt_norm) -> the days it failed, the first day it was said, its recent friction, and per
    interpretation the days the NLU read it so with normal friction (`text_days` per day, or per day and intent)."""
    if text_days.empty:
        return {}
    frame = text_days.assign(day=text_days["day"].astype(str))
    per_day = frame.groupby([*KEY, "day"], as_index=False, sort=True)[["n_events", "n_defective"]].sum()
    recent_from = days_before(as_of, rules.recent_days - 1)
    failed = per_day["n_defective"] >= rules.revive_defect_rate * per_day["n_events"]
    read_as, defective, defective_by_day = _read_as_days(frame, per_day, rules)
    # arrays sliced per text, not a pandas group per text: every label ever given is read each run
    locales, utts = per_day["locale"].tolist(), per_day["utt_norm"].tolist()
    day = per_day["day"].tolist()
    events, bad = per_day["n_events"].to_numpy(), per_day["n_defective"].to_numpy()
    recent = (per_day["day"] >= recent_from).to_numpy()
    starts = [i for i in range(len(day)) if i == 0 or (locales[i], utts[i]) != (locales[i - 1], utts[i - 1])]
    recent_events = np.add.reduceat(np.where(recent, events, 0), starts) if starts else []
    recent_bad = np.add.reduceat(np.where(recent, bad, 0), starts) if starts else []
    failed = failed.to_numpy()
    out = {}
    for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(day)])):
        key, n_events = (locales[a], utts[a]), int(recent_events[n])
        out[key] = {"evidence_days": [day[i] for i in range(a, b) if failed[i]], "first_seen": day[a],
                    "recent_events": n_events,
                    "recent_rate": float(recent_bad[n]) / n_events if n_events else 0.0,
                    "read_as": read_as.get(key, {}), "defective_by_intent": defective.get(key, {}),
                    "defective_by_day": defective_by_day.get(key, {})}
    return out


def _read_as_days(frame: pd.DataFrame, per_day: pd.DataFrame, rules: LifecycleConfig) -> tuple[dict, dict, dict]:
    """(locale, utt_norm) -> {intent: days}: the days the NLU read the text as `intent` with normal friction on
    those turns and on all the day's turns (at most `retire_defect_rate` each): the NLU handles it then;
    (locale, utt_norm) -> {intent: defective turns read so}; and the same per day: {day: {intent: defective}}. A
    text the NLU still gets wrong is never read as the labelled intent, however often its wrong reading passes
    without friction. Normal, not zero: a busy text read
    right keeps a few defective turns (quick follow-ups read as friction) and would otherwise never retire; a
    text said fewer than 1 / `retire_defect_rate` times that day still needs every turn clean."""
    if "intent" not in frame.columns:
        return {}, {}, {}
    intents = frame.assign(intent=frame["intent"].fillna(""))
    defective: dict = {}
    for (locale, utt_norm, intent), n in intents.groupby([*KEY, "intent"], sort=True)["n_defective"].sum().items():
        defective.setdefault((locale, utt_norm), {})[intent] = int(n)
    by_day: dict = {}
    bad = intents[intents["n_defective"] > 0]
    for locale, utt_norm, day, intent, n in zip(bad["locale"], bad["utt_norm"], bad["day"], bad["intent"],
                                                bad["n_defective"]):
        by_day.setdefault((locale, utt_norm), {}).setdefault(day, {})[intent] = int(n)
    normal = per_day[per_day["n_defective"] <= rules.retire_defect_rate * per_day["n_events"]][[*KEY, "day"]]
    clean = intents[(intents["n_events"] > 0) & (intents["intent"] != "")
                    & (intents["n_defective"] <= rules.retire_defect_rate * intents["n_events"])]
    clean = clean.merge(normal, on=[*KEY, "day"], how="inner")
    out: dict = {}
    clean = clean.sort_values([*KEY, "intent", "day"], kind="stable")
    for locale, utt_norm, intent, day in zip(clean["locale"], clean["utt_norm"], clean["intent"], clean["day"]):
        out.setdefault((locale, utt_norm), {}).setdefault(intent, []).append(day)
    return out, defective, by_day


def _misread(info: dict, intent: str) -> bool:
    """Whether the text failed mostly under another reading than `intent` (fewer than half of its defective
    turns were read as `intent`). Read-as days count only then: when a text's failures were read as the
    labelled intent already (a slot or an ASR problem), a clean day read so shows no change in the NLU, and
    only its friction can tell."""
    return _mostly_other(info["defective_by_intent"], intent)


def _mostly_other(defective_by_intent: dict, intent: str) -> bool:
    total = sum(defective_by_intent.values())
    return total > 0 and 2 * defective_by_intent.get(intent, 0) < total


def _read_as_since(info: dict, label: dict) -> list[str]:
    """Days after the text last failed on which the NLU read it as the label's intent with normal friction; a day
    the text fails again starts the count anew (hysteresis: one good day amid failures retires nothing)."""
    if not _misread(info, label["intent"]):
        return []
    last_failed = max(info["evidence_days"], default=None)
    return [d for d in info["read_as"].get(label["intent"], []) if last_failed is None or d > last_failed]


def _of_texts(text_days: pd.DataFrame, keys: list[tuple]) -> pd.DataFrame:
    """The rows of `text_days` on the labelled texts `keys` only: the window holds many more texts."""
    if text_days.empty or not keys:
        return text_days.iloc[0:0]
    wanted = pd.DataFrame(keys, columns=KEY)
    return text_days.merge(wanted, on=KEY, how="inner")


def _union(before, now: list[str]) -> list[str]:
    return sorted(set(list(before) if before is not None else []) | set(now))


def _relabeled_away(row: dict | None) -> bool:
    """A label retired because the labeler gave its text another interpretation: it never comes back, so that
    two readings taking turns do not make labels flip (the text stays contested while they do)."""
    return row is not None and row["state"] == "retired" and str(row["reason"] or "").startswith("relabeled")


def _failed_since(row: dict, info: dict) -> list[str]:
    """Distinct days the text failed after the label's last change of state; for a label retired because the NLU
    read its text as the labelled intent, only the days it failed mostly under another reading: a day whose
    friction came from turns still read as the label's intent shows no relapse of the NLU, and a label the NLU
    already follows would teach it nothing."""
    days = [d for d in row["evidence_days"] if d > row["state_since"]]
    if not str(row["reason"] or "").startswith(READ_AS_REASON):
        return days
    by_day = info["defective_by_day"]
    return [d for d in days if _mostly_other(by_day.get(d, {}), row["intent"])]


def days_before(day: str, n: int) -> str:
    """The ISO day `n` days before `day` (the first day there is, at worst). Python dates, not pandas
    Timestamps: a valid log may hold any day of years 1-9999, beyond pandas' nanosecond range."""
    try:
        return (dt.date.fromisoformat(day) - dt.timedelta(days=n)).isoformat()
    except OverflowError:
        return dt.date.min.isoformat()


def _days_between(a: str | None, b: str) -> int:
    return 0 if a is None else (dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days


def _set(row: dict, state: str, reason: str, as_of: str) -> None:
    if row["state"] != state:
        row["state"], row["reason"], row["state_since"] = state, reason, as_of


def _changes(base: pd.DataFrame, state: pd.DataFrame, as_of: str) -> pd.DataFrame:
    before = base[[*LABEL, "state"]].rename(columns={"state": "before"})
    both = state.merge(before, on=LABEL, how="left")
    moved = both[both["before"].isna() | (both["before"] != both["state"])].copy()
    moved["change"] = [_change_name(b, s) for b, s in zip(moved["before"], moved["state"])]
    moved["as_of"] = as_of
    return moved[CHANGE_COLUMNS].reset_index(drop=True)


def _change_name(before, after: str) -> str:
    if not isinstance(before, str):
        return "new" if after in ACTIVE else "retired"
    if after == "retired":
        return "retired"
    return "revived" if before == "retired" else after   # new -> confirmed reads "confirmed"


def _emitted(labels: pd.DataFrame, state: pd.DataFrame) -> pd.DataFrame:
    """This run's labels whose (text, intent) is live, with state, first_seen, first_labelled, last_evidence."""
    live = state[state["state"].isin(ACTIVE)][[*LABEL, "state", "first_seen", "first_labelled", "last_evidence"]]
    if labels.empty:
        return labels.assign(**{c: pd.Series(dtype="object") for c in live.columns if c not in labels})
    return labels.merge(live, on=LABEL, how="inner").reset_index(drop=True)

"""lifecycle.advance on inline daily counts: a retired label stays retired through one noisy day and comes back
only when its text fails again on confirm_days distinct days."""
from __future__ import annotations

import pandas as pd

from selflearn import lifecycle
from selflearn.config import LifecycleConfig

RULES = LifecycleConfig()
LABEL = pd.DataFrame([{"locale": "ja-JP", "utt_norm": "東京のブックフェア", "intent": "recommendation_events"}])


def _days(rates: dict[int, tuple[int, int]]) -> pd.DataFrame:
    """{day of November 2026: (events, defective)} -> text_days of the one text."""
    return pd.DataFrame([{"locale": "ja-JP", "utt_norm": "東京のブックフェア", "day": f"2026-11-{d:02d}",
                          "n_events": n, "n_defective": bad} for d, (n, bad) in sorted(rates.items())])


def _states(daily: dict[int, tuple[int, int]]) -> list[str]:
    """The label's state after a run on each day, the window growing, the labeler giving it every day."""
    base, states = None, []
    for day in sorted(daily):
        life = lifecycle.advance(base, LABEL, _days({d: v for d, v in daily.items() if d <= day}),
                                 f"2026-11-{day:02d}", RULES)
        base = life.state
        states.append(life.state["state"].iloc[0])
    return states


def test_one_noisy_day_after_retirement_does_not_revive_the_label():
    failing, fixed, noisy = (6, 5), (6, 0), (6, 6)   # noisy: its two recent days fail half the time
    states = _states({1: failing, 2: failing, 3: fixed, 4: fixed, 5: noisy, 6: fixed, 7: fixed})
    assert states == ["new", "confirmed", "confirmed", "retired", "retired", "retired", "retired"]


def test_a_text_that_fails_again_on_two_days_revives_its_label():
    failing, fixed = (6, 5), (6, 0)
    states = _states({1: failing, 2: failing, 3: fixed, 4: fixed, 5: failing, 6: failing, 7: failing})
    assert states[:5] == ["new", "confirmed", "confirmed", "retired", "retired"]
    assert states[5] == "confirmed" and states[6] == "confirmed"


def test_a_revived_label_keeps_its_days_of_evidence_and_is_confirmed_not_new():
    """A label comes back only after its text failed on confirm_days days since its retirement: that is the
    evidence a confirmed label has, and its earlier failed days stay its evidence (they were emptied once, so a
    revived label read `new` for one run)."""
    failing, fixed = (6, 5), (6, 0)
    daily = {1: failing, 2: failing, 3: fixed, 4: fixed, 5: failing, 6: failing}
    base = None
    for day in sorted(daily):
        life = lifecycle.advance(base, LABEL, _days({d: v for d, v in daily.items() if d <= day}),
                                 f"2026-11-{day:02d}", RULES)
        base = life.state
    row = life.state.iloc[0]
    assert row["state"] == "confirmed"
    assert list(row["evidence_days"]) == ["2026-11-01", "2026-11-02", "2026-11-05", "2026-11-06"]
    assert row["last_evidence"] == "2026-11-06" and row["state_since"] == "2026-11-06"
    assert life.changes[["change", "state"]].values.tolist() == [["revived", "confirmed"]]
    assert life.emitted["state"].tolist() == ["confirmed"]


# ------------------------------------------------- retirement when the NLU reads the text as the labelled intent
MISREAD, RIGHT = "calendar_query", "recommendation_events"   # the first NLU's wrong reading, the label's intent


def _intent_days(daily: dict[int, list[tuple[str, int, int]]]) -> pd.DataFrame:
    """{day: [(intent the NLU read, events, defective)]} -> text_days per day and interpretation."""
    return pd.DataFrame([{"locale": "ja-JP", "utt_norm": "東京のブックフェア", "day": f"2026-11-{d:02d}",
                          "intent": intent, "n_events": n, "n_defective": bad}
                         for d, reads in sorted(daily.items()) for intent, n, bad in reads])


def _lives(daily: dict, labels_by_day: dict | None = None, rules: LifecycleConfig = RULES) -> list[tuple]:
    """(state, reason) of every label after a run on each day; the labeler gives RIGHT unless told otherwise."""
    base, out = None, []
    for day in sorted(daily):
        intent = (labels_by_day or {}).get(day, RIGHT)
        labels = LABEL.assign(intent=intent)
        life = lifecycle.advance(base, labels, _intent_days({d: v for d, v in daily.items() if d <= day}),
                                 f"2026-11-{day:02d}", rules)
        base = life.state
        out.append(dict(zip(zip(life.state["intent"], life.state["state"]), life.state["reason"])))
    return out


def test_a_label_confirmed_then_retired_the_day_the_nlu_reads_its_text_right():
    failing = [(MISREAD, 3, 3)]
    fixed_one_user = [(RIGHT, 1, 0)]          # one event: too few for the friction-rate rule (min_recent_events)
    lives = _lives({1: failing, 2: failing, 3: failing, 4: fixed_one_user})
    assert list(lives[1]) == [(RIGHT, "confirmed")] and list(lives[2]) == [(RIGHT, "confirmed")]
    assert list(lives[3]) == [(RIGHT, "retired")]
    assert lives[3][(RIGHT, "retired")].startswith("the NLU now handles it: read as recommendation_events")


def test_a_wrong_reading_without_friction_retires_nothing_and_a_failure_restarts_the_count():
    failing, wrong_but_quiet = [(MISREAD, 3, 3)], [(MISREAD, 4, 0)]
    two_days = RULES.model_copy(update={"retire_on_read_as": 2})
    lives = _lives({1: failing, 2: failing, 3: wrong_but_quiet, 4: [(RIGHT, 1, 0)], 5: failing, 6: [(RIGHT, 1, 0)],
                    7: [(RIGHT, 2, 0)]}, rules=two_days)
    # day 3: the friction-rate rule would retire (4 quiet events) but the text failed under another reading
    assert [next(iter(s))[1] for s in lives] == ["new", "confirmed", "confirmed", "confirmed", "confirmed",
                                                 "confirmed", "retired"]


def test_a_relabel_back_to_the_first_interpretation_leaves_the_text_contested_not_flipping():
    failing = [(MISREAD, 3, 3)]
    other = "recommendation_movies"
    lives = _lives({d: failing for d in range(1, 9)},
                   labels_by_day={1: RIGHT, 2: RIGHT, 3: other, 4: other, 5: RIGHT, 6: RIGHT, 7: RIGHT, 8: RIGHT})
    last = lives[-1]
    assert last[(RIGHT, "retired")].startswith("relabeled to") and (other, "confirmed") in last
    live_runs = {intent: [any(i == intent and s in ("new", "confirmed") for i, s in run) for run in lives]
                 for intent in (RIGHT, other)}
    for seq in live_runs.values():   # live, then not live, never live again
        text = "".join("1" if v else "0" for v in seq).lstrip("0")
        assert "01" not in text, seq


def test_a_busy_text_read_right_retires_despite_a_few_defective_follow_ups():
    failing = [(MISREAD, 30, 20)]
    read_right_busy = [(RIGHT, 60, 5)]      # 8 % friction: quick follow-ups read as friction, not a failure
    lives = _lives({1: failing, 2: failing, 3: read_right_busy})
    assert list(lives[2]) == [(RIGHT, "retired")]


def test_a_text_read_right_with_high_friction_or_said_once_with_friction_is_not_retired():
    failing = [(MISREAD, 3, 3)]
    read_right_but_failing = [(RIGHT, 20, 8)]   # 40 %: read as the label's intent yet still failing (slots, ASR)
    once_with_friction = [(RIGHT, 1, 1)]        # one turn: friction on it is all the day says
    lives = _lives({1: failing, 2: failing, 3: read_right_but_failing, 4: once_with_friction})
    assert [next(iter(s))[1] for s in lives] == ["new", "confirmed", "confirmed", "confirmed"]


def test_friction_on_turns_still_read_as_the_labelled_intent_does_not_revive_a_label_retired_by_reading():
    """A fixed text said twice a day, each time followed by a quick request read as friction (CLINC drift world,
    benchmarks/drift.py --world clinc): two such days revived its label before, with the NLU still reading it
    right. Only days the NLU misreads the text again count."""
    failing, read_right = [(MISREAD, 3, 3)], [(RIGHT, 1, 0)]
    noisy_but_read_right = [(RIGHT, 2, 1)]     # half the turns defective: a failed day by the friction rate
    quiet = {1: failing, 2: failing, 3: failing, 4: read_right}
    lives = _lives({**quiet, 5: noisy_but_read_right, 6: noisy_but_read_right, 7: noisy_but_read_right})
    assert [next(iter(s))[1] for s in lives] == ["new", "confirmed", "confirmed", "retired", "retired", "retired",
                                                 "retired"]
    misread_again = [(MISREAD, 2, 2)]          # the NLU gets it wrong again: the label is needed again
    lives = _lives({**quiet, 5: misread_again, 6: misread_again})
    assert [next(iter(s))[1] for s in lives][3:] == ["retired", "retired", "confirmed"]   # revived, evidence kept
    assert lives[-1][(RIGHT, "confirmed")].startswith("failed on")

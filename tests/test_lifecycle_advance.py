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
    assert states[5] == "new" and states[6] == "confirmed"

"""daily.plan_days, pure: which days of the window a run computes, on inline file->days maps."""
from __future__ import annotations

import pytest

from selflearn.stages.daily import day_weights, plan_days

DAYS = [f"2026-11-{d:02d}" for d in range(1, 8)]
SETTINGS = {"friction": {"quick_retry_s": 8.0}}


def _files(**extra) -> dict:
    files = {f"day={d}/part.parquet": {"stamp": "100-1", "days": [d]} for d in DAYS}
    return {**files, **extra}


def _next(files: dict, before, window_days: int = 28, settings: dict = SETTINGS):
    reusable = set(before.fingerprints) if before is not None else set()
    return plan_days(files, window_days, settings, before.ledger() if before is not None else None, reusable)


def test_the_first_run_computes_every_day_and_a_rerun_none():
    first = _next(_files(), None)
    assert first.window == DAYS and first.fresh == DAYS and first.reused == []
    again = _next(_files(), first)
    assert again.fresh == [] and again.reused == DAYS


def test_a_new_day_recomputes_itself_and_the_day_before():
    first = _next({k: v for k, v in _files().items() if "11-07" not in k}, None)
    assert first.window == DAYS[:-1]
    assert _next(_files(), first).fresh == ["2026-11-06", "2026-11-07"]


def test_a_late_file_for_a_past_day_recomputes_that_day_and_its_neighbours():
    first = _next(_files(), None)
    late = _next(_files(**{"day=2026-11-04/late.parquet": {"stamp": "50-2", "days": ["2026-11-04"]}}), first)
    assert late.fresh == ["2026-11-03", "2026-11-04", "2026-11-05"]
    changed = dict(_files())
    changed["day=2026-11-02/part.parquet"] = {"stamp": "101-9", "days": ["2026-11-02"]}   # a file rewritten
    assert _next(changed, first).fresh == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_settings_a_missing_partition_and_a_sliding_window_recompute():
    first = _next(_files(), None)
    assert _next(_files(), first, settings={"friction": {"quick_retry_s": 5.0}}).fresh == DAYS
    missing = plan_days(_files(), 28, SETTINGS, first.ledger(), set(DAYS) - {"2026-11-05"})
    assert missing.fresh == ["2026-11-05"]
    slid = _next(_files(), first, window_days=5)
    # the window's first day lost its neighbour before it: its context changed, the others' did not
    assert slid.window == DAYS[2:] and slid.fresh == ["2026-11-03"]


def test_decay_weights_halve_every_half_life_and_are_one_without():
    assert day_weights(DAYS, None) == {d: 1.0 for d in DAYS}
    weights = day_weights(DAYS, 2.0)
    assert weights["2026-11-07"] == 1.0 and weights["2026-11-05"] == pytest.approx(0.5)
    assert weights["2026-11-01"] == pytest.approx(0.125)

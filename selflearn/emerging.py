"""Emerging phrasings: per locale, the texts whose traffic or failure rate rose sharply in the last days against
their own history — what an NLU team triages first after a launch or a change in the lexicon.

    burst_scores(text_days, as_of, rules) -> one row per (locale, utt_norm) said in the recent days

`text_days` holds each text's daily events and defective events in the window (sql/text_days.sql). The last
`recent_days` days up to `as_of` are compared with the days before them in the window (the history), with the
one-sided Poisson log-likelihood ratio of the recent count x against the count e the history predicts

    score(x, e) = x ln(x / e) - (x - e)    when x > e, else 0

(the burst statistic of Kulldorff's scan; 2 x score is asymptotically chi-square with one degree of freedom, so
a score of 5 is p ~ 0.001 for a single text). Two expectations, each a text's own history:
- traffic: the text's share of its locale's events in the history, times the locale's events now, so a locale
  whose traffic grows (a weekday, a campaign) does not make every text burst. A text never said before has
  `prior_events` of history: a new text said by many is a strong burst, one said once is none.
- failure: the text's recent events times its history failure rate, shrunk towards the locale's history
  failure rate with the weight of `prior_events` events, so a text that always failed does not burst and a new
  text is measured against what is normal for its locale.
A locale with no history (it launched within the recent days) has nothing to compare with: none of its texts
score. `score` is the larger of the two; `rising` says which ("traffic", "failure" or "both" when each reaches
`min_score`). Pure: pandas and numpy only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from selflearn.config import EmergingConfig
from selflearn.lifecycle import days_before

KEY = ["locale", "utt_norm"]
COLUMNS = [*KEY, "first_seen", "recent_events", "recent_defective", "history_events", "history_defective",
           "expected_events", "expected_defective", "traffic_score", "failure_score", "score", "rising"]


def poisson_burst(observed: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """One-sided Poisson log-likelihood ratio of `observed` counts against `expected` (> 0); 0 where x <= e."""
    x, e = np.asarray(observed, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where(x > 0, x * np.log(x / e), 0.0) - (x - e)
    return np.where(x > e, llr, 0.0)


def burst_scores(text_days: pd.DataFrame, as_of: str, rules: EmergingConfig) -> pd.DataFrame:
    """Every text said in the recent days with enough events, scored; highest score first within each locale."""
    if text_days.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
    days = text_days.assign(day=text_days["day"].astype(str))
    recent_from = days_before(as_of, rules.recent_days - 1)
    days["period"] = np.where(days["day"] >= recent_from, "recent", "history")
    counts = days.pivot_table(index=KEY, columns="period", values=["n_events", "n_defective"], aggfunc="sum",
                              fill_value=0)
    counts.columns = [f"{period}_{'events' if v == 'n_events' else 'defective'}" for v, period in counts.columns]
    counts = counts.reindex(columns=["recent_events", "recent_defective", "history_events", "history_defective"],
                            fill_value=0).reset_index()
    # the earliest day as the minimum of integer codes: a minimum over strings runs row by row in Python
    day_names, day_codes = np.unique(days["day"].to_numpy(dtype=object), return_inverse=True)
    counts["first_seen"] = day_names[days.assign(code=day_codes).groupby(KEY)["code"].min().to_numpy()]
    locale = counts.groupby("locale")[["recent_events", "history_events", "history_defective"]].sum()
    locale.columns = ["locale_recent", "locale_history", "locale_history_defective"]
    scored = counts.merge(locale, left_on="locale", right_index=True)
    scored = scored[(scored["recent_events"] >= rules.min_recent_events) & (scored["locale_history"] > 0)].copy()
    prior = rules.prior_events
    scored["expected_events"] = ((scored["history_events"] + prior) / scored["locale_history"]
                                 * scored["locale_recent"])
    normal_rate = scored["locale_history_defective"] / scored["locale_history"]
    history_rate = (scored["history_defective"] + prior * normal_rate) / (scored["history_events"] + prior)
    # a rate of exactly 0 would make any failure an infinite surprise
    scored["expected_defective"] = scored["recent_events"] * history_rate.clip(lower=1e-3)
    scored["traffic_score"] = poisson_burst(scored["recent_events"], scored["expected_events"])
    scored["failure_score"] = poisson_burst(scored["recent_defective"], scored["expected_defective"])
    scored["score"] = scored[["traffic_score", "failure_score"]].max(axis=1)
    traffic, failure = scored["traffic_score"] >= rules.min_score, scored["failure_score"] >= rules.min_score
    scored["rising"] = np.select([traffic & failure, failure, traffic], ["both", "failure", "traffic"],
                                 default=np.where(scored["traffic_score"] >= scored["failure_score"],
                                                  "traffic", "failure"))
    scored = scored.sort_values(["locale", "score", "utt_norm"], ascending=[True, False, True], kind="stable")
    return scored[COLUMNS].reset_index(drop=True)


def emerging(scores: pd.DataFrame, rules: EmergingConfig) -> pd.DataFrame:
    """The triage list: per locale, texts scoring at least `min_score`, at most `top_per_locale`, ranked from 1."""
    kept = scores[scores["score"] >= rules.min_score]
    kept = kept.groupby("locale", sort=True).head(rules.top_per_locale).copy()
    kept["rank"] = kept.groupby("locale").cumcount() + 1
    return kept.reset_index(drop=True)

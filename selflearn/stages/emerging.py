"""history/emerging.parquet: this run's emerging phrasings (selflearn/emerging.py), each with what the NLU
says now and the interpretation mined for it, if any — the list an NLU team triages first.

    <run>/history/emerging.parquet   released (EMERGING_SCHEMA): per locale, ranked from 1 by burst score

A text enters only through the release filter (said by at least privacy.min_users users in the window); the
list is cut to `top_per_locale` after that filter, so unreleasable texts do not crowd a locale's list out.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa

from selflearn import emerging
from selflearn.config import EmergingConfig
from selflearn.io import atomic_write_parquet
from selflearn.release import ReleaseFilter
from selflearn.layout import RUN_FILES

EMERGING_FILE = RUN_FILES["emerging_phrasings"]
EMERGING_SCHEMA = pa.schema([
    ("locale", pa.string()), ("rank", pa.int64()), ("utt_norm", pa.string()), ("utt", pa.string()),
    ("score", pa.float64()), ("rising", pa.string()),          # traffic / failure / both
    ("traffic_score", pa.float64()), ("failure_score", pa.float64()),
    ("recent_events", pa.int64()), ("expected_events", pa.float64()), ("recent_defect_rate", pa.float64()),
    ("history_events", pa.int64()), ("history_defect_rate", pa.float64()),   # null: never said before
    ("first_seen", pa.string()), ("n_users", pa.int64()),
    ("nlu_intent", pa.string()),      # the system's most frequent interpretation in the window
    ("mined_intent", pa.string()),    # this run's live weak label for the text, if any
    ("label_state", pa.string()),     # its lifecycle state (new / confirmed)
    ("as_of", pa.string()),
])


def write(run_dir: Path, text_days: pd.DataFrame, nodes: pd.DataFrame, labels: pd.DataFrame,
          release: ReleaseFilter, rules: EmergingConfig) -> dict:
    """Score, filter, write; return the counts the manifest shows."""
    as_of = str(text_days["day"].max()) if len(text_days) else ""
    scores = emerging.burst_scores(text_days, as_of, rules)
    candidates = scores[scores["score"] >= rules.min_score]
    candidates = candidates.merge(nodes[["locale", "utt_norm", "utt", "n_users", "top_intent"]],
                                  on=["locale", "utt_norm"], how="left")
    mined = labels[["locale", "utt_norm", "intent", "state"]].drop_duplicates(["locale", "utt_norm"]) if len(labels) \
        else pd.DataFrame(columns=["locale", "utt_norm", "intent", "state"])
    candidates = candidates.merge(mined, on=["locale", "utt_norm"], how="left")
    released, withheld = release.keep("emerging_phrasings", candidates)
    top = emerging.emerging(released, rules)
    shown = top.rename(columns={"top_intent": "nlu_intent", "intent": "mined_intent", "state": "label_state"})
    shown = shown.assign(
        recent_defect_rate=top["recent_defective"] / top["recent_events"],
        history_defect_rate=top["history_defective"] / top["history_events"].where(top["history_events"] > 0),
        as_of=as_of)
    table = pa.table({f.name: pa.array([None if pd.isna(v) else v for v in shown[f.name]] if len(shown) else [],
                                       type=f.type) for f in EMERGING_SCHEMA}, schema=EMERGING_SCHEMA)
    atomic_write_parquet(table, Path(run_dir) / EMERGING_FILE)
    return {"as_of": as_of, "per_locale": {loc: int(n) for loc, n in top.groupby("locale").size().items()},
            "with_mined_intent": int(top["intent"].notna().sum()), "withheld": int(withheld)}

"""The label lifecycle's files (selflearn/lifecycle.py): read the previous run's state, write this run's.

    <run>/work/label_lifecycle.parquet        the state after this run (private: every label ever given)
    <run>/work/label_lifecycle_base.parquet   the state this run advanced from: a re-run over the same newest
                                              day advances from it again, so it ends where the first run did
    <run>/history/labels.parquet              released: each label's state, first_seen, first_labelled,
                                              last_evidence, reason (HISTORY_SCHEMA)
    <run>/history/changes.parquet             released: every change, run after run (as_of = the newest day
                                              of the run that made it): new, confirmed, retired, revived

history/ sits beside training/, not inside it: a dataset loader reading training/ sees training data only.
A text enters history/ through the release filter; a text once released stays in the history of later runs
(it was released then, and its retirement is the news a team needs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from selflearn import lifecycle
from selflearn.config import LifecycleConfig
from selflearn.io import atomic_write_parquet
from selflearn.layout import RUN_FILES
from selflearn.release import ReleaseFilter

STATE_FILE, BASE_FILE = RUN_FILES["label_lifecycle"], RUN_FILES["label_lifecycle_base"]
LABELS_FILE, CHANGES_FILE = RUN_FILES["label_history"], RUN_FILES["label_changes"]
HISTORY_SCHEMA = pa.schema([
    ("locale", pa.string()), ("utt_norm", pa.string()), ("intent", pa.string()), ("state", pa.string()),
    ("reason", pa.string()), ("first_seen", pa.string()), ("first_labelled", pa.string()),
    ("last_evidence", pa.string()), ("state_since", pa.string()), ("evidence_day_count", pa.int64()),
    ("as_of", pa.string()),
])
CHANGES_SCHEMA = pa.schema([(c, pa.string()) for c in lifecycle.CHANGE_COLUMNS])


def _read(path: Path) -> pd.DataFrame | None:
    return pq.read_table(path).to_pandas() if path.is_file() else None


def advance_from(previous_run: Path, labels: pd.DataFrame, text_days: pd.DataFrame,
                 rules: LifecycleConfig) -> tuple[lifecycle.Lifecycle, pd.DataFrame, pd.DataFrame | None]:
    """(this run's lifecycle, the base it advanced from, the previous run's history) for the published run
    folder `previous_run`. as_of is the newest day of the window (of the base when the window is empty)."""
    state = _read(previous_run / STATE_FILE)
    as_of = str(text_days["day"].max()) if len(text_days) else None
    if as_of is None:
        as_of = str(state["as_of"].max()) if state is not None and len(state) else "1970-01-01"
    same_day = state is not None and len(state) and str(state["as_of"].max()) == as_of
    base = _read(previous_run / BASE_FILE) if same_day else state
    base = lifecycle.empty_state() if base is None else base
    return lifecycle.advance(base, labels, text_days, as_of, rules), base, _read(previous_run / CHANGES_FILE)


def write(run_dir: Path, life: lifecycle.Lifecycle, base: pd.DataFrame, previous_history: pd.DataFrame | None,
          previous_run: Path, release: ReleaseFilter) -> dict:
    """Write the private state and the released history; return the counts the manifest shows."""
    for frame, rel in ((life.state, STATE_FILE), (base, BASE_FILE)):
        table = pa.Table.from_pandas(frame[lifecycle.STATE_COLUMNS].astype({"evidence_days": "object"}),
                                     preserve_index=False)
        atomic_write_parquet(table, run_dir / rel)
    before = _read(previous_run / LABELS_FILE)
    was_released = set() if before is None else set(zip(before["locale"], before["utt_norm"]))
    state = life.state
    # a boolean array, not a list: an empty list would select no columns rather than no rows
    carried = np.array([k in was_released for k in zip(state["locale"], state["utt_norm"])], dtype=bool)
    fresh, _ = release.keep("label_history", state[~carried])
    shown = pd.concat([state[carried], fresh]).sort_values(lifecycle.LABEL, kind="stable")
    shown = shown.assign(evidence_day_count=[len(d) for d in shown["evidence_days"]])
    atomic_write_parquet(_conform(shown, HISTORY_SCHEMA), run_dir / LABELS_FILE)
    released_keys = set(zip(shown["locale"], shown["utt_norm"]))
    changes = life.changes[np.array([k in released_keys for k in zip(life.changes["locale"], life.changes["utt_norm"])],
                                    dtype=bool)]
    as_of = str(state["as_of"].max()) if len(state) else ""
    earlier = previous_history[previous_history["as_of"] < as_of] if previous_history is not None else None
    log = pd.concat([f for f in (earlier, changes) if f is not None and len(f)]) if (
        (earlier is not None and len(earlier)) or len(changes)) else changes
    if len(log):  # an empty log may carry no columns to sort by
        log = log.sort_values(["as_of", *lifecycle.LABEL, "change"], kind="stable")
    atomic_write_parquet(_conform(log, CHANGES_SCHEMA), run_dir / CHANGES_FILE)
    return {"as_of": as_of,
            "states": {s: int(n) for s, n in shown["state"].value_counts().sort_index().items()},
            "changes": {c: int(n) for c, n in changes["change"].value_counts().sort_index().items()} if len(changes) else {},
            "withheld_from_training": int(len(life.withheld))}


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.table({f.name: pa.array(frame[f.name].tolist() if len(frame) else [], type=f.type)
                     for f in schema}, schema=schema)

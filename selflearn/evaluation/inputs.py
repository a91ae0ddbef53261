"""Read and check the evaluation inputs. Every problem becomes an EvalInputError with one line of advice."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from selflearn import io
from selflearn.layout import RunLayout


class EvalInputError(ValueError):
    """An evaluation input is missing or malformed; the message is one line saying what to do."""


# the log columns evaluation reads (a subset of contract.LOG_COLUMNS)
EVAL_LOG_COLUMNS = ["event_id", "user_id", "locale", "ts", "utterance"]
EVAL_LOG_OPTIONAL = ["nlu_intent"]


def parquet_files(path: Path) -> list[Path]:
    """The log files ingest reads from `path` (selflearn.io.find_inputs): the file itself, or every Parquet
    file under a folder (hive partitions), hidden and _-prefixed names skipped."""
    return io.find_inputs(str(path))[1]


def read_logs(logs: str | Path) -> pd.DataFrame:
    """Log events (event_id, user_id, locale, ts_us, utterance, nlu_intent); ts of any unit/tz read as UTC.

    Rows missing a required value are dropped and duplicate event ids keep their first row, as ingest does.
    """
    root = Path(logs)
    if not root.exists():
        raise EvalInputError(f"logs path {root} does not exist: --logs must point at the log folder (Parquet, "
                             "LOG_SCHEMA)")
    files = parquet_files(root)
    if not files:
        raise EvalInputError(f"no Parquet files under {root}: --logs must point at the log folder (LOG_SCHEMA)")
    frames = []
    for f in files:
        names = pq.read_schema(f).names
        missing = [c for c in EVAL_LOG_COLUMNS if c not in names]
        if missing:
            raise EvalInputError(f"log file {f} lacks column(s) {missing}: evaluation needs {EVAL_LOG_COLUMNS}")
        cols = EVAL_LOG_COLUMNS + [c for c in EVAL_LOG_OPTIONAL if c in names]
        df = pq.ParquetFile(f).read(columns=cols).to_pandas()
        # ts may differ in unit and zone per file: bring every file to UTC microseconds before concatenating.
        df["ts_us"] = pd.to_datetime(df.pop("ts"), utc=True).dt.as_unit("us").astype("int64")
        if "nlu_intent" not in df:
            df["nlu_intent"] = None
        frames.append(df)
    events = pd.concat(frames, ignore_index=True)
    events = events.dropna(subset=["event_id", "user_id", "locale", "utterance"])
    events = events.drop_duplicates("event_id", keep="first").reset_index(drop=True)
    events["nlu_intent"] = events["nlu_intent"].astype(object).where(events["nlu_intent"].notna(), None)
    return events


def read_table(path: Path, required: list[str], optional: list[str], advice: str) -> pd.DataFrame:
    """One Parquet file (or a folder of them, one a day) with its required columns; optional columns come back
    as None when absent."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path] if path.is_file() else []
    if not files:
        raise EvalInputError(f"{path} not found: {advice}")
    names = pq.read_schema(files[0]).names
    missing = [c for c in required if c not in names]
    if missing:
        raise EvalInputError(f"{path} lacks column(s) {missing}: {advice}")
    df = pq.read_table(path, columns=required + [c for c in optional if c in names]).to_pandas()
    for c in optional:
        if c not in df:
            df[c] = None
    return df


def read_truth_turns(truth_dir: Path) -> pd.DataFrame:
    return read_table(
        truth_dir / "turns.parquet", ["event_id", "true_intent", "system_correct"],
        ["true_annot_utt", "true_slots"],
        "--truth must be the simulator's truth folder (turns.parquet in TRUTH_TURNS_SCHEMA)",
    ).drop_duplicates("event_id")


def read_truth_pairs(truth_dir: Path) -> pd.DataFrame:
    df = read_table(
        truth_dir / "pairs.parquet", ["event_id_a", "event_id_b", "is_rephrase"], ["kind"],
        "--truth must be the simulator's truth folder (pairs.parquet in TRUTH_PAIRS_SCHEMA)",
    )
    df["is_rephrase"] = df["is_rephrase"].fillna(False).astype(bool)
    return df


def read_weak_labels(run_dir: Path) -> pd.DataFrame:
    """Every emitted label, all splits of training/parquet/ together (a held-out split is labels too)."""
    folder = RunLayout(run_dir).training_labels
    advice = f"--out must be a finished `selflearn run` output folder ({folder} missing)"
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise EvalInputError(f"{folder} holds no Parquet file: {advice}")
    frames = [read_table(f, ["locale", "utt_norm", "intent"],
                         ["utt", "annot_utt", "slots", "confidence", "source"], advice) for f in files]
    df = pd.concat(frames, ignore_index=True)
    return df.dropna(subset=["locale", "utt_norm", "intent"]).reset_index(drop=True)


def read_label_candidates(run_dir: Path) -> pd.DataFrame | None:
    """Every utterance the labeler scored (locale, utt_norm, intent, confidence), or None for an older run."""
    path = RunLayout(run_dir).label_candidates
    if not path.is_file():
        return None
    return read_table(path, ["locale", "utt_norm", "intent", "confidence"], ["emitted"],
                      f"--out must be a finished `selflearn run` output folder ({path} missing)")


def read_run_pairs(run_dir: Path) -> pd.DataFrame:
    path = RunLayout(run_dir).scored_pairs
    df = read_table(path, ["event_id_a", "event_id_b", "is_rephrase"], ["locale", "rephrase_score"],
                    f"--out must be a finished `selflearn run` output folder ({path} missing)")
    df["is_rephrase"] = df["is_rephrase"].fillna(False).astype(bool)
    return df


def read_nlu_sets(truth_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labeled seed and test sets of the closed loop (locale, utt, intent), non-empty."""
    sets = []
    for name in ("nlu_seed", "nlu_test"):
        path = truth_dir / f"{name}.parquet"
        if not path.is_file():
            raise EvalInputError(
                f"truth folder {truth_dir} has no {name}.parquet: the closed loop needs a labeled seed and "
                "test set (locale, utt, intent)")
        df = read_table(path, ["locale", "utt", "intent"], [],
                        "the closed loop needs a labeled seed and test set (locale, utt, intent)")
        df = df.dropna(subset=["locale", "utt", "intent"]).reset_index(drop=True)
        if df.empty:
            raise EvalInputError(f"{path} has no labeled rows: the closed loop needs a labeled seed and test set "
                                 "(locale, utt, intent)")
        sets.append(df)
    return sets[0], sets[1]

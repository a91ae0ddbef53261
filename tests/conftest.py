import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOGS = ROOT / "sample_logs"


def local_spark_session(app_name: str, log_level: str = "WARN"):
    """A Spark local[2] session with the engine's local settings, for a module's tests to share (one JVM)."""
    from pyspark.sql import SparkSession

    from selflearn.engines.spark_engine import LOCAL_CONF

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)   # workers run this interpreter
    builder = SparkSession.builder.master("local[2]").appName(app_name)
    for key, value in LOCAL_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(log_level)
    return session


def make_turns(rows: list[dict]) -> pa.Table:
    """Curated turns (TURNS_SCHEMA) from short dicts: user, t (seconds), utt, and optional fields."""
    from selflearn import contract, text

    columns = {name: [] for name in contract.TURNS_SCHEMA.names}
    for i, row in enumerate(rows):
        ts_ms = int(row["t"] * 1000) + 1_793_000_000_000
        values = {
            "event_id": row.get("event_id", f"e{i:05d}"), "user_key": row["user"],
            "session_id": row.get("session"), "locale": row.get("locale", "en-US"), "day": "2026-10-25",
            "ts_ms": ts_ms, "utterance": row["utt"], "utt": text.display_text(row["utt"]),
            "utt_norm": text.normalize(row["utt"]), "nlu_intent": row.get("intent"),
            "nlu_slots": row.get("slots", []), "nlu_confidence": row.get("conf"),
            "response_status": row.get("status"), "barge_in": row.get("barge"), "source_file": "inline",
        }
        for name in columns:
            columns[name].append(values[name])
    return pa.table(columns, schema=contract.TURNS_SCHEMA)


@pytest.fixture
def turns_factory():
    return make_turns


@pytest.fixture(scope="session")
def sample_logs(tmp_path_factory) -> Path:
    """The shipped sample logs; regenerated with the same seed if a checkout lacks them."""
    logs = SAMPLE_LOGS / "logs"
    if any(logs.glob("day=*/*.parquet")):
        return logs
    from selflearn.simulate import simulate
    out = tmp_path_factory.mktemp("sim")
    simulate(str(out), turns=6000, seed=7)
    return out / "logs"


@pytest.fixture(scope="module")
def three_days(sample_logs, tmp_path_factory) -> Path:
    """A logs root holding the first three day partitions of the sample: a run whose outputs differ from a
    run over all days."""
    root = tmp_path_factory.mktemp("logs3") / "logs"
    for day in sorted(sample_logs.glob("day=*"))[:3]:
        shutil.copytree(day, root / day.name)
    return root

"""Ingest on an engine (stages/ingest/on_engine.py) against the streaming path, on real Parquet with every kind
of bad input: the same curated rows per file, the same quarantine, the same accounts and ledger, the same error.
On DuckDB (default suite: the engine path's logic) and on Spark local[2] (its workers read the files)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn.config import Config, IngestConfig, PrivacyConfig
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.stages.ingest import IngestError, ingest

T0 = datetime(2026, 11, 1, 23, 59, 58, tzinfo=UTC)  # rows cross midnight: two days


def logs(n: int, start: int = 0, **columns) -> pa.Table:
    data = {
        "event_id": [f"e{start + i}" for i in range(n)],
        "user_id": [f"raw-user-{i % 3}" for i in range(n)],
        "locale": ["en-US"] * n,
        "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "utterance": [f"set an alarm for {i}" for i in range(n)],
    }
    data.update(columns)
    return pa.table(data)


def write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def messy_logs(folder: Path) -> None:
    """Files that exercise every reason code, dedup within and across files, bad files and differing schemas."""
    bad_rows = logs(12, start=100,
                    event_id=["b0", None, "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", " ", "b11"],
                    user_id=["u", "u", None, "u", "u", "u", "u", "u", "u", "u", "u", "u"],
                    locale=["en_us", "en-US", "en-US", "", "english", "de-DE", "ja-JP", "en-US", "en-US", "en-US",
                            "en-US", "fr-FR"],
                    ts=pa.array([T0, T0, T0, T0, T0, None, T0, T0, T0, T0, T0, T0], pa.timestamp("us", tz="UTC")),
                    utterance=["hallo", "x", "x", "x", "x", "x", "\x00\u200b", "y" * 2500, "play jazz", "stop",
                               "x", "mets la radio"],
                    response_status=["Success ", None, None, None, None, None, None, None, "weird", "error", None,
                                     "unhandled"],
                    nlu_confidence=[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, float("nan"), 0.5, 0.2],
                    nlu_intent=["greet", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "bad intent!"])
    write(folder / "day=2026-11-01" / "a_bad_rows.parquet", bad_rows)
    # repeats within a file (first copy wins), an invalid first copy that must not hide a valid second one
    write(folder / "day=2026-11-01" / "b_dups.parquet",
          logs(5, event_id=["d1", "d2", "d1", "d3", "d3"], utterance=["first", "x", "second", "", "valid d3"]))
    # ids an earlier file already kept (b0 from a_bad_rows, d2 from b_dups) and new ones; richer types
    slots = pa.array([[{"name": "time", "value": "7 30"}], None, [{"name": "bad name", "value": "v"}]],
                     pa.large_list(pa.struct([("name", pa.large_string()), ("value", pa.string())])))
    write(folder / "day=2026-11-02" / "c_rich.parquet",
          logs(3, event_id=["b0", "d2", "c1"], nlu_slots=slots, barge_in=[True, False, None],
               nlu_confidence=pa.array([0.25, 1.0, 0.5], pa.float32()),
               ts=pa.array([1_793_577_600_000_000_000] * 3, pa.timestamp("ns")),
               locale=pa.array(["en-US", "en-US", "de-DE"]).dictionary_encode(), device=["x", "y", "z"]))
    (folder / "day=2026-11-02" / "d_not_parquet.parquet").write_text("event_id,user_id\n1,2\n")
    write(folder / "day=2026-11-02" / "e_missing_column.parquet", logs(2, start=200).drop_columns(["utterance"]))
    write(folder / "day=2026-11-02" / "f_empty.parquet", logs(0))
    write(folder / "day=2026-11-03" / "g_many.parquet", logs(300, start=1000))


def snapshot(out: Path, report) -> dict:
    """Everything ingest leaves: curated rows and quarantine rows per file, the accounts and the ledger."""
    def tables(folder: Path) -> dict[str, list]:
        return {p.name: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))}

    return {"turns": tables(out / "curated" / "turns"), "quarantine": tables(out / "quarantine"),
            "accounts": [a.__dict__ for a in report.files], "totals": report.totals(),
            "ledger": (out / "curated" / "_ingested.json").read_text(),
            "left": sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if "_staging" in p.as_posix())}


def check_engine_ingest_equals_streaming(engine, tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    messy_logs(folder)
    config = Config(ingest=IngestConfig(quarantine_bad_files=True), privacy=PrivacyConfig(user_salt="test-salt"))
    streamed = snapshot(tmp_path / "s", ingest(str(folder), tmp_path / "s", config))
    on_engine = snapshot(tmp_path / "e", ingest(str(folder), tmp_path / "e", config, engine=engine))
    assert on_engine == streamed
    # the cases are there: every row reason that the files hold, dedup within and across files, bad files
    reasons = {row["reason"] for rows in streamed["quarantine"].values() for row in rows}
    assert reasons >= {"null_event_id", "null_user_id", "null_locale", "invalid_locale", "null_ts",
                       "empty_utterance", "utterance_too_long", "invalid_status", "invalid_confidence",
                       "invalid_intent", "invalid_slot_name", "bad_file", "missing_column"}
    assert streamed["totals"]["duplicates"] == 3 and streamed["totals"]["by_status"]["quarantined_file"] == 2
    assert streamed["left"] == []

    # a second run: one file changed (re-ingested, not deduped against its own old output), one new file
    # repeating ids of kept files (e1005, and d1 of the changed file) and one only quarantined before (c1),
    # one file gone from the input (its ids still count: e1010)
    write(folder / "day=2026-11-01" / "b_dups.parquet", logs(3, event_id=["d1", "d9", "d9"]))
    write(folder / "day=2026-11-04" / "h_late.parquet", logs(4, event_id=["c1", "e1005", "h1", "d1"]))
    (folder / "day=2026-11-03" / "g_many.parquet").unlink()
    write(folder / "day=2026-11-04" / "i_repeats_gone.parquet", logs(2, event_id=["e1010", "i1"]))
    streamed = snapshot(tmp_path / "s", ingest(str(folder), tmp_path / "s", config))
    on_engine = snapshot(tmp_path / "e", ingest(str(folder), tmp_path / "e", config, engine=engine))
    assert on_engine == streamed
    statuses = {a["source_file"].rsplit("/", 1)[-1]: (a["status"], a["rows_kept"], a["duplicates"])
                for a in streamed["accounts"]}
    assert statuses["b_dups.parquet"] == ("ingested", 2, 1)
    assert statuses["h_late.parquet"] == ("ingested", 2, 2)
    assert statuses["i_repeats_gone.parquet"] == ("ingested", 1, 1)
    assert statuses["a_bad_rows.parquet"][0] == "skipped_unchanged"

    # without quarantine_bad_files the first bad file stops both paths with the same message, after the same files
    errors = {}
    for label, options in (("s", {}), ("e", {"engine": engine})):
        with pytest.raises(IngestError) as err:
            ingest(str(folder), tmp_path / f"{label}-strict", Config(privacy=config.privacy), **options)
        errors[label] = (str(err.value).replace(str(tmp_path / f"{label}-strict"), "OUT"),
                         sorted(p.name for p in (tmp_path / f"{label}-strict" / "curated" / "turns").glob("*")),
                         (tmp_path / f"{label}-strict" / "curated" / "_ingested.json").read_text())
    assert errors["e"] == errors["s"] and "d_not_parquet.parquet" in errors["s"][0]
    assert len(errors["s"][1]) == 3  # a, b and c were published before the bad file


def test_ingest_on_duckdb_engine_equals_streaming(tmp_path):
    engine = DuckDBEngine()
    try:
        check_engine_ingest_equals_streaming(engine, tmp_path)
    finally:
        engine.close()


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.extended
def test_ingest_on_spark_equals_streaming(tmp_path):
    pytest.importorskip("pyspark")
    from conftest import local_spark_session
    from selflearn.engines.spark_engine import SparkEngine

    session = local_spark_session("selflearn-ingest-tests")
    engine = SparkEngine(spark=session)
    try:
        check_engine_ingest_equals_streaming(engine, tmp_path)
    finally:
        engine.close()
        session.stop()

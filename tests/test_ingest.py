"""Ingest stage on real Parquet files in a temp folder: accounting, contract checks, dedup, incremental runs."""
from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn.config import Config, ConfigError, IngestConfig, PrivacyConfig, load_config
from selflearn.contract import QUARANTINE_SCHEMA, TURNS_SCHEMA
from selflearn.privacy import SALT_FILE, hash_user
from selflearn.stages import ingest as ingest_module
from selflearn.stages.ingest import casting as ingest_casting
from selflearn.stages.ingest import REASONS, FileAccount, IngestError, IngestReport, discover_inputs, ingest

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)


def logs(n: int = 3, **columns) -> pa.Table:
    """n valid log rows; keyword arguments replace or add columns (a list, or a pa.Array for exact types)."""
    data = {
        "event_id": [f"e{i}" for i in range(n)],
        "user_id": [f"raw-user-{i % 2}" for i in range(n)],
        "locale": ["en-US"] * n,
        "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
        "utterance": ["set an alarm for 7 30"] * n,
    }
    data.update(columns)
    return pa.table(data)


def write(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def run(logs_path: Path | str, out: Path, **ingest_options) -> IngestReport:
    return ingest(str(logs_path), out, Config(ingest=IngestConfig(**ingest_options)))


def turns(out: Path) -> pd.DataFrame:
    files = sorted((out / "curated" / "turns").glob("*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def quarantine(out: Path) -> pd.DataFrame:
    files = sorted((out / "quarantine").glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=QUARANTINE_SCHEMA.names)
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def output_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ happy path

def test_happy_path_accounts_for_every_row_and_fills_the_turns_schema(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(3, locale=["en_us", "ja-JP", "zh_hant_tw"],
                                               utterance=["Set an ALARM!", "明日の天気は？", "call +1 415 555 2671"]))
    out = tmp_path / "out"
    report = run(tmp_path / "logs", out)

    assert [a.status for a in report.files] == ["ingested"]
    assert report.totals() | {"by_status": None} == {
        "rows_in": 3, "rows_kept": 3, "rows_quarantined": 0, "duplicates": 0, "files": 1, "by_status": None}
    assert len(report.curated_files) == 1 and report.curated_files[0].parent == out / "curated" / "turns"
    assert pq.read_schema(report.curated_files[0]).remove_metadata() == TURNS_SCHEMA
    df = turns(out)
    assert df["locale"].tolist() == ["en-US", "ja-JP", "zh-Hant-TW"]
    salt = (out / SALT_FILE).read_text().strip()  # none configured: generated for this folder
    assert df["user_key"].tolist() == [hash_user(f"raw-user-{i % 2}", salt) for i in range(3)]
    assert df["day"].tolist() == ["2026-11-01"] * 3
    assert df["ts_ms"].tolist() == [T0_MS, T0_MS + 1000, T0_MS + 2000]
    assert df["utt_norm"].tolist() == ["set an alarm", "明日の天気は", "call <phone>"]
    assert df["utt"].tolist()[2] == "call <phone>"
    assert df["source_file"].unique().tolist() == ["a.parquet"]
    assert report.files[0].fingerprint.startswith(f"{(tmp_path / 'logs' / 'a.parquet').stat().st_size}:")


def test_totals_raise_when_the_accounting_does_not_balance():
    broken = IngestReport([FileAccount("x.parquet", "ingested", 5, 3, 1, 0, "fp")])
    with pytest.raises(AssertionError, match="x.parquet"):
        broken.totals()


# ------------------------------------------------------------------------------------------------ bad files

def test_zero_byte_file_is_an_error_naming_it(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "empty.parquet").write_bytes(b"")
    with pytest.raises(IngestError, match=r"empty\.parquet.*not a readable Parquet file"):
        run(tmp_path / "logs", tmp_path / "out")


def test_zero_row_parquet_is_fine_and_reported_empty(tmp_path):
    write(tmp_path / "logs" / "none.parquet", logs(0))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert [(a.status, a.rows_in, a.rows_kept) for a in report.files] == [("empty", 0, 0, )]
    assert pq.read_table(report.curated_files[0]).num_rows == 0


def test_non_parquet_file_error_names_the_file(tmp_path):
    bad = tmp_path / "logs" / "notes.parquet"
    bad.parent.mkdir()
    bad.write_text("event_id,user_id\n1,2\n")
    with pytest.raises(IngestError) as err:
        run(tmp_path / "logs", tmp_path / "out")
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_bad_files_are_quarantined_whole_when_configured_and_the_run_goes_on(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(2))
    (tmp_path / "logs" / "b.parquet").write_text("not parquet")
    (tmp_path / "logs" / "c.parquet").write_bytes(b"")
    write(tmp_path / "logs" / "d.parquet", logs(4).drop_columns(["utterance"]))
    out = tmp_path / "out"
    report = run(tmp_path / "logs", out, quarantine_bad_files=True)

    statuses = {a.source_file: (a.status, a.rows_in, a.rows_quarantined) for a in report.files}
    assert statuses == {"a.parquet": ("ingested", 2, 0), "b.parquet": ("quarantined_file", 0, 0),
                        "c.parquet": ("quarantined_file", 0, 0), "d.parquet": ("quarantined_file", 4, 4)}
    q = quarantine(out).sort_values("source_file")
    assert q["reason"].tolist() == ["bad_file", "bad_file", "missing_column"]
    assert q["row_number"].tolist() == [-1, -1, -1]
    assert set(q["reason"]) <= set(REASONS)
    assert len(turns(out)) == 2
    # an unchanged quarantined file stays skipped, but not once quarantining is switched off
    assert {a.status for a in run(tmp_path / "logs", out, quarantine_bad_files=True).files} == {"skipped_unchanged"}
    with pytest.raises(IngestError, match="b.parquet"):
        run(tmp_path / "logs", out)


def test_missing_required_column_names_file_and_column(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(2).drop_columns(["utterance"]))
    with pytest.raises(IngestError, match=r"a\.parquet: missing required column 'utterance' \(the log contract needs "
                                          r"event_id, user_id, locale, ts, utterance\)"):
        run(tmp_path / "logs", tmp_path / "out")


@pytest.mark.parametrize("column, values, found", [
    ("ts", pa.array([1_793_527_200_000] * 2, pa.int64()), "int64"),
    ("ts", pa.array(["2026-11-01T10:00:00Z"] * 2), "string"),
    ("utterance", pa.array([1, 2], pa.int32()), "int32"),
    ("nlu_confidence", pa.array(["high", "low"]), "string"),
])
def test_wrong_type_names_file_column_found_and_expected(tmp_path, column, values, found):
    write(tmp_path / "logs" / "a.parquet", logs(2, **{column: values}))
    with pytest.raises(IngestError, match=rf"a\.parquet: column '{column}' has type {found}, expected "):
        run(tmp_path / "logs", tmp_path / "out")


def test_wrong_type_is_quarantined_as_bad_type_when_configured(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(2, ts=pa.array([1, 2], pa.int64())))
    report = run(tmp_path / "logs", tmp_path / "out", quarantine_bad_files=True)
    assert report.files[0].status == "quarantined_file"
    assert quarantine(tmp_path / "out")["reason"].tolist() == ["bad_type"]


# ------------------------------------------------------------------------------------------------ row checks

def test_null_empty_whitespace_and_control_only_utterances_are_quarantined(tmp_path):
    utterances = [None, "", "   \t ", "\x00\x07", "\u200b\u200d", "turn on the lights"]
    write(tmp_path / "logs" / "a.parquet", logs(6, utterance=utterances))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert (report.files[0].rows_kept, report.files[0].rows_quarantined) == (1, 5)
    q = quarantine(tmp_path / "out")
    assert q["reason"].tolist() == ["empty_utterance"] * 5
    assert q["row_number"].tolist() == [0, 1, 2, 3, 4]


def test_locales_are_normalized_or_quarantined(tmp_path):
    locales = ["en_us", "JA-jp", "sw-KE", "zh_hant_tw", "es-419", "english", "e1-US", "en-USA", "", None]
    write(tmp_path / "logs" / "a.parquet", logs(len(locales), locale=locales))
    run(tmp_path / "logs", tmp_path / "out")
    assert turns(tmp_path / "out")["locale"].tolist() == ["en-US", "ja-JP", "sw-KE", "zh-Hant-TW", "es-419"]
    q = quarantine(tmp_path / "out")
    assert q["reason"].tolist() == ["invalid_locale"] * 3 + ["null_locale"] * 2
    assert q["locale"].tolist()[:3] == ["english", "e1-US", "en-USA"]


def test_other_row_checks_status_confidence_ids_and_ts(tmp_path):
    table = logs(8,
                 event_id=["e0", None, "e2", "e3", "e4", "e5", "e6", " "],
                 user_id=["u", "u", None, "u", "u", "u", "u", "u"],
                 ts=pa.array([T0, T0, T0, None, T0, T0, T0, T0], pa.timestamp("us", tz="UTC")),
                 response_status=["Success ", "success", "success", "error", "weird", None, "unhandled", "error"],
                 nlu_confidence=[0.5, 0.5, 0.5, 0.5, 0.5, float("nan"), 1.5, 0.5])
    write(tmp_path / "logs" / "a.parquet", table)
    run(tmp_path / "logs", tmp_path / "out")
    q = quarantine(tmp_path / "out")
    assert dict(zip(q["row_number"], q["reason"], strict=True)) == {
        1: "null_event_id", 2: "null_user_id", 3: "null_ts", 4: "invalid_status", 5: "invalid_confidence",
        6: "invalid_confidence", 7: "null_event_id"}
    kept = turns(tmp_path / "out")
    assert kept["event_id"].tolist() == ["e0"] and kept["response_status"].tolist() == ["success"]


def test_a_row_failing_several_checks_gets_the_first_reason_and_the_rest_in_detail(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(1, locale=["nope!"], utterance=[""]))
    run(tmp_path / "logs", tmp_path / "out")
    row = quarantine(tmp_path / "out").iloc[0]
    assert row["reason"] == "invalid_locale" and "also: empty_utterance" in row["detail"]


def test_100kb_utterance_is_quarantined_truncated_and_scrubbed(tmp_path):
    huge = "call 415 555 2671 " + "x" * 100_000
    write(tmp_path / "logs" / "a.parquet", logs(2, utterance=[huge, "ok"]))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert (report.files[0].rows_kept, report.files[0].rows_quarantined) == (1, 1)
    row = quarantine(tmp_path / "out").iloc[0]
    assert row["reason"] == "utterance_too_long" and "100018 characters" in row["detail"]
    assert len(row["utterance"]) == 200 and row["utterance"].startswith("call <phone> x")


def test_max_utterance_chars_is_configurable(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(1, utterance=["twelve chars"]))
    assert run(tmp_path / "logs", tmp_path / "out", max_utterance_chars=11).files[0].rows_quarantined == 1


def _with_invalid_utf8(table: pa.Table, column: str, raw: list[bytes]) -> pa.Table:
    """Arrow validates UTF-8 on construction, not on write: build the bytes as binary and view them as string."""
    return table.set_column(table.schema.get_field_index(column), column,
                            pa.array(raw, pa.binary()).view(pa.string()))


def test_control_characters_and_lone_surrogates_are_cleaned_not_quarantined(tmp_path):
    raw = ["turn\x00 on\u200b the lights\ud800".encode("utf-8", "surrogatepass"),
           "\ud800".encode("utf-8", "surrogatepass"),
           b"bad \xff byte"]
    write(tmp_path / "logs" / "a.parquet", _with_invalid_utf8(logs(3), "utterance", raw))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert (report.files[0].rows_kept, report.files[0].rows_quarantined) == (2, 1)
    kept = pq.read_table(report.curated_files[0])
    for name in ("utterance", "utt", "utt_norm"):
        kept[name].combine_chunks().validate(full=True)  # valid UTF-8 for every later reader
    assert kept["utterance"].to_pylist() == ["turn on the lights", "bad \ufffd byte"]
    assert kept["utt_norm"].to_pylist()[0] == "turn on the lights"
    assert quarantine(tmp_path / "out")["reason"].tolist() == ["empty_utterance"]


def test_invalid_utf8_in_other_columns_is_repaired_and_java_style_surrogate_pairs_decode(tmp_path):
    table = _with_invalid_utf8(logs(2), "event_id", [b"e\xff1", b"e2"])
    table = _with_invalid_utf8(table, "utterance", [b"play \xed\xa0\xbd\xed\xb8\x80 music", b"ok"])  # CESU-8
    # the bad byte in a slot value: a slot name must be a plain name (else the row is quarantined)
    slot_values = pa.array([b"7 \xff30"], pa.binary()).view(pa.string())
    slots = pa.ListArray.from_arrays(pa.array([0, 1, 1], pa.int32()), pa.StructArray.from_arrays(
        [pa.array(["time"]), slot_values], names=["name", "value"]))
    write(tmp_path / "logs" / "a.parquet", table.append_column("nlu_slots", slots))
    report = run(tmp_path / "logs", tmp_path / "out")
    kept = pq.read_table(report.curated_files[0])
    for name in kept.column_names:
        kept[name].combine_chunks().validate(full=True)
    assert kept["event_id"].to_pylist() == ["e\ufffd1", "e2"]
    assert kept["utterance"].to_pylist()[0] == "play 😀 music"
    assert kept["nlu_slots"].to_pylist() == [[{"name": "time", "value": "7 \ufffd30"}], []]


# ------------------------------------------------------------------------------------------------ types

def test_timestamp_units_and_time_zones_give_the_same_ts_ms(tmp_path):
    naive = T0.replace(tzinfo=None)
    tokyo = pd.Timestamp(T0).tz_convert("Asia/Tokyo")
    variants = {
        "s": pa.array([naive], pa.timestamp("s")),
        "ms": pa.array([naive], pa.timestamp("ms")),
        "ns": pa.array([pd.Timestamp(naive)], pa.timestamp("ns")),
        "us_utc": pa.array([T0], pa.timestamp("us", tz="UTC")),
        "ns_tokyo": pa.array([tokyo], pa.timestamp("ns", tz="Asia/Tokyo")),
    }
    for i, (name, ts) in enumerate(variants.items()):
        write(tmp_path / "logs" / f"{name}.parquet", logs(1, event_id=[f"e{i}"], ts=ts))
    run(tmp_path / "logs", tmp_path / "out")
    df = turns(tmp_path / "out")
    assert len(df) == 5 and set(df["ts_ms"]) == {T0_MS} and set(df["day"]) == {"2026-11-01"}


def test_differing_schemas_in_one_folder_each_work(tmp_path):
    slots = pa.array([[{"name": "time", "value": "7 30"}], None],
                     pa.large_list(pa.struct([("name", pa.large_string()), ("value", pa.string())])))
    rich = logs(2, event_id=["r0", "r1"],
                utterance=pa.array(["wake me at 7 30", "stop"], pa.large_string()),
                locale=pa.array(["en-US", "en-US"]).dictionary_encode(),
                nlu_intent=["alarm_set", "stop"], nlu_slots=slots,
                nlu_confidence=pa.array([0.25, 1.0], pa.float32()),
                barge_in=[False, True], device=["echo", "echo"], extra_score=[1, 2])
    write(tmp_path / "logs" / "rich.parquet", rich)
    write(tmp_path / "logs" / "bare.parquet", logs(1, event_id=["b0"]))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert [a.rows_kept for a in report.files] == [1, 2]  # bare.parquet sorts first
    df = turns(tmp_path / "out").set_index("event_id")
    assert df.loc["r0", "nlu_confidence"] == 0.25 and df.loc["r0", "nlu_intent"] == "alarm_set"
    assert list(df.loc["r0", "nlu_slots"]) == [{"name": "time", "value": "7 30"}]
    assert df.loc["b0", "nlu_intent"] is None and pd.isna(df.loc["b0", "nlu_confidence"])
    assert "device" not in df.columns


# ------------------------------------------------------------------------------------------------ dedup

def test_duplicate_event_ids_within_and_across_files_and_runs(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(3, event_id=["e1", "e2", "e1"], utterance=["first", "x", "second"]))
    write(tmp_path / "logs" / "b.parquet", logs(2, event_id=["e2", "e3"]))
    out = tmp_path / "out"
    report = run(tmp_path / "logs", out)
    assert [(a.rows_kept, a.duplicates) for a in report.files] == [(2, 1), (1, 1)]
    assert report.totals()["duplicates"] == 2
    df = turns(out)
    assert sorted(df["event_id"]) == ["e1", "e2", "e3"]
    assert df.set_index("event_id").loc["e1", "utterance"] == "first"  # first occurrence wins
    assert quarantine(out).empty  # duplicates are counted, not quarantined

    write(tmp_path / "logs" / "c.parquet", logs(2, event_id=["e3", "e4"]))
    report = run(tmp_path / "logs", out)
    assert [a.status for a in report.files] == ["skipped_unchanged", "skipped_unchanged", "ingested"]
    assert (report.files[2].rows_kept, report.files[2].duplicates) == (1, 1)
    assert sorted(turns(out)["event_id"]) == ["e1", "e2", "e3", "e4"]


def test_an_invalid_first_copy_does_not_hide_a_valid_duplicate(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(2, event_id=["e1", "e1"], utterance=["", "play jazz"]))
    report = run(tmp_path / "logs", tmp_path / "out")
    assert (report.files[0].rows_kept, report.files[0].rows_quarantined, report.files[0].duplicates) == (1, 1, 0)
    assert turns(tmp_path / "out")["utterance"].tolist() == ["play jazz"]


def test_a_changed_file_is_reingested_and_does_not_dedup_against_its_own_old_output(tmp_path):
    path = write(tmp_path / "logs" / "a.parquet", logs(2))
    out = tmp_path / "out"
    run(tmp_path / "logs", out)
    write(path, logs(3))
    report = run(tmp_path / "logs", out)
    assert [(a.status, a.rows_kept, a.duplicates) for a in report.files] == [("ingested", 3, 0)]
    assert sorted(turns(out)["event_id"]) == ["e0", "e1", "e2"]


# ------------------------------------------------------------------------------------------------ discovery

def test_glob_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(IngestError, match=r"no Parquet files match '.*nothing-\*\.parquet'"):
        discover_inputs(str(tmp_path / "nothing-*.parquet"))
    with pytest.raises(IngestError, match="no Parquet files match"):
        run(tmp_path / "missing-folder", tmp_path / "out")


def test_hive_partitions_hidden_files_and_globs(tmp_path):
    root = tmp_path / "logs"
    write(root / "day=2026-11-02" / "part-0.parquet", logs(1, event_id=["b"]))
    write(root / "day=2026-11-01" / "part-0.parquet", logs(1, event_id=["a"]))
    write(root / "day=2026-11-01" / ".part-0.parquet.crc", logs(1))
    write(root / "_temporary" / "part-9.parquet", logs(1))
    (root / "_SUCCESS").write_text("")
    (root / "README.md").write_text("not a log")
    expected = [root / "day=2026-11-01" / "part-0.parquet", root / "day=2026-11-02" / "part-0.parquet"]
    assert discover_inputs(str(root)) == expected
    assert discover_inputs(str(root / "day=*" / "*.parquet")) == expected

    out = tmp_path / "out"
    report = run(root, out)
    assert [a.source_file for a in report.files] == ["day=2026-11-01/part-0.parquet", "day=2026-11-02/part-0.parquet"]
    # one partition addressed on its own keeps its name, so it is recognized as already ingested
    alone = run(root / "day=2026-11-02" / "part-0.parquet", out)
    assert [(a.source_file, a.status) for a in alone.files] == [("day=2026-11-02/part-0.parquet", "skipped_unchanged")]


# ------------------------------------------------------------------------------------------------ incremental

def test_rerun_skips_unchanged_files_and_leaves_outputs_byte_identical(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(3, locale=["en-US", "xx_garbage", "en-US"]))
    write(tmp_path / "logs" / "b.parquet", logs(2, event_id=["b0", "b1"]))
    out = tmp_path / "out"
    first = run(tmp_path / "logs", out)
    before = output_bytes(out)
    assert "curated/_ingested.json" in before and any(k.startswith("quarantine/") for k in before)

    second = ingest(str(tmp_path / "logs"), out, Config(), progress=True)
    assert {a.status for a in second.files} == {"skipped_unchanged"}
    assert second.totals() | {"by_status": None} == first.totals() | {"by_status": None}
    assert output_bytes(out) == before

    other = tmp_path / "out2"  # a fresh run elsewhere, with the same salt, writes the very same bytes
    other.mkdir()
    shutil.copy2(out / SALT_FILE, other / SALT_FILE)
    run(tmp_path / "logs", other)
    assert output_bytes(other) == before


def test_inputs_gone_from_the_input_keep_their_outputs(tmp_path):
    old = write(tmp_path / "logs" / "day=2026-10-31" / "p.parquet", logs(1, event_id=["old"]))
    out = tmp_path / "out"
    run(tmp_path / "logs", out)
    old.unlink()
    write(tmp_path / "logs" / "day=2026-11-01" / "p.parquet", logs(2, event_id=["old", "new"]))
    report = run(tmp_path / "logs", out)
    assert [(a.rows_kept, a.duplicates) for a in report.files] == [(1, 1)]
    assert len(report.curated_files) == 2 and sorted(turns(out)["event_id"]) == ["new", "old"]


def test_a_new_salt_reingests_everything(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(1))
    out = tmp_path / "out"
    run(tmp_path / "logs", out)
    report = ingest(str(tmp_path / "logs"), out, Config(privacy=PrivacyConfig(user_salt="s3cret")))
    assert report.files[0].status == "ingested"
    assert turns(out)["user_key"].tolist() == [hash_user("raw-user-0", "s3cret")]


# ------------------------------------------------------------------------------------------------ privacy

def test_raw_user_ids_appear_in_no_output_file(tmp_path):
    write(tmp_path / "logs" / "a.parquet", logs(4, user_id=["raw-user-alpha", "raw-user-beta", "raw-user-gamma",
                                                            "raw-user-delta"],
                                               locale=["en-US", "bad locale", "en-US", "en-US"],
                                               utterance=["hi", "hello", "", "hey"]))
    (tmp_path / "logs" / "b.parquet").write_text("raw-user-epsilon but not parquet")
    out = tmp_path / "out"
    run(tmp_path / "logs", out, quarantine_bad_files=True)
    assert len(quarantine(out)) == 3  # the bad locale row, the empty utterance row and the bad file
    blobs = output_bytes(out)
    assert len(blobs) >= 4
    for name, blob in blobs.items():
        assert b"raw-user" not in blob, name
    assert turns(out)["user_key"].str.fullmatch(r"[0-9a-f]{16}").all()


def test_the_quarantine_keeps_no_user_key_no_event_id_and_only_cut_scrubbed_strings(tmp_path):
    hostile_locale = "call me on 415 555 2671 " + "z" * 500
    write(tmp_path / "logs" / "a.parquet", logs(3, event_id=["secret-event-1", "secret-event-2", "e3"],
                                               locale=[hostile_locale, "en-US", "en-US"],
                                               utterance=["hi", "mail jane.doe@example.com " + "y" * 3000, "ok"]))
    run(tmp_path / "logs", tmp_path / "out")
    q = quarantine(tmp_path / "out")
    assert q["reason"].tolist() == ["invalid_locale", "utterance_too_long"]
    assert {"user_key", "event_id"}.isdisjoint(q.columns)
    assert q["row_number"].tolist() == [0, 1]  # how an operator finds the row again, with source_file
    assert q["locale"].iloc[0] == "call me on <phone> zzzzzzzzzzzzzzzzzzzzz" and len(q["detail"].iloc[0]) < 120
    assert q["utterance"].iloc[1].startswith("mail <email> yyy") and len(q["utterance"].iloc[1]) == 200
    everything = str(q.to_dict(orient="records"))
    assert "secret-event" not in everything and "2671" not in everything and "jane" not in everything


def test_a_150k_character_row_is_cut_before_it_is_scrubbed(tmp_path):
    """Before: the whole text was scrubbed, then cut; "a" * n + "@" is quadratic for an e-mail pattern, and one
    such row made ingest take 79 s."""
    write(tmp_path / "logs" / "a.parquet", logs(2, utterance=["a" * 150_000 + "@", "ok"]))
    start = time.perf_counter()
    report = run(tmp_path / "logs", tmp_path / "out")
    assert time.perf_counter() - start < 10
    assert report.files[0].rows_quarantined == 1
    assert quarantine(tmp_path / "out")["utterance"].tolist() == ["a" * 200]


@pytest.mark.parametrize("intent, slots, reason", [
    ("<img src=x onerror=alert(1)>", None, "invalid_intent"),
    ("weather query", None, "invalid_intent"),
    ("x" * 101, None, "invalid_intent"),
    ("play_music", [{"name": "<b>artist</b>", "value": "x"}], "invalid_slot_name"),
    ("play_music", [{"name": "artist", "value": "x"}, {"name": None, "value": "y"}], "invalid_slot_name"),
    ("play_music", [{"name": "", "value": "y"}], "invalid_slot_name"),
])
def test_intent_and_slot_names_must_be_plain_names(tmp_path, intent, slots, reason):
    """Intent and slot names reach training files and the report verbatim: only A-Z a-z 0-9 _ . : - (1-100)."""
    slot_type = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
    good = ["iot_hue_lightoff", "Weather.Query:v2-b", "", None]
    write(tmp_path / "logs" / "a.parquet", logs(5, nlu_intent=[intent] + good,
                                               nlu_slots=pa.array([slots, [{"name": "time", "value": "7"}], [],
                                                                   None, None], slot_type)))
    report = run(tmp_path / "logs", tmp_path / "out")
    account = report.files[0]
    assert (account.rows_in, account.rows_kept, account.rows_quarantined) == (5, 4, 1)
    assert quarantine(tmp_path / "out")[["row_number", "reason"]].values.tolist() == [[0, reason]]
    assert turns(tmp_path / "out")["nlu_intent"].tolist() == good
    assert reason in REASONS


def test_configured_pii_patterns_apply_per_locale_and_everywhere(tmp_path):
    said = ["meine kundennummer 4711 bitte", "meine kundennummer 4711 bitte", "ticket PRJ-1234 status"]
    write(tmp_path / "logs" / "a.parquet", logs(4, locale=["de-DE", "en-US", "en-US", "de-CH"],
                                               utterance=said + ["kundennummer 9 für ticket prj-0001"]))
    privacy = PrivacyConfig(pii_patterns={"de": [r"kundennummer\s+\d+"], "*": [r"\bprj-\d{4}\b"]})
    ingest(str(tmp_path / "logs"), tmp_path / "out", Config(privacy=privacy))
    assert turns(tmp_path / "out")["utt"].tolist() == [
        "meine <pii> bitte", "meine kundennummer 4711 bitte", "ticket <pii> status", "<pii> für ticket <pii>"]
    with pytest.raises(ConfigError, match=r"privacy.pii_patterns = .*'\(unclosed' for 'de' is not a regular"):
        load_config(None, {"privacy.pii_patterns": {"de": ["(unclosed"]}})


# ------------------------------------------------------------------------------------------------ scale

def test_a_file_is_curated_in_batches_with_the_same_result(tmp_path, monkeypatch):
    """Memory follows BATCH_ROWS, not the file: batches of 4 rows give the same turns, duplicates across
    batches are caught, and quarantine row numbers count from the start of the file."""
    ids = ["e0", "e1", "e2", "e3", "e4", "e1", "e6", "e7", "e8", "e3", "e10"]
    table = logs(11, event_id=ids, locale=["en-US"] * 6 + ["bad locale"] + ["en-US"] * 4)
    write(tmp_path / "logs" / "a.parquet", table)
    # one salt for both folders (each would otherwise generate its own), so their user keys compare
    salted = Config(privacy=PrivacyConfig(user_salt="one-salt-for-both-folders"))
    whole = ingest(str(tmp_path / "logs"), tmp_path / "whole", salted).files[0]
    monkeypatch.setattr(ingest_casting, "BATCH_ROWS", 4)
    batched = ingest(str(tmp_path / "logs"), tmp_path / "batched", salted).files[0]
    assert (batched.rows_in, batched.rows_kept, batched.rows_quarantined, batched.duplicates) == (11, 8, 1, 2)
    assert (whole.rows_kept, whole.rows_quarantined, whole.duplicates) == (8, 1, 2)
    assert turns(tmp_path / "batched").equals(turns(tmp_path / "whole"))
    assert quarantine(tmp_path / "batched")["row_number"].tolist() == [6]
    assert pq.ParquetFile(next((tmp_path / "batched" / "curated" / "turns").iterdir())).num_row_groups == 3


def test_the_state_file_is_written_once_per_batch_of_files(tmp_path, monkeypatch):
    """Rewriting and fsyncing the whole state after every file made 1,849 tiny files take 37 s."""
    for i in range(10):
        write(tmp_path / "logs" / f"p{i}.parquet", logs(1, event_id=[f"e{i}"]))
    monkeypatch.setattr(ingest_module, "STATE_EVERY_FILES", 4)
    written = []
    real_write_json = ingest_module.io.atomic_write_json
    monkeypatch.setattr(ingest_module.io, "atomic_write_json",
                        lambda obj, path: written.append(Path(path).name) or real_write_json(obj, path))
    out = tmp_path / "out"
    assert run(tmp_path / "logs", out).totals()["rows_kept"] == 10
    assert written == ["_ingested.json"] * 3  # after files 4 and 8, and at the end
    assert {a.status for a in run(tmp_path / "logs", out).files} == {"skipped_unchanged"}


# ------------------------------------------------------------------------------------------------ io helpers

def test_atomic_writes_replace_whole_files_and_leave_nothing_behind_on_failure(tmp_path):
    from selflearn.io import atomic_write_json, atomic_write_parquet

    target = tmp_path / "sub" / "t.parquet"
    atomic_write_parquet(pa.table({"x": [1, 2]}), target)
    atomic_write_parquet(pa.table({"x": [3]}), target)
    assert pq.read_table(target)["x"].to_pylist() == [3]
    with pytest.raises(pa.ArrowException):
        atomic_write_parquet(pa.table({"x": [4]}), target, compression="no-such-codec")
    assert pq.read_table(target)["x"].to_pylist() == [3]  # the old file survives a failed write

    atomic_write_json({"b": 1, "a": "ü"}, tmp_path / "s.json")
    assert (tmp_path / "s.json").read_text(encoding="utf-8") == '{\n  "a": "ü",\n  "b": 1\n}\n'
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["s.json", "sub", "t.parquet"]

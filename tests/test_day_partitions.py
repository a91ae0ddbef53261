"""Day partitions (selflearn/stages/daily.py) on the real pipeline (DuckDB, hashing embedder, real Parquet): a late
file for a past day recomputes that day and its neighbours only and ends where a run from scratch over the same
files ends; a re-run reuses every day and writes the same bytes; without a half-life the window's statistics
are the plain counts of before, with one the counts stay and only the shares lean to recent days; an output
folder whose run still holds the per-turn friction partitions of older runs keeps working and sheds them.

The record of every turn these tests check the per-day results against is computed here, in one pass of
sql/turn_friction.sql over the window's curated turns, not read from the run (which keeps no per-turn rows)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from selflearn import outdir, pipeline
from selflearn.config import load_config
from selflearn.engines import get_engine
from selflearn.layout import RunLayout
from selflearn.stages import friction

pytestmark = pytest.mark.slow
TABLES = ("training/parquet/train.parquet", "rephrases/pairs.parquet", "graph/nodes.parquet", "graph/edges.parquet",
          "work/daily/scored_pairs", "history/labels.parquet")
LATE_DAY = 3   # index of the day a late file lands on


def _config(**overrides):
    return load_config(None, {"embedding.backend": "hashing", "run.progress": False, "privacy.user_salt": "t",
                              **overrides})


def _run(logs: Path, out: Path, **overrides) -> dict:
    return pipeline.run(str(logs), out, _config(**overrides), say=lambda m: None).manifest


def _every_turn(out: Path) -> pd.DataFrame:
    """Every turn of the published run's window with its session and friction: sql/turn_friction.sql run once
    over all the window's curated turns (the run works day by day, with neighbour days as context)."""
    layout = RunLayout(out, outdir.published_dir(out))
    window = sorted(json.loads(layout.daily_ledger.read_text())["days"])
    engine = get_engine("duckdb")
    try:
        turns = friction.day_turns(engine, sorted(layout.curated_turns.glob("*.parquet")),
                                   pa.table({"day": pa.array(window, type=pa.string())}))
        every_turn = engine.to_arrow(friction.turn_friction(engine, turns, _config())).to_pandas()
    finally:
        engine.close()
    assert sorted(every_turn["day"].unique()) == window
    return every_turn


def _split(day_dir: Path, on_time: Path, late: Path) -> None:
    """Day `day_dir`'s file as two files: two thirds of its users on time, the others' turns late."""
    (source,) = sorted(day_dir.glob("*.parquet"))
    table = pq.read_table(source).to_pandas()
    users = sorted(table["user_id"].unique())
    late_users = set(users[::3])
    for folder, rows in ((on_time, table[~table["user_id"].isin(late_users)]),
                         (late, table[table["user_id"].isin(late_users)])):
        folder.mkdir(parents=True, exist_ok=True)
        rows.to_parquet(folder / ("part-on-time.parquet" if folder == on_time else "part-late.parquet"), index=False)


@pytest.fixture(scope="module")
def late_file(sample_logs, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("late")
    days = sorted(sample_logs.glob("day=*"))
    daily_logs, full_logs, late_folder = root / "daily_logs", root / "full_logs", root / "late"
    for i, day in enumerate(days):
        if i == LATE_DAY:
            _split(day, daily_logs / day.name, late_folder)
            shutil.copytree(daily_logs / day.name, full_logs / day.name)
            shutil.copy(late_folder / "part-late.parquet", full_logs / day.name)
        else:
            shutil.copytree(day, daily_logs / day.name)
            shutil.copytree(day, full_logs / day.name)
    first = _run(daily_logs, root / "out")
    shutil.copy(late_folder / "part-late.parquet", daily_logs / days[LATE_DAY].name)   # the late file lands
    after_late = _run(daily_logs, root / "out")
    scratch = _run(full_logs, root / "scratch")
    return {"root": root, "days": [d.name.removeprefix("day=") for d in days], "first": first,
            "after_late": after_late, "scratch": scratch, "logs": daily_logs, "full_logs": full_logs}


def test_a_late_file_recomputes_its_day_and_neighbours_only(late_file):
    days = late_file["days"]
    assert late_file["first"]["days"]["recomputed"] == days          # the first run computes every day
    assert late_file["after_late"]["days"]["recomputed"] == days[LATE_DAY - 1:LATE_DAY + 2]
    assert late_file["after_late"]["days"]["reused"] == len(days) - 3
    ledger = json.loads((late_file["root"] / "out" / "work" / "daily" / "_days.json").read_text())
    assert sorted(ledger["days"]) == days and len(ledger["files"]) == len(days) + 1


def test_a_late_file_ends_where_a_run_from_scratch_ends(late_file):
    out, scratch = late_file["root"] / "out", late_file["root"] / "scratch"
    for rel in TABLES:
        a, b = pq.read_table(out / rel), pq.read_table(scratch / rel)
        assert a.num_rows > 0 and a.equals(b), rel
    for part in sorted((scratch / "work" / "daily").glob("*/*.parquet")):   # every day partition too
        assert pq.read_table(out / part.relative_to(scratch)).equals(pq.read_table(part)), part.name
    assert late_file["after_late"]["counts"] == late_file["scratch"]["counts"]


def test_a_rerun_over_the_same_days_reuses_every_day_and_writes_the_same_bytes(late_file):
    out = late_file["root"] / "out"
    before = {rel: _bytes(out / rel) for rel in TABLES}
    manifest = _run(late_file["logs"], out)
    assert manifest["days"]["recomputed"] == [] and manifest["days"]["reused"] == len(late_file["days"])
    assert {rel: _bytes(out / rel) for rel in TABLES} == before
    # reused partitions are links to the previous run's files, not copies
    part = next((out / "work" / "daily" / "node_days").glob("*.parquet"))
    assert part.stat().st_nlink >= 2


def _bytes(path: Path) -> dict:
    """A file's bytes, or each file's of a folder (work/daily/scored_pairs: one file a day)."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    return {f.name: f.read_bytes() for f in files}


def _old_node_statistics(run: Path) -> pd.DataFrame:
    """Per text, as the window statements computed them before day partitions: plain counts over every turn."""
    turns = _every_turn(run)
    pairs = pd.read_parquet(run / "work/daily/scored_pairs")
    rephrased = set(pairs.loc[pairs["is_rephrase"], "event_id_a"])
    turns["defective"] = (turns["friction"] >= 0.5) | turns["event_id"].isin(rephrased)
    turns["intent"] = turns["nlu_intent"].fillna("")
    per_intent = turns.groupby(["locale", "utt_norm", "intent"]).size().rename("n").reset_index()
    top = per_intent.sort_values(["locale", "utt_norm", "n", "intent"], ascending=[True, True, False, True])
    top = top.drop_duplicates(["locale", "utt_norm"]).set_index(["locale", "utt_norm"])["n"]
    stats = turns.groupby(["locale", "utt_norm"]).agg(n_events=("event_id", "size"), n_users=("user_key", "nunique"),
                                                      n_friction=("defective", "sum"))
    stats["defect_rate"] = stats["n_friction"] / stats["n_events"]
    stats["top_intent_share"] = top / stats["n_events"]
    return stats


def test_without_a_half_life_the_window_statistics_are_the_plain_counts_of_before(late_file):
    nodes = pd.read_parquet(late_file["root"] / "scratch" / "graph" / "nodes.parquet").set_index(["locale", "utt_norm"])
    old = _old_node_statistics(late_file["root"] / "scratch").loc[nodes.index]
    assert len(nodes) > 100
    for column in ("n_events", "n_users", "n_friction", "defect_rate", "top_intent_share"):
        assert (nodes[column].to_numpy() == old[column].to_numpy()).all(), column   # bit for bit


def test_a_half_life_leans_shares_to_recent_days_and_keeps_counts(late_file):
    root = late_file["root"]
    _run(late_file["full_logs"], root / "decayed", **{"window.half_life_days": 1.0})
    plain = pd.read_parquet(root / "scratch" / "graph" / "nodes.parquet").set_index(["locale", "utt_norm"])
    decayed = pd.read_parquet(root / "decayed" / "graph" / "nodes.parquet").set_index(["locale", "utt_norm"])
    assert decayed.index.equals(plain.index)   # the release rule reads undecayed users
    for column in ("n_events", "n_users", "n_friction"):
        assert decayed[column].equals(plain[column]), column
    moved = (decayed["defect_rate"] - plain["defect_rate"]).abs() > 1e-9
    assert moved.sum() > 10
    # a text failing only on the oldest day weighs less failing than plainly: recompute one by hand
    days = pd.concat(pd.read_parquet(p) for p in sorted((root / "decayed/work/daily/node_days").glob("*.parquet")))
    newest = pd.Timestamp(max(days["day"]))
    days["w"] = 0.5 ** ((newest - pd.to_datetime(days["day"])).dt.days / 1.0)
    key = moved[moved].index[0]
    mine = days[(days["locale"] == key[0]) & (days["utt_norm"] == key[1])]
    expected = (mine["n_defective"] * mine["w"]).sum() / (mine["n_events"] * mine["w"]).sum()
    assert decayed.loc[key, "defect_rate"] == pytest.approx(expected, rel=1e-12)


def test_the_window_texts_and_target_slots_from_day_texts_are_those_of_every_turn(late_file):
    """Embed and labels read the window's texts per day (work/daily/day_texts: a row per text, day and reading),
    not its turns: the distinct texts and each text's earliest successful turn per reading are those of the turns."""
    run = late_file["root"] / "out"
    turns = _every_turn(run)
    day_texts = pd.concat(pd.read_parquet(p) for p in sorted((run / "work/daily/day_texts").glob("*.parquet")))
    assert sorted(day_texts["utt_norm"].unique()) == sorted(turns["utt_norm"].unique())
    # a row per day, text and reading, naming that day's earliest turn read so without friction (none: null)
    key = ["day", "locale", "utt_norm", "reading"]
    turns["reading"], day_texts["reading"] = turns["nlu_intent"].fillna("-"), day_texts["nlu_intent"].fillna("-")
    first_ok = turns[turns["friction"] < 0.5].sort_values(["ts_ms", "event_id"]).drop_duplicates(key)
    expected_rows = turns[key].drop_duplicates().merge(first_ok[key + ["event_id"]], on=key, how="left")
    rows = {tuple(r) for r in expected_rows.fillna("-").to_numpy()}
    assert len(day_texts) == len(rows) and rows == {tuple(r) for r in day_texts[key + ["success_event_id"]]
                                                    .fillna("-").to_numpy()}
    assert expected_rows["event_id"].isna().sum() > 10 and expected_rows["event_id"].notna().sum() > 100
    ok = turns[(turns["friction"] < 0.5) & turns["nlu_intent"].notna()]
    earliest = ok.sort_values(["ts_ms", "event_id"]).drop_duplicates(["locale", "utt_norm", "nlu_intent"])
    targets = earliest[["locale", "utt_norm", "nlu_intent"]].rename(columns={"nlu_intent": "intent"})
    targets = targets.drop_duplicates(["locale", "utt_norm"]).reset_index(drop=True)
    assert len(targets) > 100
    engine = get_engine("duckdb")
    try:
        found = engine.to_arrow(engine.sql("target_slots", {
            "day_texts": pa.Table.from_pandas(day_texts, preserve_index=False),
            "targets": pa.Table.from_pandas(targets, preserve_index=False)})).to_pandas()
    finally:
        engine.close()
    expected = targets.merge(earliest.rename(columns={"nlu_intent": "intent"}), on=["locale", "utt_norm", "intent"])
    expected = expected.sort_values(["locale", "utt_norm"]).reset_index(drop=True)
    assert found[["locale", "utt_norm"]].equals(expected[["locale", "utt_norm"]])
    assert [list(s) for s in found["nlu_slots"]] == [list(s) for s in expected["nlu_slots"]]
    assert sum(len(s) > 0 for s in found["nlu_slots"]) > 10   # slots, not only empty lists, compared


def test_an_output_folder_with_the_old_per_turn_partitions_keeps_working_and_sheds_them(late_file):
    """Runs before 2026-12-03 also kept work/daily/turn_friction/. A run over such a folder reuses its days (no
    statement changed), neither reads nor links the old partitions, and leaves the run folder that holds them
    untouched for its readers; the sweep after the next run removes that folder, and the partitions with it."""
    root, days = late_file["root"], late_file["days"]
    out = root / "old_layout"
    shutil.copytree(root / "scratch", out, symlinks=True)
    # the run folder named as an exited process leaves it (this process's own run folders are never swept)
    old_run = outdir.published_dir(out).rename(out / ".runs" / "20261201T000000000000000Z-999999999")
    (out / ".current").unlink()
    (out / ".current").symlink_to(f".runs/{old_run.name}")
    turns = pa.Table.from_pandas(_every_turn(out), preserve_index=False)
    for day in days:   # the per-turn partitions an older run left beside the others
        part = old_run / "work" / "daily" / "turn_friction" / f"{day}.parquet"
        part.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(turns.filter(pc.equal(turns["day"], day)), part)
    old_files = {p: p.read_bytes() for p in sorted(old_run.rglob("*")) if p.is_file()}

    manifest = _run(late_file["full_logs"], out)
    assert manifest["days"]["recomputed"] == [] and manifest["days"]["reused"] == len(days)
    new_run = outdir.published_dir(out)
    assert new_run != old_run and not (new_run / "work" / "daily" / "turn_friction").exists()
    assert sorted(p.name for p in (new_run / "work" / "daily").iterdir()) == \
        ["_days.json", "day_texts", "edge_days", "locale_days", "node_days", "scored_pairs"]
    for rel in TABLES:
        assert pq.read_table(out / rel).equals(pq.read_table(root / "scratch" / rel)), rel
    assert {p: p.read_bytes() for p in sorted(old_run.rglob("*")) if p.is_file()} == old_files   # untouched

    _run(late_file["full_logs"], out)   # old_run is no longer the published run nor the one before it
    assert not old_run.exists()
    assert not list(out.glob(".runs/*/work/daily/turn_friction"))

"""Day partitions (selflearn/stages/daily.py) on the real pipeline (DuckDB, hashing embedder, real Parquet): a late
file for a past day recomputes that day and its neighbours only and ends where a run from scratch over the same
files ends; a re-run reuses every day and writes the same bytes; without a half-life the window's statistics
are the plain counts of before, with one the counts stay and only the shares lean to recent days."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn import pipeline
from selflearn.config import load_config
from selflearn.engines import get_engine

pytestmark = pytest.mark.slow
TABLES = ("training/parquet/train.parquet", "rephrases/pairs.parquet", "graph/nodes.parquet", "graph/edges.parquet",
          "work/daily/scored_pairs", "history/labels.parquet")
LATE_DAY = 3   # index of the day a late file lands on


def _run(logs: Path, out: Path, **overrides) -> dict:
    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False, "privacy.user_salt": "t",
                             **overrides})
    return pipeline.run(str(logs), out, cfg, say=lambda m: None).manifest


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
    friction = pd.concat(pd.read_parquet(p) for p in sorted((run / "work/daily/turn_friction").glob("*.parquet")))
    pairs = pd.read_parquet(run / "work/daily/scored_pairs")
    rephrased = set(pairs.loc[pairs["is_rephrase"], "event_id_a"])
    friction["defective"] = (friction["friction"] >= 0.5) | friction["event_id"].isin(rephrased)
    friction["intent"] = friction["nlu_intent"].fillna("")
    per_intent = friction.groupby(["locale", "utt_norm", "intent"]).size().rename("n").reset_index()
    top = per_intent.sort_values(["locale", "utt_norm", "n", "intent"], ascending=[True, True, False, True])
    top = top.drop_duplicates(["locale", "utt_norm"]).set_index(["locale", "utt_norm"])["n"]
    stats = friction.groupby(["locale", "utt_norm"]).agg(n_events=("event_id", "size"), n_users=("user_key", "nunique"),
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
    friction = pd.concat(pd.read_parquet(p) for p in sorted((run / "work/daily/turn_friction").glob("*.parquet")))
    day_texts = pd.concat(pd.read_parquet(p) for p in sorted((run / "work/daily/day_texts").glob("*.parquet")))
    assert sorted(day_texts["utt_norm"].unique()) == sorted(friction["utt_norm"].unique())
    ok = friction[(friction["friction"] < 0.5) & friction["nlu_intent"].notna()]
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

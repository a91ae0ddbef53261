"""Property-based runs of the real CLI over arbitrary small logs that honour the log contract
(docs/LOG_CONTRACT.md, contract.LOG_SCHEMA): none to a few hundred rows, one to five locales, one user or
many, every turn failing or none, optional columns null or absent, odd timestamps (naive, any unit, 1970 and
before, 2999, other zones), any Unicode, one Parquet file or several, flat or hive-partitioned.

Whatever the log (and with single-user text released or a one-day window), `selflearn run` must exit 0,
account for every row written, write every output in its contract schema, keep catalog and report consistent
with the manifest, and write the same bytes again into a fresh folder. Privacy: every text in every released
file (weak labels with their evidence, MASSIVE JSONL, rewrite pairs, graph, report.html, catalog views) is said
by at least privacy.min_users distinct users of the input log, and the quarantine is no catalog view and keeps
no user key or event id.

Hypothesis runs derandomized (the same examples on every CI run) and keeps no example database;
SELFLEARN_HYPOTHESIS_EXAMPLES raises the number of examples (default 30 on DuckDB, 3 on Spark).
"""
from __future__ import annotations

import contextlib
import html
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import local_spark_session

from selflearn import catalog, contract
from selflearn.cli import main
from selflearn.text import normalize, strip_controls

EXAMPLES = int(os.environ.get("SELFLEARN_HYPOTHESIS_EXAMPLES", "30"))
settings.register_profile(
    "selflearn-ci", max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
CI = settings.get_profile("selflearn-ci")

# Every file a run writes in a contract schema (glob relative to --out -> schema).
OUTPUT_SCHEMAS = {
    "training/parquet/*.parquet": contract.WEAK_LABELS_SCHEMA,
    "graph/nodes.parquet": contract.NODES_SCHEMA,
    "graph/edges.parquet": contract.EDGES_SCHEMA,
    "rephrases/pairs.parquet": contract.REWRITE_PAIRS_SCHEMA,
    "quarantine/*.parquet": contract.QUARANTINE_SCHEMA,
    "curated/turns/*.parquet": contract.TURNS_SCHEMA,
    "work/daily/scored_pairs/*.parquet": contract.REPHRASE_PAIRS_SCHEMA,
}
ALWAYS_WRITTEN = ("training/parquet/train.parquet", "training/README.md", "graph/nodes.parquet", "graph/edges.parquet",
                  "rephrases/pairs.parquet", "work/daily/_days.json", "manifest.json", "report.html",
                  "catalog.duckdb")
MASSIVE_KEYS = {"id", "locale", "partition", "scenario", "intent", "utt", "annot_utt", "weak_label"}

# ------------------------------------------------------------------------------------------------ the logs

LOCALES = ["en-US", "de-DE", "ja-JP", "hi-IN", "zh-Hant-TW", "fr_fr", "sw-KE", "ar-SA"]
# Texts users share, so utterances repeat across users and the graph gets nodes, edges and labels.
PHRASES = ["what's the weather", "set an alarm for seven", "wake me up at seven", "play some jazz",
           "wie ist das wetter", "stell einen Wecker", "天気は？", "七時にアラームをセット", "मौसम कैसा है",
           "बत्ती बंद करो", "打开灯", "mets un réveil à sept heures", "hali ya hewa"]
# Texts that have broken pipelines: empty, blank, controls, combining marks, emoji, PII, punctuation only.
ODD_TEXTS = ["", "   ", "\x00", "\x07beep\x1b[0m", "e\u0301 cafe\u0301", "👍🏽", "🤖 play 🎵", "👨\u200d👩\u200d👧",
             "\u200d", "a\u0000b", "?!", "...", "ｆｕｌｌｗｉｄｔｈ", "İstanbul ß", "\ufeffbom", "क्\u200dष",
             "call me at +1 415 555 0100", "mail a.b@example.com", "x" * 2001, "\u202eevil", "Ǆ ǅ ǆ"]
INTENTS = [None, "", "weather_query", "alarm_set", "play_music", "iot_hue_lightoff"]
ZONES = [None, "UTC", "Asia/Kolkata", "America/Los_Angeles", "+05:45", "Pacific/Kiritimati"]
# turns from before the epoch into 1970, across a day boundary, and near the end of year 2999
BASES = [datetime(1969, 12, 31, 23, 58), datetime(2026, 11, 1, 23, 59, 30), datetime(2999, 12, 30)]
GAPS_S = [0, 1, 3, 5, 8, 12, 20, 50, 130, 400, 3 * 86400, 40 * 86400]  # same second .. beyond the 28-day window
OPTIONAL = ("session_id", "nlu_intent", "nlu_slots", "nlu_confidence", "response_status", "barge_in")
# A row that breaks the contract at row level: it must end in quarantine, never stop the run.
ROW_DEFECTS = ["null_event_id", "null_user_id", "blank_locale", "bad_locale", "null_ts", "bad_status",
               "bad_confidence"]


@dataclass
class Log:
    rows: list[dict]
    columns: dict[str, str]          # optional column -> present / absent / null / null_typed
    ts_type: pa.DataType
    string_type: pa.DataType         # utterance and locale: string, large_string or dictionary
    confidence_type: pa.DataType
    files: int
    layout: str                      # flat / hive / single_file
    extra_column: bool


def text_of(phrases: list[str]) -> st.SearchStrategy[str]:
    """Mostly the example's few shared phrases (so texts repeat across turns and users), sometimes anything."""
    shared = st.sampled_from(phrases)
    return st.one_of(shared, shared, shared, st.sampled_from(ODD_TEXTS),
                     st.text(st.characters(exclude_categories=("Cs",)), max_size=24))


@st.composite
def turn(draw, n_users: int, locales: list[str], phrases: list[str], failing: str) -> dict:
    status = {"none": st.sampled_from(["success", "Success ", None]),
              "all": st.sampled_from(["error", "unhandled", " ERROR"]),
              "mixed": st.sampled_from(["success", "error", "unhandled", None, ""])}[failing]
    barge = {"none": st.sampled_from([False, None]), "all": st.just(True),
             "mixed": st.sampled_from([True, False, None])}[failing]
    confidence = {"none": st.floats(0.5, 1.0), "all": st.floats(0.0, 0.49), "mixed": st.floats(0.0, 1.0)}[failing]
    text = draw(text_of(phrases))
    return {
        "user": draw(st.integers(0, n_users - 1)),
        "gap_s": draw(st.sampled_from(GAPS_S)),
        "locale": draw(st.sampled_from(locales)),
        "utterance": text,
        "session_id": draw(st.sampled_from([None, None, "s1", "s2", ""])),
        "nlu_intent": draw(st.sampled_from(INTENTS)),
        "nlu_slots": draw(st.sampled_from([None, [], [{"name": "time", "value": "seven"}],
                                           [{"name": "place", "value": text[:4]}, {"name": "x", "value": None}]])),
        "nlu_confidence": draw(st.one_of(st.none(), confidence)),
        "response_status": draw(status),
        "barge_in": draw(barge),
        "defect": draw(st.sampled_from([None] * 40 + ROW_DEFECTS)),
        "repeat_event": draw(st.sampled_from([False] * 30 + [True])),
    }


@st.composite
def moves(draw, n_users: int, locales: list[str], phrases: list[str], failing: str) -> list[dict]:
    """One turn, or a rephrase: a turn that goes wrong and, seconds later, the same user saying it otherwise."""
    first = draw(turn(n_users, locales, phrases, failing))
    if failing != "mixed" or not draw(st.booleans()):
        return [first]
    first.update(response_status="error", barge_in=True, nlu_intent="play_music", nlu_confidence=0.3)
    second = draw(turn(n_users, locales, phrases, "none"))
    # users rephrase by rewording, so the fix shares words with the failed turn
    said_otherwise = draw(st.sampled_from(["please {}", "{} now", "{} {}", "hey {} please"])).format(
        first["utterance"], first["utterance"])
    second.update(user=first["user"], locale=first["locale"], session_id=first["session_id"],
                  gap_s=draw(st.integers(1, 8)), nlu_intent="alarm_set", utterance=said_otherwise)
    return [first, second]


@st.composite
def logs(draw) -> Log:
    locales = draw(st.lists(st.sampled_from(LOCALES), min_size=1, max_size=5, unique=True))
    phrases = draw(st.lists(st.sampled_from(PHRASES), min_size=1, max_size=4, unique=True))
    n_users = draw(st.sampled_from([1, 2, 3, 8]))
    failing = draw(st.sampled_from(["none", "all", "mixed", "mixed"]))
    size = draw(st.integers(0, 40))  # drawn first: lists of a drawn size are not biased towards short ones
    episode = [t for move in draw(st.lists(moves(n_users, locales, phrases, failing), min_size=size, max_size=size))
               for t in move]
    # The same episode lived by other users a few seconds apart: shared texts and rephrases from many
    # users (labels need at least min_users), and up to a few hundred rows.
    copies = draw(st.sampled_from([1, 2, 3, 6]))
    base = draw(st.sampled_from(BASES))
    unit = draw(st.sampled_from(["s", "ms", "us", "ns"] if base.year < 2262 else ["s", "ms", "us"]))
    rows = []
    for copy in range(copies):
        t = 0
        for i, step in enumerate(episode):
            t += step["gap_s"]
            # a repeated event reuses the id of the row before it: a duplicate to drop and count
            event_id = len(rows) - 1 if step["repeat_event"] and i > 0 else len(rows)
            rows.append(to_row(step, event_id=f"ev-{event_id}", user=f"user-{step['user'] + copy * n_users}",
                               ts=base + timedelta(seconds=t + 7 * copy)))
    string_type = draw(st.sampled_from([pa.string(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())]))
    return Log(rows=rows,
               columns={c: draw(st.sampled_from(["present", "present", "present", "absent", "null", "null_typed"]))
                        for c in OPTIONAL},
               ts_type=pa.timestamp(unit, tz=draw(st.sampled_from(ZONES))), string_type=string_type,
               confidence_type=draw(st.sampled_from([pa.float64(), pa.float32()])),
               files=draw(st.integers(1, 3)), layout=draw(st.sampled_from(["flat", "hive", "single_file"])),
               extra_column=draw(st.booleans()))


def to_row(turn: dict, event_id: str, user: str, ts: datetime) -> dict:
    row = {"event_id": event_id, "user_id": user, "session_id": turn["session_id"], "locale": turn["locale"], "ts": ts,
           "utterance": turn["utterance"], **{c: turn[c] for c in OPTIONAL if c != "session_id"}}
    defect = turn["defect"]
    if defect == "null_event_id":
        row["event_id"] = None
    elif defect == "null_user_id":
        row["user_id"] = " "
    elif defect == "blank_locale":
        row["locale"] = ""
    elif defect == "bad_locale":
        row["locale"] = "english please"
    elif defect == "null_ts":
        row["ts"] = None
    elif defect == "bad_status":
        row["response_status"] = "maybe"
    elif defect == "bad_confidence":
        row["nlu_confidence"] = float("nan")
    return row


def write_logs(log: Log, folder: Path) -> tuple[str, int]:
    """Write `log` as real Parquet files under folder/logs; returns (--logs argument, rows written)."""
    root = folder / "logs"
    root.mkdir(parents=True)
    files = 1 if log.layout == "single_file" else log.files
    chunk = -(-len(log.rows) // files) if log.rows else 0
    for part in range(files):
        rows = log.rows[part * chunk:(part + 1) * chunk]
        where = root / f"day=2026-11-0{part + 1}" if log.layout == "hive" else root
        where.mkdir(exist_ok=True)
        pq.write_table(to_table(rows, log), where / f"part-{part}.parquet")
    single = root / "part-0.parquet"
    return str(single if log.layout == "single_file" else root), len(log.rows)


def to_table(rows: list[dict], log: Log) -> pa.Table:
    ts_utc = [None if r["ts"] is None else r["ts"].replace(tzinfo=timezone.utc) for r in rows]
    ts = pa.array(ts_utc, pa.timestamp("us", tz="UTC"))
    # naive timestamps hold the UTC wall clock; zoned ones the same instants in their zone
    ts = ts.cast(pa.timestamp("us")) if log.ts_type.tz is None else ts.cast(pa.timestamp("us", tz=log.ts_type.tz))
    columns = {
        "event_id": pa.array([r["event_id"] for r in rows], pa.string()),
        "user_id": pa.array([r["user_id"] for r in rows], pa.string()),
        "locale": pa.array([r["locale"] for r in rows], pa.string()).cast(log.string_type),
        "ts": ts.cast(log.ts_type, safe=False),
        "utterance": pa.array([r["utterance"] for r in rows], pa.string()).cast(log.string_type),
    }
    types = {f.name: f.type for f in contract.LOG_SCHEMA}
    types["nlu_confidence"] = log.confidence_type
    for name in OPTIONAL:
        mode = log.columns[name]
        if mode == "present":
            columns[name] = pa.array([r[name] for r in rows], types[name])
        elif mode == "null":
            columns[name] = pa.nulls(len(rows), types[name])
        elif mode == "null_typed":  # a column a writer could not type: Parquet's null type
            columns[name] = pa.nulls(len(rows))
    if log.extra_column:
        columns["device"] = pa.array(["speaker"] * len(rows), pa.string())
    return pa.table(columns)


# ------------------------------------------------------------------------------------------------ the run

def run_cli(logs_arg: str, out: Path, config: Path) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", "--logs", logs_arg, "--out", str(out), "--config", str(config), "--no-progress"])
    return code, stdout.getvalue()


def check_run(out: Path, rows_written: int, stdout: str) -> None:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    rows, counts = manifest["rows"], manifest["counts"]
    assert rows["rows_in"] == rows["rows_kept"] + rows["rows_quarantined"] + rows["duplicates"]
    assert rows["rows_in"] == rows_written
    for rel in ALWAYS_WRITTEN:
        assert (out / rel).is_file(), rel
    for pattern, schema in OUTPUT_SCHEMAS.items():
        for path in out.glob(pattern):
            found = pq.read_schema(path).remove_metadata()
            assert found.equals(schema), f"{path.relative_to(out)}:\n{found}\n!=\n{schema}"
    quarantined = sum(pq.read_metadata(p).num_rows for p in out.glob("quarantine/*.parquet"))
    assert quarantined == rows["rows_quarantined"]
    assert pq.read_metadata(out / "training/parquet/train.parquet").num_rows == counts["weak_labels"]
    assert sum(r["turns"] for r in manifest["funnel"]) == counts["turns_in_window"]
    assert sum(r["labels"] for r in manifest["funnel"]) == counts["weak_labels"]
    check_massive(out, counts)
    check_catalog(out, counts)
    report = (out / "report.html").read_text(encoding="utf-8")
    if counts["weak_labels"] == 0:
        assert 'id="no-labels">No labels this run: ' in report
        assert "No labels this run: " in stdout
    else:
        assert 'id="no-labels"' not in report and "No labels this run" not in stdout


def check_massive(out: Path, counts: dict) -> None:
    per_locale = {}
    for path in sorted((out / "training" / "massive" / "train").glob("*.jsonl")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for line in lines:
            record = json.loads(line)
            assert set(record) == MASSIVE_KEYS and record["locale"] == path.stem and record["partition"] == "train"
        per_locale[path.stem] = len(lines)
    assert per_locale == counts["labels_per_locale"]


def check_catalog(out: Path, counts: dict) -> None:
    con = catalog.connect(out)
    try:
        assert con.execute("select count(*) from weak_labels").fetchone()[0] == counts["weak_labels"]
        assert con.execute("select coalesce(sum(turns), 0) from funnel").fetchone()[0] == counts["turns_in_window"]
        for name in catalog.EXAMPLES:
            catalog.run_query(con, name, limit=5)
    finally:
        con.close()


def data_files(out: Path) -> dict[str, bytes]:
    """Every Parquet and JSON Lines output by relative path (the embedding cache holds neither), as a user
    reaches it: through the published links, not the hidden run folders they point into (selflearn.outdir)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(out, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for p in (Path(dirpath, f) for f in filenames if f.endswith((".parquet", ".jsonl"))):
            found[p.relative_to(out).as_posix()] = p.read_bytes()
    return dict(sorted(found.items()))


def without_timings(out: Path) -> tuple[dict, str]:
    """manifest.json and report.html minus what differs between equal runs: wall times and the out folder."""
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest.pop("timings_s")
    report = (out / "report.html").read_text(encoding="utf-8").replace(html.escape(str(out.resolve())), "OUT")
    return manifest, re.sub(r"<h2>Timings</h2>.*</body>", "", report, flags=re.S)


def describe(manifest: dict) -> None:
    """What the example reached, for --hypothesis-show-statistics: proof the generator covers the funnel."""
    rows, counts = manifest["rows"], manifest["counts"]
    event(f"rows in: {'0' if not rows['rows_in'] else '1-99' if rows['rows_in'] < 100 else '100+'}")
    for what, n in (("turns in window", counts["turns_in_window"]), ("quarantined", rows["rows_quarantined"]),
                    ("duplicates", rows["duplicates"]), ("rephrases", counts["rephrases"]),
                    ("failing utterances", counts["failing_nodes"]), ("variant edges", counts["variant_edges"]),
                    ("weak labels", counts["weak_labels"])):
        event(f"{what}: {'some' if n else 'none'}")


# ------------------------------------------------------------------------------------------------ privacy

# How evidence quotes a rephrase target, and how annot_utt marks a slot (MASSIVE): the texts inside are checked.
EVIDENCE_QUOTE = re.compile(r"rephrased to '(.*?)' \(strongest rephrase")
ANNOTATION = re.compile(r"\[[A-Za-z0-9_.:-]+ : (.*?)\]")
# Columns of report tables that hold user text.
REPORT_TEXT_COLUMNS = {"utterance", "fixed by"}


def users_per_text(log: Log) -> dict[str, int]:
    """Distinct users per normalized text over the rows ingest keeps (a quarantined row or a duplicate event
    adds no user): computed from the input log, not from anything the run wrote."""
    users: dict[str, set] = {}
    seen: set[str] = set()
    for row in log.rows:
        raw = row["utterance"]
        if not passes_row_checks(row, log) or not strip_controls(raw).strip() or len(strip_controls(raw)) > 2000:
            continue
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        users.setdefault(normalize(raw), set()).add(row["user_id"])
    return {text: len(who) for text, who in users.items()}


def passes_row_checks(row: dict, log: Log) -> bool:
    """The contract's row checks on what to_row wrote (a defect in a column the file lacks is no defect)."""
    def value(name):
        return row[name] if log.columns.get(name, "present") == "present" else None

    status, confidence = value("response_status"), value("nlu_confidence")
    return (bool((row["event_id"] or "").strip()) and bool((row["user_id"] or "").strip())
            and row["locale"] in LOCALES and row["ts"] is not None
            and (status is None or status.strip().lower() in ("", "success", "error", "unhandled"))
            and (confidence is None or 0.0 <= confidence <= 1.0))


def released_texts(out: Path) -> list[tuple[str, str]]:
    """(where, text) for every text of user speech in the run's released files, report and catalog views."""
    found: list[tuple[str, str]] = []

    def label_texts(where: str, utt, annot_utt, target_utt, evidence, slots) -> None:
        found.extend((f"{where}.utt", t) for t in (utt, target_utt) if t is not None)
        if annot_utt is not None:
            found.append((f"{where}.annot_utt", ANNOTATION.sub(r"\1", annot_utt)))
        found.extend((f"{where}.evidence", q) for q in EVIDENCE_QUOTE.findall(evidence or ""))
        for slot in slots or []:  # a slot value is part of the utterance, never text from elsewhere
            assert (slot["value"] or "").casefold() in (utt or "").casefold(), (where, slot, utt)

    for r in pq.read_table(out / "training/parquet/train.parquet").to_pylist():
        label_texts("weak_labels", r["utt"], r["annot_utt"], r["target_utt"], r["evidence"], r["slots"])
        found.append(("weak_labels.utt_norm", r["utt_norm"]))
    for path in sorted((out / "training/massive").glob("*/*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            w = r["weak_label"]
            label_texts(f"massive/{path.name}", r["utt"], r["annot_utt"], w["target_utt"], w["evidence"], [])
    for r in pq.read_table(out / "rephrases/pairs.parquet").to_pylist():
        found += [("pairs.a", r["utt_a"]), ("pairs.b", r["utt_b"]), ("pairs.norm_a", r["utt_norm_a"]),
                  ("pairs.norm_b", r["utt_norm_b"])]
    for r in pq.read_table(out / "graph/nodes.parquet").to_pylist():
        found += [("nodes.utt", r["utt"]), ("nodes.utt_norm", r["utt_norm"])]
    page = (out / "report.html").read_text(encoding="utf-8")
    for table in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        header = [html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table, flags=re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S):
            cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)]
            for name, cell in zip(header, cells):
                if name in REPORT_TEXT_COLUMNS:
                    found.append((f"report.{name}", cell))
                elif name == "evidence":
                    found.extend(("report.evidence", q) for q in EVIDENCE_QUOTE.findall(cell))
    con = catalog.connect(out)
    try:
        views = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
        for view in views:
            for (column,) in con.execute(f"select column_name from (describe {view})").fetchall():
                if re.search(r"(^|_)utt(_|$)", column):
                    plain = ANNOTATION.sub if column.startswith("annot") else lambda _, v: v
                    found += [(f"catalog.{view}.{column}", plain(r"\1", v)) for (v,) in
                              con.execute(f'select "{column}" from {view} where "{column}" is not null').fetchall()]
        for (t, e) in con.execute("select weak_label.target_utt, weak_label.evidence from massive").fetchall():
            found += [("catalog.massive.target_utt", t)] + [("catalog.massive.evidence", q)
                                                           for q in EVIDENCE_QUOTE.findall(e or "")]
    finally:
        con.close()
    return found


def check_privacy(out: Path, log: Log, min_users: int) -> None:
    users = users_per_text(log)
    texts = released_texts(out)
    short = [(where, text, users.get(normalize(text), 0)) for where, text in texts
             if users.get(normalize(text), 0) < min_users]
    assert short == [], f"released text said by fewer than {min_users} users: {short[:5]}"
    con = duckdb.connect(str(out / "catalog.duckdb"), read_only=True)
    try:
        views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
        sql = " ".join(r[0] for r in con.execute("select sql from duckdb_views() where not internal").fetchall())
    finally:
        con.close()
    assert "quarantine" not in views and "/quarantine/" not in sql  # private to operators
    for path in out.glob("quarantine/*.parquet"):
        assert {"user_key", "event_id"}.isdisjoint(pq.read_schema(path).names), path


# Config a deployment may well choose: releasing single-user text, a one-day window.
KNOBS = st.fixed_dictionaries({"min_users": st.sampled_from([2, 1, 3]), "window_days": st.sampled_from([28, 1])})


def assert_property(log: Log, engine: str, knobs: dict) -> dict:
    """Run the CLI twice on `log` into fresh folders, check both runs, and return the first manifest."""
    with tempfile.TemporaryDirectory(prefix="selflearn-prop-") as tmp:
        tmp = Path(tmp)
        logs_arg, rows_written = write_logs(log, tmp)
        config = tmp / "run.toml"
        # a fixed salt (both runs go to fresh folders and must key users alike); k = 1 needs its explicit switch
        config.write_text(f'[embedding]\nbackend = "hashing"\n[privacy]\nmin_users = {knobs["min_users"]}\n'
                          f'allow_k1 = {str(knobs["min_users"] == 1).lower()}\nuser_salt = "property-salt"\n'
                          f'[run]\nengine = "{engine}"\nwindow_days = {knobs["window_days"]}\n', encoding="utf-8")
        runs = []
        for name in ("first", "second"):
            code, stdout = run_cli(logs_arg, tmp / name, config)
            assert code == 0, stdout[-2000:]
            check_run(tmp / name, rows_written, stdout)
            check_privacy(tmp / name, log, knobs["min_users"])
            runs.append(tmp / name)
        first, second = (data_files(r) for r in runs)
        assert first.keys() == second.keys()
        assert [k for k in first if first[k] != second[k]] == []
        assert without_timings(runs[0]) == without_timings(runs[1])
        return json.loads((runs[0] / "manifest.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ the tests

@given(log=logs(), knobs=KNOBS)
@settings(CI)
def test_any_valid_log_runs_accounts_for_every_row_and_repeats_exactly(log, knobs):
    describe(assert_property(log, "duckdb", knobs))


@pytest.fixture(scope="module")
def spark_session():
    """One local Spark session for the module: the engine borrows it instead of starting a JVM per run."""
    pytest.importorskip("pyspark")
    session = local_spark_session("selflearn-properties", log_level="ERROR")
    yield session
    session.stop()


@pytest.mark.extended
@pytest.mark.spark
@pytest.mark.slow
@given(log=logs(), knobs=KNOBS)
@settings(CI, max_examples=max(3, EXAMPLES // 10))
def test_any_valid_log_runs_the_same_on_spark(spark_session, log, knobs):
    describe(assert_property(log, "spark", knobs))

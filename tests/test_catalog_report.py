"""The DuckDB catalog (views, example queries, prepared parameters) and the HTML report, rendered in headless
Chromium, over one run of the sample logs plus a partition of bad rows (so quarantine has something)."""
from __future__ import annotations

import json
import os
import shutil
import re
import struct
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn import catalog, pipeline, report
from selflearn.config import load_config

ROOT = Path(__file__).resolve().parent.parent
VIEWS = ("weak_labels", "rewrite_pairs", "graph_nodes", "graph_edges", "massive", "run_manifest", "funnel",
         "quarantine_summary", "label_history", "label_changes", "emerging_phrasings")


@pytest.fixture(scope="module")
def out(sample_logs, tmp_path_factory) -> Path:
    logs = tmp_path_factory.mktemp("logs") / "logs"
    shutil.copytree(sample_logs, logs)
    ts = pa.array([datetime(2026, 11, 3, 12, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"event_id": ["bad-1", "bad-2", "bad-3"], "user_id": ["u1", None, "u3"],
                             "locale": ["en-US", "en-US", "not a locale"], "ts": ts,
                             "utterance": ["turn on the lights", "hello", "hola"]}),
                   logs / "day=2026-11-03" / "part-bad.parquet")
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False})
    pipeline.run(str(logs), out, cfg, say=lambda m: None)
    return out


@pytest.fixture(scope="module")
def manifest(out) -> dict:
    return json.loads((out / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------------ catalog

def test_every_view_reads_its_output(out, manifest):
    con = catalog.connect(out)
    count = lambda view: con.execute(f"select count(*) from {view}").fetchall()[0][0]  # noqa: E731
    assert {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()} \
        >= set(VIEWS)
    counts = manifest["counts"]
    assert count("weak_labels") == count("massive") == counts["weak_labels"] > 0
    assert count("rewrite_pairs") == counts["released_rewrite_pairs"]
    assert count("graph_nodes") == counts["released_nodes"] and count("graph_edges") == counts["released_edges"]
    assert con.execute('select sum("rows") from quarantine_summary').fetchall()[0][0] \
        == manifest["rows"]["rows_quarantined"] == 2
    assert count("run_manifest") == 1
    funnel = con.execute("select * from funnel").df()
    assert funnel.to_dict(orient="records") == manifest["funnel"]
    assert con.execute("select config_fingerprint from run_manifest").fetchall()[0][0] == manifest["config_fingerprint"]


def test_the_quarantine_is_private_counts_only_in_catalog_and_report(out, manifest):
    """The quarantine holds text of any number of users: operators read the files, the catalog and the report
    show counts per locale and reason, and the files keep no user key, no event id, no long or raw text."""
    con = catalog.connect(out)
    views = {r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()}
    sql = " ".join(r[0] for r in con.execute("select sql from duckdb_views() where not internal").fetchall())
    summary = con.execute("select * from quarantine_summary").fetchall()
    con.close()
    assert "quarantine" not in views and "/quarantine/" not in sql
    assert summary == [("(invalid)", "invalid_locale", 1), ("en-US", "null_user_id", 1)]
    rows = pq.read_table(next((out / "quarantine").glob("*.parquet"))).to_pylist()
    assert {"user_key", "event_id"}.isdisjoint(rows[0]) and {r["row_number"] for r in rows} == {1, 2}
    page = (out / "report.html").read_text()
    assert "hola" not in page and "bad-2" not in page and "not a locale" not in page
    assert "invalid_locale" in page and "null_user_id" in page


@pytest.mark.parametrize("name", list(catalog.EXAMPLES))
def test_example_query(out, manifest, name):
    query = catalog.EXAMPLES[name]
    assert query.question.endswith("?") and set(query.params) <= {"locale", "limit"}
    everything = catalog.run_query(out, name, limit=1000)
    assert len(everything) > 0, f"{name} returned nothing on the sample run"
    locale = everything["locale"].iloc[0] if "locale" in everything else "en-US"
    one = catalog.run_query(out, name, locale=locale, limit=3)
    if "locale" in one and "locale" in query.params:
        assert set(one["locale"]) <= {locale}
    if name == "top_rewrite_pairs":  # the limit is per locale
        assert everything.groupby("locale").size().max() <= 1000 and one.groupby("locale").size().max() <= 3
    elif "limit" in query.params:
        assert len(one) <= 3


def test_example_queries_take_parameters_not_sql(out):
    con = catalog.connect(out)
    try:
        hostile = "en-US' or 1=1 --"
        assert len(catalog.run_query(con, "top_rewrite_pairs", locale=hostile)) == 0
        assert con.execute("select count(*) from weak_labels").fetchall()[0][0] > 0
    finally:
        con.close()
    with pytest.raises(ValueError):
        catalog.run_query(out, "top_rewrite_pairs", limit="3; drop view weak_labels")
    with pytest.raises(KeyError):
        catalog.run_query(out, "no_such_query")


def test_catalog_is_atomic_relative_and_rebuildable(out, tmp_path):
    reader = catalog.connect(out)
    path = catalog.write_catalog(out)  # rewriting while someone has the old one open
    assert reader.execute("select count(*) from weak_labels").fetchall()[0][0] > 0
    reader.close()
    assert path == (out / "catalog.duckdb").resolve() and not list(out.glob(".catalog.duckdb*"))

    cwd = os.getcwd()
    try:  # connect() resolves the relative view paths against the run folder, whatever the working directory
        os.chdir(tmp_path)
        assert len(catalog.run_query(out, "abstentions")) > 0
    finally:
        os.chdir(cwd)

    con = catalog.connect(out)
    sql = " ".join(r[0] for r in con.execute("select sql from duckdb_views() where not internal").fetchall())
    run_id = os.readlink(out / ".current").split("/")[-1]
    con.close()
    # every file path is relative to --out and names the catalog's own run folder, not the training/ links
    paths = re.findall(r"read_(?:parquet|json)\('([^']*)'", sql)
    assert len(paths) >= 5 and all(p.startswith(f".runs/{run_id}/") for p in paths), paths
    assert str(out.resolve()) not in sql and str(tmp_path) not in sql

    with pytest.raises(FileNotFoundError, match="manifest.json"):
        catalog.write_catalog(tmp_path / "empty")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's selflearn, from any working directory
    return subprocess.run([sys.executable, "-m", "selflearn", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_moved_and_copied_run_folder_answers_every_view_and_named_query(out, manifest, tmp_path):
    """mv, then cp -r (links copied as links) into a folder whose name holds glob characters and a comma; the
    original is gone each time, so nothing can be read from the place the catalog was written in."""
    first = tmp_path / "first"
    assert subprocess.run(["cp", "-a", str(out), str(first)]).returncode == 0
    moved = tmp_path / "moved"
    assert subprocess.run(["mv", str(first), str(moved)]).returncode == 0
    copied = tmp_path / "copied, run[1]"
    assert subprocess.run(["cp", "-r", str(moved), str(copied)]).returncode == 0
    assert (copied / ".current").is_symlink() and (copied / "catalog.duckdb").is_symlink()  # cp -r keeps links
    shutil.rmtree(moved)

    expected = {"weak_labels": manifest["counts"]["weak_labels"], "massive": manifest["counts"]["weak_labels"],
                "rewrite_pairs": manifest["counts"]["released_rewrite_pairs"],
                "graph_nodes": manifest["counts"]["released_nodes"], "graph_edges": manifest["counts"]["released_edges"],
                "run_manifest": 1, "funnel": len(manifest["funnel"]), "quarantine_summary": len(manifest["quarantine"]),
                "example_queries": len(catalog.EXAMPLES),
                "label_history": sum(manifest["lifecycle"]["states"].values()),
                "label_changes": sum(manifest["lifecycle"]["changes"].values()),
                "emerging_phrasings": sum(manifest["emerging"]["per_locale"].values())}
    cwd = os.getcwd()
    try:  # plain DuckDB, as a user without selflearn opens it: the python module, from inside the folder
        os.chdir(copied)
        con = duckdb.connect("catalog.duckdb", read_only=True)
        views = [r[0] for r in con.execute("select view_name from duckdb_views() where not internal").fetchall()]
        assert sorted(views) == sorted(expected)
        counts = {v: con.execute(f"select count(*) from {v}").fetchall()[0][0] for v in views}
        plain_answers = {q.name: con.execute(q.usage()).df() for q in catalog.EXAMPLES.values()}
        con.close()
    finally:
        os.chdir(cwd)
    assert counts == expected and counts["weak_labels"] > 0

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listing = _cli("catalog", "--out", str(copied), "--query", cwd=elsewhere)
    assert listing.returncode == 0 and [line.split()[0] for line in listing.stdout.splitlines()] == list(catalog.EXAMPLES)
    for name, plain in plain_answers.items():
        done = _cli("catalog", "--out", str(copied), "--query", name, cwd=elsewhere)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        if len(plain):  # the header, then one line per row the plain DuckDB macro returned
            assert lines[0].split() == list(plain.columns) and len(lines) == 1 + len(plain), (name, done.stdout)
        else:
            assert lines == [f"({name}: no rows)"]
    assert sum(len(p) > 0 for p in plain_answers.values()) >= len(catalog.EXAMPLES) - 1
    one = _cli("catalog", "--out", str(copied), "--query", "top_rewrite_pairs", "--locale", "de-DE", "--limit", "1",
               cwd=elsewhere)
    assert one.returncode == 0 and len(one.stdout.splitlines()) == 2 and " de-DE " in one.stdout
    unknown = _cli("catalog", "--out", str(copied), "--query", "top_pairs", cwd=elsewhere)
    assert unknown.returncode == 2 and "top_rewrite_pairs" in unknown.stdout
    assert unknown.stderr == "selflearn: no example query 'top_pairs'; choose one of the names above\n"
    assert not list(copied.rglob(".catalog.duckdb*"))  # answered without rewriting anything


def test_missing_outputs_read_as_empty_views(out, tmp_path):
    """A view over an output the run did not write (e.g. no quarantine file) is empty, with the right columns."""
    only_manifest = tmp_path / "run"
    only_manifest.mkdir()
    shutil.copy(out / "manifest.json", only_manifest)
    catalog.write_catalog(only_manifest)
    con, live = catalog.connect(only_manifest), catalog.connect(out)
    for view in VIEWS[:5]:
        assert con.execute(f"select count(*) from {view}").fetchall() == [(0,)]
        columns = lambda c: [d[0] for d in c.execute(f"select * from {view} limit 0").description]  # noqa: E731
        assert columns(con) == columns(live), view
    for name in catalog.EXAMPLES:
        catalog.run_query(con, name)
    con.close(), live.close()
    assert report.write_report(only_manifest).is_file()


# ------------------------------------------------------------------------------------------------ report

def test_report_is_self_contained(out, manifest):
    page = (out / "report.html").read_text()
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    assert 'src="http' not in page and 'href="http' not in page
    assert page.count("<svg") >= 5
    assert f'id="total-turns">{manifest["counts"]["turns_in_window"]:,}<' in page
    assert f'id="label-count">{manifest["counts"]["weak_labels"]:,}<' in page
    assert "No eval.json" in page


def test_report_includes_eval_when_present(out, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(out, run)
    metrics = {"tp": 9, "fp": 1, "fn": 2, "precision": 0.9, "recall": 0.818, "f1": 0.857}
    (run / "eval.json").write_text(json.dumps({"rephrase": {"by_locale": {"en-US": metrics}, "overall": metrics},
                                               "closed_loop": {"skipped": True, "note": "no nlu_test"}}))
    page = report.write_report(run).read_text()
    assert "Rephrase detection" in page and "0.857" in page and "no nlu_test" in page
    assert "rephrase F1 (eval) | 0.857" in report.markdown_summary(
        json.loads((run / "manifest.json").read_text()), json.loads((run / "eval.json").read_text()))


def test_report_opens_with_a_verdict_per_locale(out, manifest):
    page = (out / "report.html").read_text()
    panel = page.split('<section id="decision">', 1)[1].split("</section>", 1)[0]
    assert page.index('<section id="decision">') < page.index('class="cards"')  # first thing under the title
    for locale, n in manifest["counts"]["labels_per_locale"].items():
        assert f'<td class="name">{locale}</td><td class="n">{n:,}</td>' in panel
    assert ("use: " in panel or "do not use: " in panel) and 'id="changes">Since the previous run' in panel


def test_report_numbers_timings_and_names_read_cleanly(out, manifest, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(out, run)
    # a missing count beside integers made pandas store the column as floats, printed as 9.000
    full = {"tp": 9, "fp": 1, "fn": 2, "precision": 0.9, "recall": 0.818, "f1": 0.857}
    (run / "eval.json").write_text(json.dumps({"rephrase": {"by_locale": {"en-US": full, "de-DE": {
        "tp": None, "fp": 4, "fn": 0, "precision": None, "recall": None, "f1": None}}, "overall": full}}))
    page = report.write_report(run).read_text()
    rephrase = page.split("<h3>Rephrase detection</h3>", 1)[1].split("</table>", 1)[0]
    assert '<td class="n">9</td>' in rephrase and "9.000" not in rephrase and "4.000" not in rephrase
    timings = page.split("<h2>Timings</h2>", 1)[1].split("</table>", 1)[0]
    stages = [c.split("<", 1)[0] for c in timings.split('<td class="name">')[1:]]
    assert stages == [*pipeline.STAGES, "total"]  # run order, export included, then the total
    total = sum(manifest["timings_s"].values())
    assert f'<td class="name">total</td><td class="n">{total:.3f}</td>' in timings
    assert "overflow-wrap:anywhere" not in page  # what broke intent names mid-word
    if manifest["counts"]["weak_labels"]:
        assert '<td class="name">' + report._label_sample(
            report._read_folder(run / "training" / "parquet"))["label"].iloc[0] + "</td>" in page


def _chromium() -> str | None:
    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _png_pixels(data: bytes) -> np.ndarray:
    """Decode an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes) into an (h, w, channels) array."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + length])
        elif kind == b"IDAT":
            chunks.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    bpp = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), np.uint8)
    prev = np.zeros(width * bpp, np.uint8)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:]
        if kind == 0:
            row = line
        elif kind == 1:  # Sub: a running sum per channel
            row = (line.reshape(width, bpp).astype(np.int64).cumsum(axis=0) & 255).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            row = line + prev
        else:  # Average and Paeth depend on the reconstructed byte to the left: one byte at a time
            cur, up, filt = [0] * (width * bpp), prev.tolist(), line.tolist()
            for x in range(width * bpp):
                a = cur[x - bpp] if x >= bpp else 0
                b, c = up[x], (up[x - bpp] if x >= bpp else 0)
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa_, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa_ <= pb and pa_ <= pc else b if pb <= pc else c
                cur[x] = (filt[x] + pred) & 255
            row = np.array(cur, np.uint8)
        out[y] = prev = row
    return out.reshape(height, width, bpp)


def test_report_renders_in_headless_chromium(out, manifest, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); cannot render report.html")
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}"]
    url = (out / "report.html").resolve().as_uri()
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,2000", url],
                   capture_output=True, timeout=120, check=True)
    pixels = _png_pixels(shot.read_bytes())[..., :3]
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 20, "the screenshot is (nearly) blank"
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 20  # text, bars and tables, not one flat colour
    # the decision panel's frame (2 px, #1d2430) is the only long dark line on the page: above the fold
    dark = (np.abs(pixels.astype(int) - [0x1d, 0x24, 0x30]).max(axis=2) < 40).sum(axis=1) > 600
    assert dark[:700].any(), "no decision panel in the first 700 px of the page"

    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120, check=True).stdout
    assert f'id="total-turns">{manifest["counts"]["turns_in_window"]:,}</b>' in dom
    assert f'id="label-count">{manifest["counts"]["weak_labels"]:,}</b>' in dom
    assert dom.count("<svg") >= 5 and "Sample of emitted labels" in dom
    assert 'id="decision"' in dom and dom.index('id="decision"') < dom.index('class="cards"')

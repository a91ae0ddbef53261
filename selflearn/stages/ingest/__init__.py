"""Ingest: check raw assistant logs against the log contract (v1) and write curated turns, losing nothing.

Every input row ends in exactly one place: kept (curated turns), quarantined with a reason code, or counted
as a duplicate of an event id already kept. Per file: rows_in == rows_kept + rows_quarantined + duplicates.

Outputs under out_dir (paths from selflearn.layout.RunLayout; file_key = short sha1 of the file's name
relative to the logs root):
    curated/turns/<file_key>.parquet   TURNS_SCHEMA, one per accounted input file (possibly empty)
    quarantine/<file_key>.parquet      QUARANTINE_SCHEMA, only for files with quarantined rows
    curated/_ingested.json             state: relative name -> fingerprint and account (incremental runs)

Incremental: an unchanged file (same size and sha256) is skipped; a changed one is re-ingested and its
outputs replaced. Outputs of files no longer among the inputs stay, and their event ids still count for
dedup: logs are append-only date partitions, so yesterday's folder may be gone from today's input.
Raw user ids are never written: user_key is a salted hash (selflearn.privacy).

One module per concern: discovery (which files), ledger (what each file gave; incremental skips), casting
(batches cast to the contract), utf8 (repair of invalid strings), rules and checks (reason codes, row checks,
dedup), quarantine (the private rejected rows and their summary), files (one file through them). This module
runs them file after file; on_engine runs them in an engine's workers (Spark) and dedups across files in SQL.
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from selflearn import io, privacy
from selflearn.config import Config
from selflearn.engines.base import Engine
from selflearn.layout import RunLayout
from selflearn.stages.base import Context, Stage
from selflearn.stages.ingest.checks import TextCache
from selflearn.stages.ingest.discovery import discover_inputs, file_key, find_log_files
from selflearn.stages.ingest.files import ingest_file
from selflearn.stages.ingest.ledger import (
    COUNTS,
    INGEST_VERSION,
    EventIds,
    FileAccount,
    IngestReport,
    account_fields,
    load_state,
    settings_fingerprint,
)
from selflearn.stages.ingest.on_engine import curate_on_engine
from selflearn.stages.ingest.quarantine import quarantine_summary
from selflearn.stages.ingest.rules import REASONS, ROW_REASONS, IngestError, normalize_locale

__all__ = ["COUNTS", "INGEST", "INGEST_VERSION", "REASONS", "ROW_REASONS", "FileAccount", "IngestError",
           "IngestReport", "discover_inputs", "file_key", "ingest", "normalize_locale", "quarantine_summary",
           "settings_fingerprint"]

log = logging.getLogger(__name__)


STATE_EVERY_FILES = 256  # the state file is rewritten after this many files (and at the end), not after each


def ingest(logs: str, out_dir: Path, config: Config, progress: bool = False,
           engine: Engine | None = None) -> IngestReport:
    """Validate and curate every input file of `logs` into out_dir; see the module docstring for the layout.
    With an engine the files are read and curated by its workers (on_engine); without one, here, one file after
    the other. Both give the same curated rows, quarantine and accounts."""
    root, files = find_log_files(logs)
    out_dir = Path(out_dir)
    config = privacy.with_salt(config, out_dir, say=log.warning)  # a no-op when PipelineRun resolved it
    layout = RunLayout(out_dir)
    turns_dir, state_path = layout.curated_turns, layout.ingest_state
    previous = load_state(state_path)
    settings = settings_fingerprint(config)
    changed_settings = previous["settings"] != settings
    if changed_settings and previous["files"]:
        log.warning("ingest settings changed since the last run (salt, max_utterance_chars, pii_patterns or "
                    "version): re-ingesting every input file; outputs of files no longer in the input keep the "
                    "old settings")
    recorded = {} if changed_settings else previous["files"]
    state = {"settings": settings, "files": dict(previous["files"])}

    names = [io.relative_name(p, root) for p in files]
    accounts: dict[str, FileAccount] = {}
    todo: list[tuple[Path, str]] = []
    for path, name in zip(files, names, strict=True):  # pass 1: what is unchanged (a cheap hash beats re-ingesting)
        old = recorded.get(name)
        if old and layout.curated_turns_file(file_key(name)).exists() and not (
                old["status"] == "quarantined_file" and not config.ingest.quarantine_bad_files):
            try:
                fp = io.fingerprint_file(path)
            except OSError:
                fp = None
            if fp == old["fingerprint"]:
                accounts[name] = FileAccount(**{**account_fields(old), "status": "skipped_unchanged"})
                continue
        todo.append((path, name))

    if todo and engine is not None:
        done, error = curate_on_engine(engine, todo, layout, config)
        for account in done:
            account.check_balanced()
            accounts[account.source_file] = account
            state["files"][account.source_file] = {**asdict(account), "file_key": file_key(account.source_file)}
        io.atomic_write_json(state, state_path)
        if error is not None:
            raise error
    elif todo:
        replaced = {layout.curated_turns_file(file_key(name)).name for _, name in todo}
        seen = EventIds(p for p in sorted(turns_dir.glob("*.parquet")) if p.name not in replaced)
        texts = TextCache(config.ingest.max_utterance_chars, config.privacy.pii_patterns)
        try:
            for done, (path, name) in enumerate(tqdm(todo, desc="ingest", unit="file", disable=not progress), 1):
                account = ingest_file(path, name, layout, config, seen, texts)
                account.check_balanced()
                accounts[name] = account
                state["files"][name] = {**asdict(account), "file_key": file_key(name)}
                # rewriting (and fsyncing) the whole state after every file made many small files slow (1,849
                # files: 37 s). A file done but not recorded when the process dies is ingested again next time,
                # to the same outputs.
                if done % STATE_EVERY_FILES == 0:
                    io.atomic_write_json(state, state_path)
        finally:  # also when a bad file stops the run: the files done before it stay done
            io.atomic_write_json(state, state_path)
    elif state != previous or not state_path.exists():
        io.atomic_write_json(state, state_path)

    report = IngestReport([accounts[n] for n in names], sorted(turns_dir.glob("*.parquet")))
    report.totals()
    return report


def _ingest_stage(ctx: Context, logs: str) -> dict:
    # An engine whose batches run in this process (DuckDB) would only stage every file twice: stream them here.
    engine = None if ctx.engine.batches_in_process else ctx.engine
    return {"ingest_report": ingest(logs, ctx.layout.out, ctx.cfg, progress=ctx.cfg.run.progress, engine=engine)}


# logs (a path, folder or glob) -> ingest_report; curated turns, quarantine and the ledger under out/
INGEST = Stage("ingest", inputs=("logs",), outputs=("ingest_report",), run=_ingest_stage)

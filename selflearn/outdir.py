"""One output folder (--out), many runs over time: one run at a time, and readers never see a half-published run.

    <out>/.selflearn.lock          flock()ed by the run writing here; holds its pid, host and start time
    <out>/.selflearn-salt          the generated user-key salt (selflearn.privacy), when none is configured
    <out>/curated/ quarantine/ cache/   state kept across runs (ingest ledger, curated turns, embeddings)
    <out>/.runs/<run-id>/          one run's outputs: staged here while the run works, never moved afterwards
    <out>/.current                 symlink -> .runs/<run-id> of the last complete run (marker _COMPLETE inside)
    <out>/training, history/, rephrases/, graph/, work/, manifest.json, report.html, catalog.duckdb
                                   symlinks -> .current/<name>, so the documented paths always work

A run writes everything it publishes into a fresh .runs/<run-id>/, writes the completion marker last and then
switches .current with one rename(2): whoever opens <out>/training/parquet/train.parquet gets the old run's file
or the new run's, and the catalog's views name the files of their own run folder, so a catalog opened before
the switch keeps reading one consistent run (the previous run folder is kept for such readers; older ones are
removed). A run killed at any point leaves the previous run published and untouched; its staging folder is
removed by the next run. State folders are not staged: ingest and the embedding cache write each file
atomically and are safe to resume (docs/OPERATIONS.md).
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Callable

from selflearn.layout import PUBLISHED

LOCK_FILE = ".selflearn.lock"
RUNS_DIR = ".runs"
CURRENT = ".current"
COMPLETE = "_COMPLETE"
# temporary names the writers use, with the writer's pid: io's `.<name>.<pid>.tmp` files, the Spark engine's
# `.<name>.<pid>.spark-tmp` folders and the embedding cache's `.shard-<ns>-<pid>-<hex>.npz.tmp`
_TEMP = re.compile(r"^\.(?:.+\.(\d+)\.(?:tmp|spark-tmp)|shard-\d+-(\d+)-[0-9a-f]+\.npz\.tmp)$")
_RUN_ID = re.compile(r"^\d{8}T\d{6}\d*Z-(\d+)$")


class OutputBusyError(RuntimeError):
    """Another run holds the output folder."""


# ------------------------------------------------------------------------------------------------ the lock

class OutputLock:
    """An exclusive flock() on <out>/.selflearn.lock, held for the whole run. The kernel drops it when the
    holder exits or is killed, so a lock can never be left behind by a dead process; the file's text (pid,
    host, start) only explains who holds it, and is emptied on a clean release."""

    def __init__(self, out: Path, say: Callable[[str], None] = print):
        self.path = Path(out) / LOCK_FILE
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read(self.fd)
            os.close(self.fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise OutputBusyError(
                f"--out {out} is in use by another selflearn run ({holder or 'holder unknown'}); "
                "wait for it to finish, or give this run another --out") from None
        previous = _read(self.fd)
        if previous:  # the last holder did not release it: it was killed (the kernel released the flock)
            say(f"note: taking over the lock of an earlier run that did not finish ({previous}); its temporary "
                "files and staging folder are removed")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"pid {os.getpid()} on host {socket.gethostname()} since "
                           f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}".encode(), 0)
        os.fsync(self.fd)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)  # empty = released cleanly
        finally:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def _read(fd: int) -> str:
    return os.pread(fd, 512, 0).decode("utf-8", "replace").strip()


# ------------------------------------------------------------------------------------------------ sweeping

def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def sweep(out: Path) -> int:
    """Remove temporary files and folders of dead processes, and run folders that are neither published nor
    the one before (a killed run's staging folder). Call it holding the lock: a live writer's files stay."""
    out = Path(out)
    removed = 0
    for dirpath, dirnames, filenames in os.walk(out):
        for name in [*filenames, *dirnames]:
            m = _TEMP.match(name)
            if m and not _alive(int(m.group(1) or m.group(2))):
                path = Path(dirpath, name)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed += 1
        dirnames[:] = [d for d in dirnames if not _TEMP.match(d)]
    keep = _kept_runs(out)
    for run_dir in sorted((out / RUNS_DIR).glob("*")):
        if run_dir.name.startswith("."):  # the .previous link (temporary names were handled above)
            continue
        m = _RUN_ID.match(run_dir.name)
        if run_dir.name not in keep and not (m and _alive(int(m.group(1)))):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed += 1
    return removed


def _kept_runs(out: Path) -> set[str]:
    """The published run and the one published before it (a reader may still hold its catalog open)."""
    keep = set()
    for link in (out / CURRENT, out / RUNS_DIR / ".previous"):
        if link.is_symlink():
            keep.add(Path(os.readlink(link)).name)
    return keep


# ------------------------------------------------------------------------------------------------ staging and switch

def new_run_dir(out: Path) -> Path:
    """A fresh, empty staging folder for this run's outputs."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 1_000_000_000:09d}Z"
    run_dir = Path(out) / RUNS_DIR / f"{stamp}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    return run_dir


def publish(out: Path, run_dir: Path) -> None:
    """Make run_dir the published run: completion marker, then one atomic rename of the .current link."""
    out, run_dir = Path(out), Path(run_dir)
    missing = [name for name in PUBLISHED if not (run_dir / name).exists()]
    if missing:
        raise FileNotFoundError(f"run folder {run_dir} lacks {', '.join(missing)}: not publishing it")
    (run_dir / COMPLETE).write_text(run_dir.name + "\n", encoding="utf-8")
    _fsync_tree(run_dir)
    current = out / CURRENT
    if current.is_symlink():  # remembered so the next sweep keeps it for readers of the old catalog
        _replace_link(out / RUNS_DIR / ".previous", Path(os.readlink(current)).name)
    _replace_link(current, f"{RUNS_DIR}/{run_dir.name}")
    for name in PUBLISHED:
        link = out / name
        if link.is_symlink():
            continue
        if link.is_dir():  # an output folder from before runs were staged: replaced once
            shutil.rmtree(link)
        else:
            link.unlink(missing_ok=True)
        _replace_link(link, f"{CURRENT}/{name}")
    _fsync_dir(out)
    sweep(out)


def published_dir(out: str | Path) -> Path:
    """The folder holding the published run's outputs: the target of <out>/.current, or <out> itself for a
    folder written before runs were staged."""
    out = Path(out)
    current = out / CURRENT
    return Path(os.path.realpath(current)) if current.is_symlink() else out


def is_complete(run_dir: Path) -> bool:
    return (Path(run_dir) / COMPLETE).is_file()


def _replace_link(link: Path, target: str) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2): atomic, readers see the old link or the new one


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Data files were fsynced as written; make the folder entries durable before the switch points at them."""
    for dirpath, _, _ in os.walk(root):
        _fsync_dir(Path(dirpath))

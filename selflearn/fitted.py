"""Model weights fitted by benchmarks/calibrate.py, shipped as JSON inside the package, keyed by embedder."""
from __future__ import annotations

import json
from importlib import resources


def fitted_weights(resource_name: str, embedder_name: str, fallback: dict[str, float]) -> dict[str, float]:
    """The weights fitted for `embedder_name` in selflearn/<resource_name>, else `fallback` (hand-set)."""
    # importlib.resources also reads inside a zip, which is how Spark executors import the package
    resource = resources.files("selflearn").joinpath(resource_name)
    if resource.is_file():
        fitted = json.loads(resource.read_text(encoding="utf-8"))
        if embedder_name in fitted:
            return fitted[embedder_name]["weights"]
    return fallback

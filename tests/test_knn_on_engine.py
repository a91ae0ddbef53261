"""Variants with the vectors left on the engine (the Spark path, issue 17 item 3), here on DuckDB: the searches
and sampled cosines run in `map_batches` and give what the in-process path gives, and no node vector is ever
collected into this process. tests/test_spark_engine.py runs the same check on Spark local[2]."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from selflearn.config import Config
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.layout import RunLayout
from selflearn.stages.base import Context
from selflearn.stages.rephrase import VectorLookup
from selflearn.stages.variants import VARIANTS

LOCALES = ["en-US", "de-DE", "fr-FR", "hi-IN"]


def window(n: int = 900, dim: int = 48, seed: int = 3):
    """Nodes of four locales (one small, so it is searched abroad), some failing, some reliable, with texts
    in clusters (neighbours above the noise floors) and their unit vectors."""
    rng = np.random.default_rng(seed)
    locale = rng.choice(LOCALES, n, p=[0.45, 0.3, 0.2, 0.05])
    centres = rng.normal(size=(30, dim))
    vectors = centres[rng.integers(0, 30, n)] + 0.35 * rng.normal(size=(n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    texts = [f"text {i}" for i in range(n)]
    failing = rng.random(n) < 0.3
    nodes = pd.DataFrame({
        "node_id": [f"{loc}|{t}" for loc, t in zip(locale, texts)], "locale": locale, "utt_norm": texts,
        "defect_rate": np.where(failing, 0.9, 0.02), "n_users": rng.integers(1, 6, n),
        "n_events": rng.integers(1, 40, n), "top_intent": rng.choice(["alarm_set", "play_music", "weather"], n),
        "top_intent_share": np.where(rng.random(n) < 0.9, 1.0, 0.5)})
    edges = pd.DataFrame({"locale": pd.Series(dtype=str), "utt_norm_a": pd.Series(dtype=str),
                          "soft_users": pd.Series(dtype=float)})
    return nodes, edges, texts, vectors


class CollectsRecorded(DuckDBEngine):
    """DuckDB that remembers the schema and size of everything collected into this process."""

    def __init__(self):
        super().__init__()
        self.collected: list[tuple[pa.Schema, int]] = []

    def to_arrow(self, data):
        table = super().to_arrow(data)
        self.collected.append((table.schema, table.num_rows))
        return table


def holds_vectors(schema: pa.Schema) -> bool:
    return any(pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type) for f in schema)


def run_variants(engine, tmp_path, text_vectors, nodes, edges, cfg: Config) -> dict:
    ctx = Context(engine=engine, cfg=cfg, layout=RunLayout(tmp_path), say=lambda _: None)
    return VARIANTS(ctx, {"utterance_stats": nodes, "rephrase_edges": edges, "text_vectors": text_vectors})


@pytest.mark.parametrize("transfer", [True, False])
def test_variants_on_the_engine_equal_the_in_process_path_and_collect_no_vector(tmp_path, transfer):
    nodes, edges, texts, vectors = window()
    cfg = Config()
    cfg = cfg.model_copy(update={"labels": cfg.labels.model_copy(update={"transfer": transfer})})
    expected = run_variants(DuckDBEngine(), tmp_path / "in-process", VectorLookup(texts, vectors), nodes, edges, cfg)
    engine = CollectsRecorded()
    relation = pa.table({"utt_norm": texts, "vector": pa.array(list(vectors), pa.list_(pa.float32()))})
    got = run_variants(engine, tmp_path / "engine", relation, nodes, edges, cfg)

    assert len(expected["variant_edges"]) > 50 and len(expected["reliable_neighbours"]) > 100
    assert set(expected["variant_edges"]["kind"]) == {"cross_user", "cross_lingual"}
    assert (len(expected["reliable_neighbours_abroad"]) > 0) == transfer
    for name in ("variant_edges", "reliable_neighbours", "reliable_neighbours_abroad"):
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=True, obj=name)
    assert got["is_failing"].equals(expected["is_failing"])
    assert got["chance_similarity"] == expected["chance_similarity"] and len(got["chance_similarity"]) == 5
    assert got["knn_index"] == expected["knn_index"] == ["flat-cpu"]

    # the driver received the searches' neighbour rows and the sampled cosines, never a vector
    assert engine.collected and not any(holds_vectors(schema) for schema, _ in engine.collected)
    assert not (tmp_path / "engine" / "work" / "knn_targets.parquet").exists(), "the targets' vectors stayed in the run"
    # what it did receive grows with the failing texts x k (plus a few thousand sampled pairs), not with nodes x dim
    failing = int((nodes["defect_rate"] >= cfg.labels.failing_defect_rate).sum())   # at any number of users
    knn = [rows for schema, rows in engine.collected if "neighbour" in schema.names]
    assert len(knn) == 1 and knn[0] <= failing * (4 * cfg.variants.k + cfg.variants.neighbourhood_k + 1
                                                   + cfg.variants.transfer_k)

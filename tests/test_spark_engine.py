"""Spark engine parity: every shared SQL statement, the batch scorer, a whole run and spark-submit give what
DuckDB gives. One local[2] SparkSession for the module (starting the JVM takes seconds)."""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile
from functools import partial
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selflearn import contract
from selflearn.config import Config
from selflearn.embedders import vector_store
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.stages import friction, rephrase
from conftest import ROOT, local_spark_session, make_turns

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.extended]
pyspark = pytest.importorskip("pyspark")

TOL = 1e-9

# Inactivity-gap and explicit sessions, rephrases (some fixing, some not), slots null / empty / filled,
# five scripts, users who share texts so aggregates have more than one user.
TURNS = [
    # en-US: alarm misread as music, rephrased; second user does the same; a third says it right away
    {"user": "u1", "t": 0, "utt": "Wake me up at seven", "intent": "play_music", "conf": 0.4, "status": "success"},
    {"user": "u1", "t": 6, "utt": "set an alarm for seven", "intent": "alarm_set", "conf": 0.9, "status": "success",
     "slots": [{"name": "time", "value": "seven"}]},
    {"user": "u2", "t": 3, "utt": "wake me up at seven!", "intent": "play_music", "barge": True},
    {"user": "u2", "t": 12, "utt": "set an alarm for seven", "intent": "alarm_set", "conf": 0.95,
     "slots": [{"name": "time", "value": "seven"}], "status": "success"},
    {"user": "u3", "t": 50, "utt": "set an alarm for seven", "intent": "alarm_set", "conf": 0.97, "slots": None},
    {"user": "u3", "t": 4000, "utt": "what's the weather", "intent": "weather_query", "slots": [],
     "status": "success"},
    # de-DE with explicit session ids
    {"user": "u4", "t": 0, "utt": "Wecker auf sieben", "intent": None, "status": "unhandled", "session": "s1",
     "locale": "de-DE"},
    {"user": "u4", "t": 8, "utt": "stell einen Wecker für sieben Uhr", "intent": "alarm_set", "session": "s1",
     "locale": "de-DE", "slots": [{"name": "time", "value": "sieben uhr"}], "conf": 0.8},
    {"user": "u5", "t": 1, "utt": "wecker auf sieben", "intent": None, "status": "error", "session": "x",
     "locale": "de-DE"},
    {"user": "u5", "t": 9, "utt": "stell einen wecker für sieben uhr", "intent": "alarm_set", "session": "x",
     "locale": "de-DE", "slots": [{"name": "time", "value": "sieben uhr"}]},
    # ja-JP, hi-IN, fr-FR
    {"user": "u6", "t": 0, "utt": "アラームを七時に", "intent": "play_music", "locale": "ja-JP", "conf": 0.2},
    {"user": "u6", "t": 5, "utt": "七時にアラームをセット", "intent": "alarm_set", "locale": "ja-JP",
     "slots": [{"name": "time", "value": "七時"}]},
    {"user": "u7", "t": 0, "utt": "アラームを七時に", "intent": "play_music", "locale": "ja-JP", "barge": True},
    {"user": "u7", "t": 4, "utt": "七時にアラームをセット", "intent": "alarm_set", "locale": "ja-JP", "slots": []},
    {"user": "u8", "t": 0, "utt": "मौसम कैसा है", "intent": "weather_query", "locale": "hi-IN", "status": "success"},
    {"user": "u8", "t": 30, "utt": "बत्ती बंद करो", "intent": "iot_hue_lighton", "locale": "hi-IN"},
    {"user": "u8", "t": 35, "utt": "बत्ती बंद करो", "intent": "iot_hue_lightoff", "locale": "hi-IN"},
    {"user": "u9", "t": 0, "utt": "réveille moi à sept heures", "intent": "weather_query", "conf": 0.3,
     "locale": "fr-FR"},
    {"user": "u9", "t": 5, "utt": "mets un réveil à sept heures", "intent": "alarm_set", "conf": 0.9,
     "status": "success", "locale": "fr-FR", "slots": [{"name": "time", "value": "sept heures"}]},
    {"user": "u9", "t": 400, "utt": "mets un réveil à sept heures", "intent": "alarm_set", "locale": "fr-FR"},
]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def spark():
    session = local_spark_session("selflearn-tests")
    yield session
    session.stop()


def test_an_embedder_in_a_spark_task_takes_the_tasks_cores_not_the_hosts(spark):
    """A task runs in its own Python worker, one task per core: an embedder in each worker that took every core of
    the host would oversubscribe it and hold one model session per core (e5-small-onnx) in every worker."""
    from selflearn.embedders.base import available_cores

    in_a_task = spark.sparkContext.parallelize([0], 1).map(lambda _: available_cores()).collect()
    assert in_a_task == [int(spark.conf.get("spark.task.cpus", "1"))]
    assert available_cores() == len(os.sched_getaffinity(0))   # the driver: its process's cores


@pytest.fixture(scope="module")
def engines(spark):
    from selflearn.engines.spark_engine import SparkEngine

    duck, sp = DuckDBEngine(), SparkEngine(spark=spark)
    yield duck, sp
    duck.close()
    sp.close()


@pytest.fixture(scope="module")
def stage_data(engines):
    """The inputs of every statement on both engines: turns, turn_friction, scored pairs, targets."""
    duck, sp = engines
    cfg = Config()
    turns = make_turns(TURNS)
    texts = sorted(set(turns.column("utt_norm").to_pylist()))
    from selflearn.embedders.hashing import HashingEmbedder

    embedder = HashingEmbedder()
    scorer = partial(rephrase.score_pairs, vectors=rephrase.VectorLookup(texts, embedder.encode(texts)),
                     embedder_name=embedder.name, threshold=cfg.rephrase.threshold)
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    vectors = embedder.encode(texts)
    every = vector_store.vectors_table(embedder.name, keys, vectors)
    cached, shard = every.slice(0, len(texts) // 2), every.slice(len(texts) // 3)
    text_vectors = pa.table({"utt_norm": texts, "vector": every.column("vector")})
    data = {}
    for engine in (duck, sp):
        d = {"turns": engine.from_arrow(turns)}
        d["turn_friction"] = friction.turn_friction(engine, d["turns"], cfg)
        d["pairs"] = friction.turn_pairs(engine, d["turn_friction"], cfg)
        d["scored_pairs"] = engine.map_batches(d["pairs"], scorer, contract.REPHRASE_PAIRS_SCHEMA)
        days = sorted(set(turns.column("day").to_pylist()))
        d["days"] = engine.from_arrow(pa.table({"day": days}))
        d["day_rows"] = d["turn_friction"]
        # decay weights that differ per day, so that the weighted shares are compared too
        d["day_weights"] = engine.from_arrow(pa.table({"day": days, "weight": [0.5 ** i for i in range(len(days))]}))
        d["node_days"] = engine.sql("node_days", {k: d[k] for k in ("turn_friction", "scored_pairs")})
        d["edge_days"] = engine.sql("edge_days", {"scored_pairs": d["scored_pairs"]})
        d["locale_days"] = engine.sql("locale_days", {k: d[k] for k in ("turn_friction", "scored_pairs")})
        d["node_intents"] = engine.sql("node_intents", {k: d[k] for k in ("node_days", "day_weights")})
        d["targets"] = engine.from_arrow(pa.table({
            "locale": ["en-US", "de-DE", "ja-JP", "fr-FR"],
            "utt_norm": ["set an alarm for seven", "stell einen wecker für sieben uhr", "七時にアラームをセット",
                         "mets un réveil à sept heures"],
            "intent": ["alarm_set"] * 4}))
        # ingest's dedup across files: ranks that differ from the names' order, ids kept by an earlier run
        d["staged_turns"] = engine.from_arrow(pa.table({"source_file": ["b", "b", "a", "a", "c", "c"],
                                                        "event_id": ["e1", "e2", "e2", "e3", "e1", "e4"]}))
        d["file_order"] = engine.from_arrow(pa.table({"source_file": ["b", "a", "c"], "source_rank": [0, 1, 2]}))
        d["curated_ids"] = engine.from_arrow(pa.table({"event_id": ["e3", "e3", "e9"]}))
        # the vector cache as a dataset: half the texts cached, one of them twice (two runs appended it)
        d["day_texts"] = engine.sql("day_texts", {"turn_friction": d["turn_friction"]})
        d["window_texts"] = engine.sql("unique_texts", {"day_texts": d["day_texts"]})
        d["cached_vectors"] = engine.from_arrow(pa.concat_tables([cached, cached.slice(0, 1)]))
        d["shard_vectors"] = engine.from_arrow(shard)
        d["turn_pairs"] = d["pairs"]
        d["text_vectors"] = engine.from_arrow(text_vectors)
        d["node_texts"] = engine.from_arrow(pa.table({"node_row": pa.array([2, 0, 1], pa.int64()),
                                                      "utt_norm": [texts[3], texts[0], texts[3]]}))
        # variants on the engine: drawn pairs and kNN queries joined to node vectors (stages/knn_on_engine.py)
        d["node_vectors"] = engine.sql("node_vectors", {k: d[k] for k in ("node_texts", "text_vectors")})
        d["node_pairs"] = engine.from_arrow(pa.table({"pair": pa.array([2, 0, 1], pa.int64()),
                                                      "row_a": pa.array([0, 1, 2], pa.int64()),
                                                      "row_b": pa.array([2, 2, 0], pa.int64())}))
        d["knn_queries"] = engine.from_arrow(pa.table({"search": pa.array([1, 0, 0], pa.int32()),
                                                       "query": pa.array([0, 1, 0], pa.int64()),
                                                       "node_row": pa.array([2, 0, 1], pa.int64())}))
        data[engine.name] = d
    return data


# ---------------------------------------------------------------------- comparison helpers
def canonical_type(t: pa.DataType) -> pa.DataType:
    """Type up to list item names and nullability (DuckDB says 'l', Spark 'element', pyarrow 'item')."""
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(canonical_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([(f.name, canonical_type(f.type)) for f in t])
    return t


def canonical_schema(schema: pa.Schema) -> list[tuple[str, pa.DataType]]:
    return [(f.name, canonical_type(f.type)) for f in schema]


def assert_same_value(a, b, where: str) -> None:
    if isinstance(a, float) and isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_rows(expected: list[dict], got: list[dict], what: str) -> None:
    assert len(expected) == len(got), f"{what}: {len(expected)} rows on DuckDB, {len(got)} on Spark"
    for i, (a, b) in enumerate(zip(expected, got)):
        assert a.keys() == b.keys(), what
        for key in a:
            assert_same_value(a[key], b[key], f"{what} row {i} column {key}")


def assert_same_table(expected: pa.Table, got: pa.Table, what: str, sort_by: list[str] | None = None) -> None:
    assert canonical_schema(expected.schema) == canonical_schema(got.schema), what
    if sort_by:
        expected, got = expected.sort_by([(k, "ascending") for k in sort_by]), got.sort_by(
            [(k, "ascending") for k in sort_by])
    assert_same_rows(expected.to_pylist(), got.to_pylist(), what)


# ---------------------------------------------------------------------- 1. statement parity
STATEMENTS = {
    # statement: (inputs, keys to sort by when the statement has no ORDER BY)
    "turns_of_days": (["turns", "days"], ["event_id"]),
    "rows_of_days": (["day_rows", "days"], ["event_id"]),
    "turn_friction": (["turns"], None),
    "turn_pairs": (["turn_friction"], None),
    "day_texts": (["turn_friction"], None),
    "unique_texts": (["day_texts"], None),
    "node_days": (["turn_friction", "scored_pairs"], None),
    "node_intents": (["node_days", "day_weights"], None),
    "graph_nodes": (["node_days", "node_intents"], None),
    "edge_days": (["scored_pairs"], None),
    "rephrase_edges": (["edge_days", "day_weights"], None),
    "target_slots": (["day_texts", "targets"], None),
    "locale_days": (["turn_friction", "scored_pairs"], None),
    "locale_counts": (["locale_days"], None),
    "text_days": (["node_days"], None),
    "ingest_duplicates": (["staged_turns", "file_order", "curated_ids"], None),
    "new_texts": (["window_texts", "cached_vectors"], None),
    "window_vectors": (["window_texts", "cached_vectors"], None),
    "new_vectors": (["shard_vectors", "cached_vectors"], None),
    "pair_vectors": (["turn_pairs", "text_vectors"], None),
    "node_vectors": (["node_texts", "text_vectors"], None),
    "node_pair_vectors": (["node_pairs", "node_vectors"], None),
    "knn_query_vectors": (["knn_queries", "node_vectors"], None),
}


def params_for(statement: str) -> dict[str, float]:
    params = friction.sql_params(Config())
    return {k: v for k, v in params.items() if "{{" + k in (ROOT / "sql" / f"{statement}.sql").read_text()
            .replace("{{ ", "{{")}


# sql/views.sql is the DuckDB catalog written after a run (selflearn/catalog.py), not a stage statement; the
# connected-component statements run as a loop and are checked against networkx on both engines in
# tests/test_graph_on_engine.py, as node_success is (p_success against the whole-graph solve), and label_rows (the
# label payload) and the label statements after it (the operating cut, the decisions, the candidates), through
# the decisions they feed and against numpy's cut.
NOT_STAGE_STATEMENTS = {"views", "component_seed", "component_step", "component_changes", "component_numbers",
                        "node_success", "label_rows", "label_candidates", "label_operating_point", "label_decisions",
                        "candidate_rows", "scored_in_locales"}


def test_every_stage_statement_is_covered():
    assert set(STATEMENTS) == {p.stem for p in (ROOT / "sql").glob("*.sql")} - NOT_STAGE_STATEMENTS


@pytest.mark.parametrize("statement", sorted(STATEMENTS))
def test_statement_gives_same_rows_on_spark(statement, engines, stage_data):
    duck, sp = engines
    inputs, sort_by = STATEMENTS[statement]
    params = params_for(statement)
    expected = duck.to_arrow(duck.sql(statement, {v: stage_data["duckdb"][v] for v in inputs}, params))
    got = sp.to_arrow(sp.sql(statement, {v: stage_data["spark"][v] for v in inputs}, params))
    assert expected.num_rows > 0, f"{statement}: the inline turns should give rows"
    assert_same_table(expected, got, statement, sort_by)


def test_map_batches_scores_like_duckdb(engines, stage_data):
    duck, sp = engines
    expected = duck.to_arrow(stage_data["duckdb"]["scored_pairs"])
    got = sp.to_arrow(stage_data["spark"]["scored_pairs"])
    assert expected.column("is_rephrase").to_pylist().count(True) > 0
    assert_same_table(expected, got, "scored_pairs")
    assert sp.count(stage_data["spark"]["scored_pairs"]) == expected.num_rows


def test_slots_round_trip_null_empty_and_filled(engines, stage_data):
    _, sp = engines
    slots = {r["event_id"]: r["nlu_slots"] for r in sp.to_arrow(stage_data["spark"]["turn_friction"]).to_pylist()}
    assert slots["e00004"] is None
    assert slots["e00005"] == []
    assert slots["e00011"] == [{"name": "time", "value": "七時"}]


def test_write_parquet_is_one_deterministic_file(engines, stage_data, tmp_path):
    _, sp = engines
    frame = stage_data["spark"]["scored_pairs"]
    first, second = tmp_path / "a" / "scored.parquet", tmp_path / "b" / "scored.parquet"
    sp.write_parquet(frame, first)
    sp.write_parquet(frame, first)  # overwrite in place
    sp.write_parquet(frame, second)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["scored.parquet"]
    written = pq.read_table(first)
    assert_same_table(sp.to_arrow(frame), written, "written scored_pairs")


def test_load_parquet_and_empty_inputs(engines, tmp_path):
    _, sp = engines
    turns = make_turns(TURNS[:4])
    pq.write_table(turns.slice(0, 2), tmp_path / "a.parquet")
    pq.write_table(turns.slice(2), tmp_path / "b.parquet")
    loaded = sp.load_parquet([tmp_path / "b.parquet", tmp_path / "a.parquet"], contract.TURNS_SCHEMA)
    assert_same_table(turns, sp.to_arrow(loaded), "loaded turns", ["event_id"])
    empty = sp.load_parquet([], contract.TURNS_SCHEMA)
    assert sp.count(empty) == 0
    assert canonical_schema(sp.to_arrow(empty).schema) == canonical_schema(contract.TURNS_SCHEMA)


def test_close_frees_its_data_and_keeps_a_session_it_did_not_create(spark):
    from selflearn.engines import get_engine

    def persisted() -> int:
        return spark.sparkContext._jsc.sc().getPersistentRDDs().size()

    before = persisted()
    engine = get_engine("spark", spark=spark)
    engine.sql("turn_friction", {"turns": engine.from_arrow(make_turns(TURNS))}, friction.sql_params(Config()))
    assert persisted() == before + 1
    engine.close()
    assert persisted() == before
    assert spark.range(3).count() == 3


# ---------------------------------------------------------------------- 2. end-to-end parity
@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory) -> Path:
    """One embedding cache for every run here: the first run embeds, the others read the same vectors."""
    return tmp_path_factory.mktemp("embedding-cache")


def e2e_config(cache: Path, **run) -> Config:
    """Config() defaults (the default embedder included), quiet, with the shared embedding cache."""
    cfg = Config()
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"progress": False, **run}),
                                  "embedding": cfg.embedding.model_copy(update={"cache_dir": str(cache)}),
                                  # one salt for both engines' folders: users are keyed alike
                                  "privacy": cfg.privacy.model_copy(update={"user_salt": "e2e-test-salt"})})


@pytest.fixture(scope="module")
def runs_and_collects(spark, sample_logs, embedding_cache, tmp_path_factory):
    """The sample logs run on DuckDB, then on Spark; with every collect the Spark engine made (SparkEngine.collected)."""
    from selflearn import pipeline

    out = tmp_path_factory.mktemp("e2e")
    duck = pipeline.run(str(sample_logs), out / "duck", e2e_config(embedding_cache), say=lambda _: None)
    run = pipeline.PipelineRun(str(sample_logs), out / "spark", e2e_config(embedding_cache, engine="spark"),
                               say=lambda _: None, engine_options={"spark": spark})
    engine = run.engine
    spk = run.run_all()
    return duck, spk, list(engine.collected)


@pytest.fixture(scope="module")
def both_runs(runs_and_collects):
    return runs_and_collects[:2]


def _frame_rows(path: Path, keys: list[str]) -> list[dict]:
    table = pq.read_table(path)
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def assert_same_outputs(duck_out: Path, spark_out: Path) -> None:
    for rel, keys in [("training/parquet/train.parquet", ["locale", "utt_norm"]),
                      ("graph/nodes.parquet", ["node_id"]),
                      ("graph/edges.parquet", ["src", "dst", "kind"]),
                      # released rewrite pairs: rephrase edges whose both texts are releasable
                      ("rephrases/pairs.parquet", ["locale", "utt_norm_a", "utt_norm_b"]),
                      # the label lifecycle and the emerging phrasings read sql/text_days.sql
                      ("history/labels.parquet", ["locale", "utt_norm", "intent"]),
                      ("history/changes.parquet", ["as_of", "locale", "utt_norm", "intent", "change"]),
                      ("history/emerging.parquet", ["locale", "rank"])]:
        a, b = duck_out / rel, spark_out / rel
        assert canonical_schema(pq.read_schema(a)) == canonical_schema(pq.read_schema(b)), rel
        assert_same_rows(_frame_rows(a, keys), _frame_rows(b, keys), rel)


def test_pipeline_outputs_equal_between_engines(both_runs):
    duck, spk = both_runs
    assert duck.manifest["engine"] == "duckdb" and spk.manifest["engine"] == "spark"
    assert duck.manifest["counts"] == spk.manifest["counts"]
    assert len(duck.labels) > 0, "the sample logs should yield weak labels"
    # DuckDB ran first on the shared cache: Spark's vector dataset took its vectors over, so it embeds nothing
    # (an encoder that batches may differ in the last bits between batchings; taken over, the vectors are equal)
    assert spk.manifest["embedding"]["embedded"] == 0
    assert spk.manifest["embedding"]["unique_texts"] == duck.manifest["embedding"]["unique_texts"] > 0
    assert_same_outputs(duck.out_dir, spk.out_dir)


# Stages that still bring tables into the driver that grow with distinct texts (issue 17 item 3, docs/SPARK.md
# "Driver memory"): nodes and edges are collected to pandas, variants' neighbour rows (failing texts x k), the
# graph's component labels and absorption rows, export's texts per day. Every other stage may collect only rows
# bounded by what is not data: the input files, the locales x days, one row of counts, or the labels it emits.
NODE_SIZED_STAGES = {"nodes", "edges", "variants", "graph", "export"}


def test_spark_stages_collect_no_table_that_grows_with_nodes_or_turns(runs_and_collects):
    from selflearn import outdir
    from selflearn.pipeline import STAGES

    _, spk, collected = runs_and_collects
    manifest, counts = spk.manifest, spk.manifest["counts"]
    assert {c.stage for c in collected} <= set(STAGES), "every collect happens inside a stage"
    largest = {stage: max((c.rows for c in collected if c.stage == stage), default=0) for stage in STAGES}
    assert largest["nodes"] >= counts["nodes"] > 0, "the record should see the nodes collected (still on the driver)"
    files, locale_days = len(manifest["inputs"]), len(manifest["funnel"]) * manifest["days"]["days"]
    assert largest["ingest"] <= files, "ingest collects one account row per input file"
    for stage in ("window", "friction", "pairs", "embed", "rephrase"):
        assert largest[stage] <= locale_days, stage
    # labels: one row of counts, the emitted labels (and their targets' slots), the small locales' candidates;
    # never one row per scored candidate (before, the driver collected every candidate to make the cut)
    point, abstained = counts["operating_point"], counts["abstained"]
    emitted = point["candidates"] - abstained["no_confident_rephrase"] - abstained["low_confidence"]
    assert 0 < emitted < point["candidates"], "the sample should score candidates it does not emit"
    small = set(counts["transfer"].get("small_locales", []))
    scored = pq.read_table(outdir.published_dir(spk.out_dir) / "work" / "label_candidates.parquet").to_pandas()
    assert len(scored) == point["candidates"]
    borrowed = sum(n for tally in counts["transfer"]["by_locale"].values() for key, n in tally.items()
                   if key.startswith("labelled_"))
    bound = max(1, emitted + borrowed, int(scored["locale"].isin(small).sum()))
    assert largest["labels"] <= bound < point["candidates"], (largest["labels"], bound)
    stages_over = {stage for stage, rows in largest.items() if rows > max(files, locale_days, bound)}
    assert stages_over <= NODE_SIZED_STAGES, stages_over


def test_scored_pairs_written_by_spark_match(both_runs):
    duck, spk = both_runs
    keys = ["event_id_a", "event_id_b"]
    rel = "work/daily/scored_pairs"   # one file a day
    assert_same_rows(_frame_rows(duck.out_dir / rel, keys), _frame_rows(spk.out_dir / rel, keys), rel)


# ---------------------------------------------------------------------- embeddings on the workers
def hashing_config(cache: Path, **run) -> Config:
    """The hashing embedder (encodes each text alone: the same vectors whatever the batches)."""
    cfg = e2e_config(cache, **run)
    return cfg.model_copy(update={"embedding": cfg.embedding.model_copy(update={"backend": "hashing"})})


def dataset_vectors(cache: Path) -> pa.Table:
    parts = sorted(cache.glob("*/vectors/part-*.parquet"))
    return pa.concat_tables([pq.read_table(p) for p in parts]) if parts else vector_store.VECTORS_SCHEMA.empty_table()


def window_texts(out: Path) -> set[str]:
    return set(pq.read_table(out / "curated" / "turns", columns=["utt_norm"]).column("utt_norm").to_pylist())


def test_spark_embeds_new_texts_on_the_workers_once(spark, sample_logs, three_days, tmp_path):
    """A fresh cache: the first run embeds every text of its window into the Parquet dataset (one row per text,
    the model's vector of that text), a re-run embeds nothing, a run with more days embeds only the texts those
    days add; the outputs equal DuckDB's; the in-process cache is never written."""
    from selflearn import pipeline
    from selflearn.embedders.hashing import HashingEmbedder

    cache, spark_options = tmp_path / "cache", {"spark": spark}
    first = pipeline.run(str(three_days), tmp_path / "first", hashing_config(cache, engine="spark"),
                         say=lambda _: None, engine_options=spark_options)
    texts_3 = window_texts(tmp_path / "first")
    stats = first.manifest["embedding"]
    assert stats["embedded"] == stats["unique_texts"] == len(texts_3) > 0
    rows = dataset_vectors(cache)
    keys = rows.column("text_key").to_pylist()
    assert len(keys) == len(set(keys)) == len(texts_3)
    by_key = {hashlib.sha1(t.encode("utf-8")).hexdigest(): t for t in texts_3}
    assert set(keys) == set(by_key)
    embedder = HashingEmbedder()
    assert set(rows.column("model").to_pylist()) == {embedder.name}
    sample = rows.slice(0, 50)
    expected = embedder.encode([by_key[k] for k in sample.column("text_key").to_pylist()])
    assert (vector_store.vector_matrix(sample.column("vector")) == expected).all()
    assert not list(cache.rglob("shard-*.npz")), "the driver's in-process cache was used"

    again = pipeline.run(str(three_days), tmp_path / "again", hashing_config(cache, engine="spark"),
                         say=lambda _: None, engine_options=spark_options)
    assert again.manifest["embedding"]["embedded"] == 0
    assert dataset_vectors(cache).num_rows == len(texts_3)
    assert_same_outputs(tmp_path / "first", tmp_path / "again")

    more = pipeline.run(str(sample_logs), tmp_path / "more", hashing_config(cache, engine="spark"),
                        say=lambda _: None, engine_options=spark_options)
    texts_all = window_texts(tmp_path / "more")
    assert len(texts_all) > len(texts_3)
    assert more.manifest["embedding"]["embedded"] == len(texts_all - texts_3)
    keys = dataset_vectors(cache).column("text_key").to_pylist()
    assert len(keys) == len(set(keys)) == len(texts_all)

    duck = pipeline.run(str(sample_logs), tmp_path / "duck", hashing_config(tmp_path / "duck-cache"),
                        say=lambda _: None)
    assert duck.manifest["counts"] == more.manifest["counts"]
    assert_same_outputs(tmp_path / "duck", tmp_path / "more")


# ---------------------------------------------------------------------- kNN on the workers
def test_spark_variants_search_on_the_workers_and_collect_no_vector(spark, tmp_path):
    """Variants with the vectors on Spark: the same edges and neighbours as the in-process path (similarities
    to faiss's batching noise), the same sampled floors bit for bit, and no vector collected to the driver."""
    import pandas as pd

    from selflearn.engines.spark_engine import SparkEngine
    from test_knn_on_engine import holds_vectors, run_variants, window

    nodes, edges, texts, vectors = window()
    cfg = Config()
    expected = run_variants(DuckDBEngine(), tmp_path / "in-process", rephrase.VectorLookup(texts, vectors), nodes,
                            edges, cfg)
    engine = SparkEngine(spark=spark)  # it records every collect (SparkEngine.collected)
    relation = engine.from_arrow(pa.table({"utt_norm": texts, "vector": pa.array(list(vectors), pa.list_(pa.float32()))}))
    got = run_variants(engine, tmp_path / "spark", relation, nodes, edges, cfg)
    engine.close()
    assert engine.collected and not any(holds_vectors(record.schema) for record in engine.collected)
    assert got["chance_similarity"] == expected["chance_similarity"]
    assert got["knn_index"] == expected["knn_index"] == ["flat-cpu"]
    for name, keys in (("variant_edges", ["src", "kind", "dst"]), ("reliable_neighbours", ["src", "dst"]),
                       ("reliable_neighbours_abroad", ["src", "dst"])):
        want, have = expected[name], got[name]
        assert len(want) > 0 and list(have.columns) == list(want.columns), name
        pd.testing.assert_frame_equal(have.drop(columns="similarity"), want.drop(columns="similarity"),
                                      check_exact=True, obj=name)
        # faiss's float sums depend on which queries share a BLAS call: the last bits may differ
        assert (have["similarity"] - want["similarity"]).abs().max() <= 1e-6, name


# ---------------------------------------------------------------------- 3. spark-submit
def zip_package(target: Path) -> Path:
    """selflearn/ and sql/ side by side in one zip, as docs/SPARK.md tells users to build it."""
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted((ROOT / "selflearn").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(ROOT).as_posix())
        for path in sorted((ROOT / "sql").glob("*.sql")):
            zf.write(path, path.relative_to(ROOT).as_posix())
    return target


def zipped_rephrase_weights_differ(package: Path, embedder_name: str) -> bool:
    """Imported from a zip (as executors import --py-files), does the rephrase scorer read other weights
    than from the source tree? It would if rephrase_weights.json were opened by file path."""
    code = ("import json, sys; from selflearn.stages import rephrase; "
            f"print(json.dumps(rephrase.weights_for({embedder_name!r}), sort_keys=True))")
    zipped = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(package)},
                            cwd=package.parent, capture_output=True, text=True, check=True).stdout
    return json.loads(zipped) != rephrase.weights_for(embedder_name)


def test_spark_submit_runs_on_sample_logs(both_runs, sample_logs, embedding_cache, tmp_path):
    package = zip_package(tmp_path / "selflearn.zip")
    config = tmp_path / "run.toml"
    config.write_text(f'[embedding]\ncache_dir = "{embedding_cache}"\n[run]\nprogress = false\n')
    out = tmp_path / "out"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_submit = Path(sys.executable).parent / "spark-submit"
    done = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "--driver-memory", "2g", "--py-files", str(package),
         "--conf", "spark.ui.enabled=false", "--conf", "spark.ui.showConsoleProgress=false",
         str(ROOT / "selflearn" / "spark_submit.py"),
         "--logs", str(sample_logs), "--out", str(out), "--config", str(config)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    for rel in ("training/parquet/train.parquet", "graph/nodes.parquet", "graph/edges.parquet", "manifest.json"):
        assert (out / rel).is_file(), rel
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "spark"

    duck, _ = both_runs
    assert not zipped_rephrase_weights_differ(package, duck.manifest["embedding"]["embedder"]), (
        "imported from the zip (as executors import --py-files) the rephrase scorer reads other weights: "
        "read package data with importlib.resources, never by file path (docs/SPARK.md)")
    assert manifest["counts"] == duck.manifest["counts"]
    assert_same_outputs(duck.out_dir, out)


# ---------------------------------------------------------------------- last: changes the shared session
def test_reliable_checkpoints_when_the_context_has_a_checkpoint_dir(spark, engines, tmp_path):
    """With spark.checkpoint.dir set (a cluster's HDFS/S3 folder), results survive a lost executor."""
    duck, _ = engines
    from selflearn.engines.spark_engine import SparkEngine

    spark.sparkContext.setCheckpointDir(str(tmp_path / "checkpoints"))  # cannot be unset: keep this test last
    engine = SparkEngine(spark=spark)
    turns = make_turns(TURNS)
    got = engine.to_arrow(friction.turn_friction(engine, engine.from_arrow(turns), Config()))
    assert any((tmp_path / "checkpoints").rglob("part-*"))
    assert_same_table(duck.to_arrow(friction.turn_friction(duck, turns, Config())), got, "turn_friction")
    engine.close()

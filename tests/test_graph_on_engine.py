"""The synonymy graph and label decisions on the engine: connected components in SQL, the absorbing chain and
each failing utterance's decision per component through `map_groups` (the Spark path), against the
whole-graph path (networkx, one solve, one pass) that DuckDB keeps.

DuckDB runs here by default; the same checks on Spark local[2] are marked `spark` + `extended`.
"""
from __future__ import annotations

import random
from functools import partial

import networkx as nx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import scipy.sparse as sp

from selflearn import pipeline
from selflearn.config import Config
from selflearn.engines.duckdb_engine import DuckDBEngine
from selflearn.stages import graph as graph_stage
from selflearn.stages import labels
from selflearn.stages.components import component_labels, component_numbers

SUM_SCHEMA = pa.schema([("locale", pa.string()), ("day", pa.int64()), ("total", pa.float64()),
                        ("rows", pa.int64())])


def sum_group(group: pa.Table, *, scale: float) -> pa.Table:
    """One row per group: its key, scale x the sum of `value`, its row count (a module function: Spark pickles it)."""
    return pa.table({"locale": [group.column("locale")[0].as_py()], "day": [group.column("day")[0].as_py()],
                     "total": [scale * pc.sum(group.column("value")).as_py()], "rows": [group.num_rows]})


GROUPED_INPUT = pa.table({"locale": ["de-DE", "en-US", "de-DE", "ja-JP", "en-US", "de-DE"],
                          "day": [2, 1, 2, 1, 1, 1], "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
GROUPED_EXPECTED = [{"locale": "de-DE", "day": 1, "total": 12.0, "rows": 1},
                    {"locale": "de-DE", "day": 2, "total": 8.0, "rows": 2},
                    {"locale": "en-US", "day": 1, "total": 14.0, "rows": 2},
                    {"locale": "ja-JP", "day": 1, "total": 8.0, "rows": 1}]


def random_graphs() -> list[tuple[str, list[str], list[tuple[str, str]]]]:
    """Named graphs with shuffled node ids (so a label must travel against id order): a long path, a long
    path plus random edges, a star, a cycle, a sparse random graph with isolated nodes, a graph without edges."""
    rng = random.Random(17)
    graphs = []

    def ids(n: int) -> list[str]:
        names = [f"n{i:05d}" for i in range(n)]
        rng.shuffle(names)
        return names

    path = ids(400)
    graphs.append(("path_400", path, list(zip(path, path[1:]))))
    mixed = ids(300)
    graphs.append(("path_plus_random", mixed, list(zip(mixed[:150], mixed[1:151]))
                   + [(rng.choice(mixed[150:]), rng.choice(mixed[150:])) for _ in range(80)]))
    star = ids(50)
    graphs.append(("star", star, [(star[0], other) for other in star[1:]]))
    cycle = ids(64)
    graphs.append(("cycle", cycle, list(zip(cycle, cycle[1:] + cycle[:1]))))
    sparse = ids(500)
    graphs.append(("sparse_random", sparse, [(rng.choice(sparse), rng.choice(sparse)) for _ in range(300)]))
    lonely = ids(10)
    graphs.append(("no_edges", lonely, []))
    return graphs


def networkx_numbers(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """The reference: networkx's weak components, numbered by size (largest first), ties by smallest id."""
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    comps = sorted((sorted(c) for c in nx.weakly_connected_components(graph)), key=lambda c: (-len(c), c[0]))
    return {node: number for number, comp in enumerate(comps) for node in comp}


def engine_numbers(engine, nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    node_frame = engine.from_arrow(pa.table({"node_id": pa.array(nodes, pa.string())}))
    edge_frame = engine.from_arrow(pa.table({"src": pa.array([a for a, _ in edges], pa.string()),
                                             "dst": pa.array([b for _, b in edges], pa.string())}))
    numbers = engine.to_arrow(component_numbers(engine, component_labels(engine, node_frame, edge_frame)))
    return dict(zip(numbers.column("node_id").to_pylist(), numbers.column("component").to_pylist()))


def absorbing_chain_inputs(seed: int = 3, n_nodes: int = 240):
    """Nodes, their interpretations and rephrase moves with chains A -> B -> C, cycles A -> B -> A, nodes
    that never succeed and nodes that only succeed, in two locales."""
    rng = random.Random(seed)
    nodes = pd.DataFrame({"node_id": [f"{i:04x}" for i in range(n_nodes)],
                          "locale": ["en-US" if i % 3 else "de-DE" for i in range(n_nodes)],
                          "utt_norm": [f"utterance {i}" for i in range(n_nodes)]})
    intents = []
    for i, (locale, norm) in enumerate(zip(nodes["locale"], nodes["utt_norm"])):
        for intent in rng.sample(["alarm_set", "play_music", "weather_query", ""], rng.choice([1, 1, 2])):
            events = rng.randint(1, 20)
            intents.append({"locale": locale, "utt_norm": norm, "intent": intent, "n_events": events,
                            "n_defective": events if i % 7 == 0 else rng.randint(0, events)})
    node_intents = pd.DataFrame(intents)
    by_locale = nodes.groupby("locale")["utt_norm"].apply(list).to_dict()
    moves = set()
    for locale, norms in by_locale.items():
        for a, b in zip(norms[:12], norms[1:13]):  # a long chain
            moves.add((locale, a, b))
        moves.add((locale, norms[20], norms[21]))  # a cycle with no observed exit but the abandon prior
        moves.add((locale, norms[21], norms[20]))
        for _ in range(len(norms) // 3):
            a, b = rng.sample(norms, 2)
            moves.add((locale, a, b))
    rephrase_edges = pd.DataFrame(sorted(moves), columns=["locale", "utt_norm_a", "utt_norm_b"])
    rephrase_edges["n_events"] = [rng.randint(1, 9) for _ in range(len(rephrase_edges))]
    return nodes, node_intents, rephrase_edges


def check_grouped_solve_equals_whole(engine) -> None:
    nodes, node_intents, rephrase_edges = absorbing_chain_inputs()
    node_index = {(l, u): i for i, (l, u) in enumerate(zip(nodes["locale"], nodes["utt_norm"]))}
    whole = graph_stage.absorb(nodes["node_id"].tolist(), node_intents, node_index, rephrase_edges)
    id_of = dict(zip(zip(nodes["locale"], nodes["utt_norm"]), nodes["node_id"]))
    edges = list(zip([id_of[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_a"])],
                     [id_of[k] for k in zip(rephrase_edges["locale"], rephrase_edges["utt_norm_b"])]))
    node_frame = engine.from_arrow(pa.table({"node_id": nodes["node_id"]}))
    edge_frame = engine.from_arrow(pa.table({"src": [a for a, _ in edges], "dst": [b for _, b in edges]}))
    groups = engine.to_arrow(component_labels(engine, node_frame, edge_frame))
    solve_group = dict(zip(groups.column("node_id").to_pylist(), groups.column("component").to_pylist()))
    assert 1 < len(set(solve_group.values())) < len(nodes), "the inputs should split into several components"
    solved = graph_stage.solve_on_engine(engine, node_intents, rephrase_edges, nodes, solve_group)
    # the solve's rows laid out as the whole graph's matrix (an intent the whole solve does not know fails here)
    rows = engine.to_arrow(solved)
    row_of = {node: row for row, node in enumerate(whole.node_ids)}
    col_of = {intent: col for col, intent in enumerate(whole.intents)}
    grouped = sp.csr_matrix((rows.column("probability").to_numpy(),
                             ([row_of[n] for n in rows.column("node_id").to_pylist()],
                              [col_of[i] for i in rows.column("intent").to_pylist()])),
                            shape=whole.success_by_intent.shape)
    assert set(rows.column("intent").to_pylist()) == set(whole.intents)
    assert whole.success_by_intent.nnz > len(nodes) // 2
    difference = abs(grouped - whole.success_by_intent)
    assert difference.max() < 1e-12 if difference.nnz else True
    # p_success as the engine path computes it (sql/node_success.sql; a node with no row has 0)
    success = engine.to_arrow(engine.sql("node_success", {"absorption_rows": solved}))
    p_success = dict(zip(success.column("node_id").to_pylist(), success.column("p_success").to_pylist()))
    np.testing.assert_allclose([p_success.get(n, 0.0) for n in whole.node_ids], whole.p_success, rtol=0, atol=1e-12)
    # a chain credits the end of the chain: the chain's first node reaches success through its successors
    assert whole.p_success[0] > 0


# ---------------------------------------------------------------------- DuckDB (default suite)
@pytest.fixture(scope="module")
def duck():
    engine = DuckDBEngine()
    yield engine
    engine.close()


def test_map_groups_on_duckdb_applies_the_function_per_group_in_key_order(duck):
    out = duck.map_groups(GROUPED_INPUT, ["locale", "day"], partial(sum_group, scale=2.0), SUM_SCHEMA)
    assert out.schema.equals(SUM_SCHEMA)
    assert out.to_pylist() == GROUPED_EXPECTED
    empty = duck.map_groups(GROUPED_INPUT.slice(0, 0), ["locale"], partial(sum_group, scale=1.0), SUM_SCHEMA)
    assert empty.num_rows == 0 and empty.schema.equals(SUM_SCHEMA)


@pytest.mark.parametrize("name,nodes,edges", random_graphs(), ids=[g[0] for g in random_graphs()])
def test_components_in_sql_equal_networkx_on_duckdb(duck, name, nodes, edges):
    assert engine_numbers(duck, nodes, edges) == networkx_numbers(nodes, edges)


@pytest.mark.parametrize("name,nodes,edges", random_graphs(), ids=[g[0] for g in random_graphs()])
def test_components_in_process_equal_networkx(name, nodes, edges):
    found = graph_stage.components(nodes, [a for a, _ in edges], [b for _, b in edges])
    assert found == networkx_numbers(nodes, edges)


def test_grouped_absorbing_chain_equals_whole_graph_solve_on_duckdb(duck):
    check_grouped_solve_equals_whole(duck)


@pytest.fixture(scope="module")
def graph_inputs(sample_logs, tmp_path_factory):
    """The datasets the graph and labels stages read, from the sample logs (hashing embedder: fast)."""
    cfg = Config()
    cfg = cfg.model_copy(update={
        "run": cfg.run.model_copy(update={"progress": False}),
        "embedding": cfg.embedding.model_copy(update={"backend": "hashing",
                                                      "cache_dir": str(tmp_path_factory.mktemp("cache"))})})
    run = pipeline.PipelineRun(str(sample_logs), tmp_path_factory.mktemp("graph-inputs"), cfg, say=lambda _: None,
                               keep_datasets=True)
    try:
        for name in pipeline.STAGES[:pipeline.STAGES.index("graph")]:
            run.stage(name)
        return {k: run.datasets[k] for k in ("utterance_stats", "node_intents", "rephrase_edges", "variant_edges",
                                             "reliable_neighbours", "is_failing", "chance_similarity")}
    finally:
        run.close()


def check_engine_graph_and_labels_equal_whole(engine, d) -> None:
    whole = graph_stage.assemble(d["utterance_stats"], d["node_intents"], d["rephrase_edges"], d["variant_edges"])
    grouped = graph_stage.assemble_on_engine(engine, d["utterance_stats"], d["node_intents"], d["rephrase_edges"],
                                             d["variant_edges"], d["reliable_neighbours"])
    assert grouped.nodes["component"].tolist() == whole.nodes["component"].tolist()
    np.testing.assert_allclose(grouped.nodes["p_success"], whole.nodes["p_success"], rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(grouped.edges, whole.edges)
    assert grouped.chains == whole.chains
    groups = set(grouped.solve_group.values())
    assert 1 < len(groups) < len(whole.nodes)
    rule = dict(weights=labels.HAND_LABEL_WEIGHTS, target_precision=0.8, min_confidence=0.1, min_users=2,
                chance_similarity=d["chance_similarity"], neighbours=d["reliable_neighbours"])
    decisions, abstained, point, candidates = labels.decide(whole, d["is_failing"], **rule)
    got = labels.decide_on_engine(engine, grouped, d["is_failing"], **rule)
    assert len(decisions) > 0, "the sample logs should give labels"
    assert 0 < point["candidates"] and point["cut"] is not None
    pd.testing.assert_frame_equal(got[0], decisions, check_exact=False, rtol=1e-12)
    assert got[1] == abstained
    assert got[2] == point
    on_engine = engine.to_arrow(labels.candidate_rows(engine, got[3])).to_pandas()
    pd.testing.assert_frame_equal(on_engine, candidates, check_exact=False, rtol=1e-12)
    small = set(candidates["locale"].unique()[:1])
    expected_small = candidates[candidates["locale"].isin(small)][["locale", "utt_norm", "intent", "confidence"]]
    got_small = labels.scored_in_locales(engine, got[3], small)
    pd.testing.assert_frame_equal(got_small.drop(columns="node_id"), expected_small.reset_index(drop=True),
                                  check_exact=False, rtol=1e-12)


def test_grouped_graph_and_labels_equal_whole_graph_path_on_duckdb(duck, graph_inputs):
    check_engine_graph_and_labels_equal_whole(duck, graph_inputs)


# ---------------------------------------------------------------------- Spark local[2]
@pytest.fixture(scope="module")
def spark_engine():
    pytest.importorskip("pyspark")
    # imported here: Spark's Python workers import this module (for sum_group) and have no conftest
    from conftest import local_spark_session
    from selflearn.engines.spark_engine import SparkEngine

    session = local_spark_session("selflearn-graph-tests")
    session.sparkContext.addPyFile(__file__)  # the Python workers unpickle sum_group from this module
    engine = SparkEngine(spark=session)
    yield engine
    engine.close()
    session.stop()


spark_only = [pytest.mark.spark, pytest.mark.slow, pytest.mark.extended]


@pytest.mark.parametrize("mark", [pytest.param(None, marks=spark_only)])
def test_map_groups_on_spark_equals_duckdb(spark_engine, mark):
    out = spark_engine.to_arrow(spark_engine.map_groups(spark_engine.from_arrow(GROUPED_INPUT), ["locale", "day"],
                                                        partial(sum_group, scale=2.0), SUM_SCHEMA))
    assert sorted(out.to_pylist(), key=lambda r: (r["locale"], r["day"])) == GROUPED_EXPECTED


@pytest.mark.parametrize("name,nodes,edges", [pytest.param(*g, marks=spark_only) for g in random_graphs()[:2]],
                         ids=[g[0] for g in random_graphs()[:2]])
def test_components_in_sql_equal_networkx_on_spark(spark_engine, name, nodes, edges):
    assert engine_numbers(spark_engine, nodes, edges) == networkx_numbers(nodes, edges)


@pytest.mark.parametrize("mark", [pytest.param(None, marks=spark_only)])
def test_grouped_absorbing_chain_equals_whole_graph_solve_on_spark(spark_engine, mark):
    check_grouped_solve_equals_whole(spark_engine)


@pytest.mark.parametrize("mark", [pytest.param(None, marks=spark_only)])
def test_grouped_graph_and_labels_on_spark_equal_whole_graph_path(spark_engine, graph_inputs, mark):
    check_engine_graph_and_labels_equal_whole(spark_engine, graph_inputs)


def test_grouped_labels_without_candidates_decide_nothing_like_the_whole_path(duck, graph_inputs):
    d = graph_inputs
    grouped = graph_stage.assemble_on_engine(duck, d["utterance_stats"], d["node_intents"], d["rephrase_edges"],
                                             d["variant_edges"], d["reliable_neighbours"])
    nobody = pd.Series(False, index=d["is_failing"].index)
    rule = dict(weights=labels.HAND_LABEL_WEIGHTS, target_precision=0.8, min_confidence=0.1, min_users=2)
    expected = labels.decide(grouped, nobody, **rule)
    got = labels.decide_on_engine(duck, grouped, nobody, **rule)
    assert len(got[0]) == 0 and duck.count(got[3]) == 0
    assert got[1] == expected[1] and got[2] == expected[2]
    assert duck.to_arrow(labels.candidate_rows(duck, got[3])).column_names == list(expected[3].columns)


# ---------------------------------------------------------------------- the operating cut in SQL
def decided_rows(confidence: list[float], confident: list[bool]) -> pa.Table:
    """DECIDED_SCHEMA rows: one scored row per confidence (the other columns null) and an abstention tally."""
    n = len(confidence)
    columns = {name: pa.nulls(n + 1, field.type) for name, field in zip(labels.DECIDED_SCHEMA.names,
                                                                         labels.DECIDED_SCHEMA)}
    columns.update({
        "outcome": pa.array(["scored"] * n + ["tie"]), "count": pa.array([1] * n + [3], pa.int64()),
        "node_row": pa.array([*range(n), None], pa.int64()),
        "node_id": pa.array([f"n{i:03d}" for i in range(n)] + [None]),
        "locale": pa.array(["en-US"] * n + [None]), "target": pa.array([f"t{i % 3}" for i in range(n)] + [None]),
        "confidence": pa.array([*confidence, None], pa.float64()),
        "confident_rephrase": pa.array([*confident, None], pa.bool_())})
    return pa.table(columns, schema=labels.DECIDED_SCHEMA)


def check_operating_cut_in_sql_equals_numpy(engine) -> None:
    rng = random.Random(5)
    # coarse confidences: many ties, some below the floor, a run whose mean crosses the target more than once
    confidence = [round(rng.random(), 1) for _ in range(60)] + [0.95, 0.95, 0.05]
    confident = [rng.random() < 0.7 for _ in confidence]
    decided = engine.from_arrow(decided_rows(confidence, confident))
    values, eligible_mask = np.array(confidence), np.array(confident)
    cases = [(0.8, 0.1, False), (0.6, 0.3, False), (0.5, 0.0, True), (0.99, 0.1, False), (1.01, 0.1, True)]
    cuts = []
    for target, floor, variant_only in cases:
        eligible = np.ones(len(values), dtype=bool) if variant_only else eligible_mask
        expected = labels.operating_cut(values[eligible], target, floor)
        frame = engine.sql("label_candidates", {"label_decided": decided},
                           {"target_precision": target, "min_confidence": floor,
                            "allow_variant_only": int(variant_only)})
        rows = engine.to_arrow(frame)
        got = rows.column("cut")[0].as_py()
        assert (got is None and np.isinf(expected)) or got == expected, (target, floor, variant_only)
        emitted = eligible & (values >= expected)
        assert rows.column("emitted").to_pylist() == emitted.tolist()
        point = engine.to_arrow(engine.sql("label_operating_point", {"label_candidates": frame,
                                                                     "label_decided": decided})).to_pylist()[0]
        assert point["low_confidence"] == int((eligible & ~emitted).sum())
        assert point["no_confident_rephrase"] == int((~eligible).sum()) and point["tie"] == 3
        cuts.append(got)
    assert None in cuts and len({c for c in cuts if c is not None}) > 1, "the cases should cover several cuts"


def test_operating_cut_in_sql_equals_numpy_on_duckdb(duck):
    check_operating_cut_in_sql_equals_numpy(duck)


@pytest.mark.parametrize("mark", [pytest.param(None, marks=spark_only)])
def test_operating_cut_in_sql_equals_numpy_on_spark(spark_engine, mark):
    check_operating_cut_in_sql_equals_numpy(spark_engine)

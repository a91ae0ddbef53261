"""The package's shape, read from its source (ast): no import circle, engine SQL only in stages/ and engines/,
output paths spelled only in selflearn/layout.py, and every stage's datasets wired in run order."""
from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from selflearn import contract, layout, pipeline

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "selflearn"
# the Prefect flow ships as selflearn.flows: it obeys the same rules
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "flows").glob("*.py"))
# what an engine runs: a named sql/ statement, or a function mapped over Arrow batches
ENGINE_CALLS = {"sql", "map_batches", "load_parquet"}
ENGINE_HOMES = ("selflearn/stages/", "selflearn/engines/")
# strings that look like a run output but name something else
NOT_RUN_OUTPUTS = {
    ("selflearn/evaluation/inputs.py", "pairs.parquet"): "the simulator's truth/pairs.parquet",
    ("selflearn/evaluation/inputs.py", "turns.parquet"): "the simulator's truth/turns.parquet",
    ("selflearn/simulate.py", "pairs.parquet"): "the simulator's truth/pairs.parquet",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "flows":
        parts = ["selflearn", *parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in SOURCES}


def imported_modules(path: Path) -> set[str]:
    """selflearn modules `path` imports anywhere (top level or inside a function: a lazy import still makes
    a circle, only a later one). `from pkg import name` counts as pkg.name when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] in ("selflearn", "flows")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            base = "selflearn." + node.module if node.module.split(".")[0] == "flows" else node.module
            if base.split(".")[0] != "selflearn":
                continue
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m in MODULES}


def import_graph() -> dict[str, set[str]]:
    return {name: imported_modules(path) - {name} for name, path in MODULES.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_among_selflearn_modules():
    graph = import_graph()
    assert graph["selflearn.pipeline"] >= {"selflearn.stages.export", "selflearn.engines"}  # the walk sees imports
    assert circles(graph) == []


def test_the_circle_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def engine_calls(path: Path) -> list[str]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ENGINE_CALLS:
            calls.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}(")
    return calls


def test_only_stages_and_engines_run_engine_sql():
    outside = [call for path in SOURCES if not path.relative_to(ROOT).as_posix().startswith(ENGINE_HOMES)
               for call in engine_calls(path)]
    assert outside == []
    inside = {call.split(":")[0] for path in SOURCES for call in engine_calls(path)}
    assert "selflearn/stages/aggregate.py" in inside and "selflearn/stages/labels.py" in inside


def output_names() -> tuple[set[str], tuple[str, ...]]:
    """Exact strings that spell an output (relative paths and file names) and folder prefixes."""
    relative = set(layout.RUN_FILES.values()) | set(layout.STATE_FILES.values())
    # a bare folder name ("quarantine") is also a manifest key: only paths and file names count
    names = {p for p in relative if "/" in p or "." in p} | {p.rsplit("/", 1)[-1] for p in relative
                                                              if "." in p.rsplit("/", 1)[-1]}
    folders = tuple(sorted({p.split("/")[0] + "/" for p in relative if "/" in p} | {layout.TRAINING + "/"}))
    return names, folders


def docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelled_paths(rel: str, source: str) -> list[str]:
    names, folders = output_names()
    tree = ast.parse(source)
    skip = docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            text = node.value
            if (text in names or text.startswith(folders)) and (rel, text) not in NOT_RUN_OUTPUTS:
                found.append((node.lineno, f"{rel}:{node.lineno} {text!r}"))
    return [hit for _, hit in sorted(found)]


def test_output_paths_are_spelled_only_in_the_layout_module():
    spelled = [hit for path in SOURCES if path != PACKAGE / "layout.py"
               for hit in spelled_paths(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))]
    assert spelled == []


def test_the_path_check_finds_a_spelled_path():
    source = ('"""A docstring may say rephrases/pairs.parquet."""\nfrom pathlib import Path\n'
              'out = Path("x") / "rephrases" / "pairs.parquet"\nw = "work/scored_pairs.parquet"\nkey = "quarantine"\n')
    assert spelled_paths("selflearn/probe.py", source) == [
        "selflearn/probe.py:3 'pairs.parquet'", "selflearn/probe.py:4 'work/scored_pairs.parquet'"]


def test_stages_read_only_what_earlier_stages_wrote():
    available = {"logs"}
    for stage in pipeline.STAGE_LIST:
        assert set(stage.inputs) <= available, f"{stage.name} reads {set(stage.inputs) - available} before it exists"
        assert not set(stage.outputs) & available, f"{stage.name} rewrites {set(stage.outputs) & available}"
        available |= set(stage.outputs)
    assert pipeline.STAGES == ("ingest", "window", "friction", "pairs", "embed", "rephrase", "nodes", "edges",
                               "variants", "graph", "labels", "export")


def test_every_table_dataset_between_stages_has_a_schema():
    produced = {name for stage in pipeline.STAGE_LIST for name in stage.outputs}
    tables = {"turns", "fresh_friction", "day_texts", "turn_pairs", "fresh_scored_pairs", "node_days", "locale_days",
              "utterance_stats", "node_intents",
              "rephrase_edges", "weak_labels", "released_labels"}
    assert tables <= produced and tables <= set(contract.DATASET_SCHEMAS)


def test_a_dataset_missing_a_column_is_named_with_its_stage():
    import pandas as pd

    frame = pd.DataFrame({"locale": ["de-DE"], "utt_norm_a": ["a"]})
    with pytest.raises(ValueError, match=r"stage 'edges' produced dataset 'rephrase_edges' without column\(s\) "
                                         r"\['utt_norm_b'"):
        contract.check_dataset("rephrase_edges", frame, "edges")


@pytest.mark.slow
def test_the_manifest_lists_every_released_output_and_each_stage_runs_alone(three_days, tmp_path):
    """A real run (DuckDB, hashing embedder): manifest["outputs"] names files that exist, covers every
    published name but work/; then the graph stage runs again alone on the kept datasets, to the same graph."""
    from selflearn.config import load_config

    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False})
    run = pipeline.PipelineRun(str(three_days), tmp_path / "out", cfg, say=lambda m: None, keep_datasets=True)
    try:
        for name in pipeline.STAGES[:-1]:
            run.stage(name)
        graph_stage = pipeline.STAGE_LIST[pipeline.STAGES.index("graph")]
        again = graph_stage(run.ctx, run.datasets)["synonymy_graph"]
        assert again.nodes.equals(run.datasets["synonymy_graph"].nodes)
        assert again.edges.equals(run.datasets["synonymy_graph"].edges)
        manifest = run.stage("export")["manifest"]
    finally:
        run.close()
    outputs = manifest["outputs"]
    out = tmp_path / "out"
    assert all((out / rel).exists() for rel in outputs.values()), outputs
    top_level = {rel.split("/")[0] for rel in outputs.values()}
    assert top_level == set(layout.PUBLISHED) - {layout.WORK}
    assert (out / outputs["training_parquet"] / "train.parquet").is_file()


@pytest.mark.slow
def test_a_run_lets_go_of_each_dataset_after_the_last_stage_that_reads_it(three_days, tmp_path):
    """Memory: the turn tables and the vectors must not outlive their readers (at 1 M turns they are ~3 GB);
    what the run hands back (labels, funnel, manifest, ingest report) stays. Same labels as a run that keeps all."""
    from selflearn.config import load_config

    cfg = load_config(None, {"embedding.backend": "hashing", "run.progress": False})
    readers = pipeline.last_readers()
    run = pipeline.PipelineRun(str(three_days), tmp_path / "lean", cfg, say=lambda m: None)
    try:
        for index, name in enumerate(pipeline.STAGES):
            run.stage(name)
            held = set(run.datasets)
            stale = {d for d in held if d not in pipeline.RESULT_DATASETS and readers.get(d, -1) <= index}
            assert not stale, f"after {name}: {sorted(stale)} are read by no later stage but still held"
            if name == "variants":
                assert "text_vectors" not in held and "turn_pairs" not in held and "fresh_friction" not in held
        lean = run.result()
    finally:
        run.close()
    full = pipeline.PipelineRun(str(three_days), tmp_path / "full", cfg, say=lambda m: None, keep_datasets=True)
    kept = full.run_all()
    assert "fresh_friction" in full.datasets and "text_vectors" in full.datasets
    assert len(lean.labels) > 0
    pd.testing.assert_frame_equal(lean.labels.reset_index(drop=True), kept.labels.reset_index(drop=True))

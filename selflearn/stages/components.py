"""Weakly connected components of a graph on the engine, by iterative min-label propagation in SQL.

    labels = component_labels(engine, nodes, edges)   # node_id -> smallest node id of its component
    numbers = component_numbers(engine, labels)      # node_id -> 0, 1, ... by size (largest first)

nodes: a dataset with a `node_id` column; edges: one with `src` and `dst`. Each step is one statement
(`sql/component_step.sql`, with a pointer jump, so a chain of n nodes settles in ~log2(n) steps); the loop
here only asks how many labels changed. On Spark the graph never passes through the driver.
"""
from __future__ import annotations

from typing import Any, Callable

MAX_STEPS = 200  # log2 of any graph that fits a cluster is far below this; more means a bug, not a big graph


def component_labels(engine, nodes: Any, edges: Any, say: Callable[[str], None] | None = None) -> Any:
    """node_id, component: the smallest node id of the node's weakly connected component."""
    labels = engine.sql("component_seed", {"component_nodes": nodes})
    for step in range(1, MAX_STEPS + 1):
        stepped = engine.sql("component_step", {"component_labels": labels, "component_edges": edges})
        changes = engine.to_arrow(engine.sql("component_changes", {"component_labels": labels,
                                                                   "component_stepped": stepped}))
        changed = int(changes.column("changed")[0].as_py() or 0)
        labels = stepped
        if say is not None:
            say(f"components: step {step}, {changed} label(s) changed")
        if not changed:
            return labels
    raise RuntimeError(f"connected components did not settle in {MAX_STEPS} steps: the edges must name nodes by "
                       "node_id (src, dst), and sql/component_step.sql must only lower labels")


def component_numbers(engine, labels: Any) -> Any:
    """node_id, component: components numbered 0.. by size (largest first), ties by smallest node id."""
    return engine.sql("component_numbers", {"component_labels": labels})

"""Statistics across users, in SQL on the engine (sql/node_intents, graph_nodes, rephrase_edges).

    nodes: turn_friction, scored_pairs -> utterance_stats (one row per locale + normalized text),
                                          node_intents (outcomes per text and system interpretation)
    edges: scored_pairs                -> rephrase_edges (failing -> fixing text, one vote per user, LLR, PMI)

Results are collected to pandas on the driver: the graph, variants and labels work on the few distinct
texts, not on turns.
"""
from __future__ import annotations

from selflearn.stages.base import Context, Stage
from selflearn.stages.friction import sql_params


def _nodes(ctx: Context, turn_friction, scored_pairs) -> dict:
    engine = ctx.engine
    intents = engine.sql("node_intents", {"turn_friction": turn_friction, "scored_pairs": scored_pairs})
    stats = engine.to_arrow(engine.sql("graph_nodes", {"turn_friction": turn_friction, "node_intents": intents}))
    return {"utterance_stats": stats.to_pandas(), "node_intents": engine.to_arrow(intents).to_pandas()}


def _edges(ctx: Context, scored_pairs) -> dict:
    edges = ctx.engine.sql("rephrase_edges", {"scored_pairs": scored_pairs}, sql_params(ctx.cfg))
    return {"rephrase_edges": ctx.engine.to_arrow(edges).to_pandas()}


NODES = Stage("nodes", inputs=("turn_friction", "scored_pairs"), outputs=("utterance_stats", "node_intents"),
              run=_nodes)
EDGES = Stage("edges", inputs=("scored_pairs",), outputs=("rephrase_edges",), run=_edges)

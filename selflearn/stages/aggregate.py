"""Statistics across users, in SQL on the engine, from per-day rows (sql/node_days, node_intents, graph_nodes,
edge_days, rephrase_edges; stages/daily.py).

    nodes: fresh_friction, fresh_scored_pairs, day_plan -> node_days (per day, text, interpretation and user;
                                                           stored per day), utterance_stats (one row per locale +
                                                           normalized text), node_intents (outcomes per text and
                                                           system interpretation), locale_days (turns, pairs,
                                                           rephrases per day and locale; stored per day)
    edges: fresh_scored_pairs, day_plan                 -> rephrase_edges (failing -> fixing text, one vote per
                                                           user, LLR, PMI), from per-day edge_days

A run computes the per-day rows of the days it computes and aggregates the window's days, each weighed by its
decay weight (window.half_life_days; 1 when unset). Results are collected to pandas on the driver: the graph,
variants and labels work on the few distinct texts, not on turns.
"""
from __future__ import annotations

from selflearn.stages import daily
from selflearn.stages.base import Context, Stage
from selflearn.stages.friction import sql_params


def _nodes(ctx: Context, fresh_friction, fresh_scored_pairs, day_plan) -> dict:
    engine = ctx.engine
    fresh = engine.sql("node_days", {"turn_friction": fresh_friction, "scored_pairs": fresh_scored_pairs})
    daily.store(ctx, day_plan, "node_days", fresh)
    daily.store(ctx, day_plan, "locale_days",
                engine.sql("locale_days", {"turn_friction": fresh_friction, "scored_pairs": fresh_scored_pairs}))
    node_days = daily.load(ctx, day_plan, "node_days")
    intents = engine.sql("node_intents", {"node_days": node_days, "day_weights": daily.weights_table(ctx, day_plan)})
    stats = engine.to_arrow(engine.sql("graph_nodes", {"node_days": node_days, "node_intents": intents}))
    return {"node_days": node_days, "locale_days": daily.load(ctx, day_plan, "locale_days"),
            "utterance_stats": stats.to_pandas(),
            "node_intents": engine.to_arrow(intents).to_pandas()}


def _edges(ctx: Context, fresh_scored_pairs, day_plan) -> dict:
    fresh = ctx.engine.sql("edge_days", {"scored_pairs": fresh_scored_pairs})
    daily.store(ctx, day_plan, "edge_days", fresh)
    edges = ctx.engine.sql("rephrase_edges", {"edge_days": daily.load(ctx, day_plan, "edge_days"),
                                              "day_weights": daily.weights_table(ctx, day_plan)}, sql_params(ctx.cfg))
    return {"rephrase_edges": ctx.engine.to_arrow(edges).to_pandas()}


NODES = Stage("nodes", inputs=("fresh_friction", "fresh_scored_pairs", "day_plan"),
              outputs=("node_days", "locale_days", "utterance_stats", "node_intents"), run=_nodes)
EDGES = Stage("edges", inputs=("fresh_scored_pairs", "day_plan"), outputs=("rephrase_edges",), run=_edges)

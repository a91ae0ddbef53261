-- The label decisions' payload, one table cut by solve group (selflearn.stages.labels LABEL_ROWS_SCHEMA): for
-- every solve group that holds a candidate, its nodes, the edges out of them, their nonzero absorption
-- probabilities and their reliable neighbours, each row tagged with its part. Built by joins on the engine,
-- so the payload never passes through the driver; groups without a candidate are left out (nothing to decide).
-- inputs: label_nodes (node_row, node_id, ... , is_candidate), label_edges (src, dst, kind, n_users, ...),
--         label_dist (node_id, intent, probability), label_neighbours (src, dst, similarity),
--         solve_groups (node_id, solve_group)
with deciding as (
  select distinct g.solve_group
  from label_nodes n
  join solve_groups g on g.node_id = n.node_id
  where n.is_candidate
),
grouped as (
  select g.node_id, g.solve_group
  from solve_groups g
  join deciding d on d.solve_group = g.solve_group
)
select g.solve_group, 'node' as part,
       n.node_row, n.node_id, n.locale, n.utt, n.utt_norm, n.n_users, n.n_events, n.n_success, n.top_intent,
       n.top_intent_share, n.n_logged_friction, n.is_candidate,
       cast(null as string) as src, cast(null as string) as dst, cast(null as string) as kind,
       cast(null as double) as soft_users, cast(null as double) as strong_users, cast(null as double) as max_score,
       cast(null as double) as llr, cast(null as double) as similarity,
       cast(null as string) as intent, cast(null as double) as probability
from label_nodes n
join grouped g on g.node_id = n.node_id
union all
select g.solve_group, 'edge' as part,
       cast(null as bigint), cast(null as string), cast(null as string), cast(null as string),
       cast(null as string), e.n_users, cast(null as bigint), cast(null as bigint), cast(null as string),
       cast(null as double), cast(null as bigint), cast(null as boolean),
       e.src, e.dst, e.kind, e.soft_users, e.strong_users, e.max_score, e.llr, e.similarity,
       cast(null as string), cast(null as double)
from label_edges e
join grouped g on g.node_id = e.src
union all
select g.solve_group, 'dist' as part,
       cast(null as bigint), a.node_id, cast(null as string), cast(null as string),
       cast(null as string), cast(null as bigint), cast(null as bigint), cast(null as bigint), cast(null as string),
       cast(null as double), cast(null as bigint), cast(null as boolean),
       cast(null as string), cast(null as string), cast(null as string), cast(null as double),
       cast(null as double), cast(null as double), cast(null as double), cast(null as double),
       a.intent, a.probability
from label_dist a
join grouped g on g.node_id = a.node_id
union all
select g.solve_group, 'neighbour' as part,
       cast(null as bigint), cast(null as string), cast(null as string), cast(null as string),
       cast(null as string), cast(null as bigint), cast(null as bigint), cast(null as bigint), cast(null as string),
       cast(null as double), cast(null as bigint), cast(null as boolean),
       r.src, r.dst, cast(null as string), cast(null as double),
       cast(null as double), cast(null as double), cast(null as double), r.similarity,
       cast(null as string), cast(null as double)
from label_neighbours r
join grouped g on g.node_id = r.src

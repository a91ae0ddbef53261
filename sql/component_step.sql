-- Connected components, one step of min-label propagation: each node takes the smallest label among its own
-- and its neighbours' (edges count in both directions: weak components). Two shortcuts make a long path
-- settle in a few dozen steps instead of one step per node: a node's label (the node it points to) is also
-- offered the neighbours' labels (hooking), and each node then jumps to its new label's label. Labels are
-- always node ids of the same component and only decrease, so a settled component is named by its
-- smallest node id.
-- inputs: component_labels (node_id, component), component_edges (src, dst)
with undirected as (
  select src as node_id, dst as neighbour from component_edges
  union all
  select dst as node_id, src as neighbour from component_edges
),
offered as (
  select node_id, component from component_labels
  union all
  select u.node_id, l.component
  from undirected u
  join component_labels l on l.node_id = u.neighbour
  union all
  select own.component as node_id, l.component
  from undirected u
  join component_labels l on l.node_id = u.neighbour
  join component_labels own on own.node_id = u.node_id
),
stepped as (
  select node_id, min(component) as component
  from offered
  group by node_id
)
select s.node_id, least(s.component, coalesce(j.component, s.component)) as component
from stepped s
left join stepped j on j.node_id = s.component
order by s.node_id

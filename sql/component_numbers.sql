-- Connected components numbered by size, largest first, ties by the smallest node id (the settled label):
-- the same numbering as networkx's components sorted by (-size, smallest id), so both paths agree.
-- inputs: component_labels (settled: node_id, component = smallest node id of its component)
with sizes as (
  select component, count(*) as size
  from component_labels
  group by component
),
numbered as (
  select component, cast(row_number() over (order by size desc, component) - 1 as bigint) as number
  from sizes
)
select l.node_id, n.number as component
from component_labels l
join numbered n on n.component = l.component
order by l.node_id

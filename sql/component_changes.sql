-- Connected components: how many nodes a propagation step relabelled (0: the labels have settled).
-- inputs: component_labels (before the step), component_stepped (after it)
select cast(count(*) as bigint) as changed
from component_labels l
join component_stepped s on s.node_id = l.node_id
where s.component <> l.component

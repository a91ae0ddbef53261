-- Connected components, step 0: every node is its own component, labelled by its own id.
-- inputs: component_nodes (node_id)
select node_id, node_id as component
from component_nodes
order by node_id

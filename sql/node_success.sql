-- Each node's probability that a path from it ends in success (any interpretation): the row sums of the
-- absorbing chain's solution, from its nonzero entries (selflearn.stages.graph ABSORPTION_ROWS_SCHEMA, as the
-- per-group solve left them on the engine). A node with no entry has none: p_success 0. One row per node, not
-- one per node and interpretation, is what the driver needs of the solve (graph/nodes.parquet's p_success).
-- inputs: absorption_rows (node_id, intent, probability)
select node_id, sum(probability) as p_success
from absorption_rows
group by node_id
order by node_id

-- The vector of each node's text, in the nodes' row order (the kNN searches index rows).
-- inputs: node_texts (node_row, utt_norm), text_vectors (sql/window_vectors.sql)
select n.node_row, v.vector
from node_texts n
join text_vectors v on v.utt_norm = n.utt_norm
order by n.node_row

-- Both nodes' vectors of each drawn pair (variants' noise floors and chance between locales), so the pair's
-- cosine is computed on the engine's workers, not from every node vector gathered in the driver.
-- inputs: node_pairs (pair, row_a, row_b: node rows), node_vectors (sql/node_vectors.sql)
select p.pair, va.vector as vector_a, vb.vector as vector_b
from node_pairs p
join node_vectors va on va.node_row = p.row_a
join node_vectors vb on vb.node_row = p.row_b
order by p.pair

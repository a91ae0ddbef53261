-- Each kNN search's queries with their vectors, searched in the engine's workers against the targets' index.
-- inputs: knn_queries (search, query: its row in the search, node_row), node_vectors (sql/node_vectors.sql)
select q.search, q.query, v.vector
from knn_queries q
join node_vectors v on v.node_row = q.node_row
order by q.search, q.query

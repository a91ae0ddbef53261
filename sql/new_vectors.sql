-- Cached vectors from another store (the in-process cache's shards) whose keys the dataset lacks: taken over
-- once each, so every (model, text) stays once in the dataset. inputs: shard_vectors, cached_vectors
select s.model, s.text_key, s.vector
from shard_vectors s
where not exists (select 1 from cached_vectors c where c.text_key = s.text_key)
order by s.text_key

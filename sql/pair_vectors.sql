-- Each turn pair with both texts' vectors, so the scorer's embedding similarity is computed beside the pair on
-- the engine's workers, not from a lookup of every vector shipped to them.
-- inputs: turn_pairs (sql/turn_pairs.sql), text_vectors (sql/window_vectors.sql)
select p.*, va.vector as vector_a, vb.vector as vector_b
from turn_pairs p
join text_vectors va on va.utt_norm = p.utt_norm_a
join text_vectors vb on vb.utt_norm = p.utt_norm_b
order by p.locale, p.session_key, p.event_id_a

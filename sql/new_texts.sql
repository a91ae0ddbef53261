-- The window's normalized texts the vector cache does not hold yet: the only ones to embed (the engine path).
-- text_key = sha1 of the UTF-8 text, hex, as the cache keys it. inputs: window_texts (sql/unique_texts.sql),
-- cached_vectors (the cache dataset of this embedder: model, text_key, vector)
select w.utt_norm, sha1(w.utt_norm) as text_key
from window_texts w
where not exists (select 1 from cached_vectors c where c.text_key = sha1(w.utt_norm))
order by w.utt_norm

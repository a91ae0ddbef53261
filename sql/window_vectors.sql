-- Each window text's vector from the cache, joined on the engine (never collected). Two runs sharing a cache
-- at the same time may both have appended a text: min() keeps one vector, the same one on every re-run.
-- inputs: window_texts (sql/unique_texts.sql), cached_vectors (model, text_key, vector)
select w.utt_norm, min(c.vector) as vector
from window_texts w
join cached_vectors c on c.text_key = sha1(w.utt_norm)
group by w.utt_norm
order by w.utt_norm

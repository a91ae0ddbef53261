-- Per (UTC day, locale, text, NLU reading): the text was said that day, and the earliest turn the NLU read so
-- without friction (null when every such turn had friction). A daily run reads these few rows per text and day
-- instead of the window's turns: the window's distinct texts (sql/unique_texts.sql) are those of its days, and
-- a text's earliest successful turn over the window (sql/target_slots.sql) is the earliest of its days' earliest.
-- input: turn_friction
with ranked as (
  select day, locale, utt_norm, nlu_intent, ts_ms, event_id, nlu_slots, friction,
         row_number() over (partition by day, locale, utt_norm, nlu_intent
                            order by case when friction < 0.5 then 0 else 1 end, ts_ms, event_id) as rk
  from turn_friction
)
select day, locale, utt_norm, nlu_intent,
       case when friction < 0.5 then ts_ms end as success_ts_ms,
       case when friction < 0.5 then event_id end as success_event_id,
       case when friction < 0.5 then nlu_slots end as success_slots
from ranked
where rk = 1
order by day, locale, utt_norm, nlu_intent nulls first   -- the same order on DuckDB and Spark

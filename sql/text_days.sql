-- Per (locale, utterance, UTC day): events and defective events, the daily evidence a label's lifecycle reads
-- (selflearn/lifecycle.py). Defective as in node_intents.sql: friction the log shows, or the user rephrased it.
-- inputs: turn_friction, scored_pairs (pairs with is_rephrase)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with rephrased as (
  select distinct event_id_a as event_id from scored_pairs where is_rephrase
)
select f.locale, f.utt_norm, f.day,
       count(*) as n_events,
       cast(sum(case when f.friction >= 0.5 or r.event_id is not null then 1 else 0 end) as bigint) as n_defective
from turn_friction f
left join rephrased r on f.event_id = r.event_id
group by f.locale, f.utt_norm, f.day
order by f.locale, f.utt_norm, f.day

-- Per (UTC day, locale, utterance, display form, interpretation, user): events, defective events, events whose
-- friction the log shows, and events that went right. The daily statistic that sql/node_intents.sql,
-- graph_nodes.sql and text_days.sql aggregate over the window: kept per user so that distinct users over many
-- days are counted exactly, and per day so that a daily run adds one day (stages/daily.py).
-- A turn is defective when it shows friction or the user rephrased it.
-- inputs: turn_friction, scored_pairs (pairs with is_rephrase)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with rephrased as (
  select distinct event_id_a as event_id from scored_pairs where is_rephrase
),
outcomes as (
  select f.day, f.locale, f.utt_norm, f.utt, coalesce(f.nlu_intent, '') as intent, f.user_key,
         case when f.friction >= 0.5 or r.event_id is not null then 1 else 0 end as defective,
         case when f.friction >= 0.5 then 1 else 0 end as logged_friction
  from turn_friction f
  left join rephrased r on f.event_id = r.event_id
)
select day, locale, utt_norm, utt, intent, user_key,
       count(*) as n_events,
       cast(sum(defective) as bigint) as n_defective,
       cast(sum(logged_friction) as bigint) as n_logged_friction
from outcomes
group by day, locale, utt_norm, utt, intent, user_key
order by day, locale, utt_norm, utt, intent, user_key

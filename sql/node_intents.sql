-- Outcomes per (utterance, interpretation): how often the system's reading of this text held.
-- A turn is defective when it shows friction or the user rephrased it; n_logged_friction counts only the
-- turns whose friction the log itself shows (behaviour aside), for the label model.
-- inputs: turn_friction, scored_pairs (pairs with is_rephrase)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with rephrased as (
  select distinct event_id_a as event_id from scored_pairs where is_rephrase
),
outcomes as (
  select f.locale, f.utt_norm, coalesce(f.nlu_intent, '') as intent, f.user_key,
         case when f.friction >= 0.5 or r.event_id is not null then 1 else 0 end as defective,
         case when f.friction >= 0.5 then 1 else 0 end as logged_friction
  from turn_friction f
  left join rephrased r on f.event_id = r.event_id
)
select locale, utt_norm, intent,
       count(*) as n_events,
       count(distinct user_key) as n_users,
       cast(sum(defective) as bigint) as n_defective,
       cast(sum(logged_friction) as bigint) as n_logged_friction,
       count(distinct case when defective = 0 then user_key end) as n_success_users
from outcomes
group by locale, utt_norm, intent
order by locale, utt_norm, intent

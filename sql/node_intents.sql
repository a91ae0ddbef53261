-- Outcomes per (utterance, interpretation) over the window: how often the system's reading of this text held.
-- n_logged_friction counts only the turns whose friction the log itself shows (behaviour aside), for the label
-- model. w_events and w_defective weigh each day by its decay weight (1 when window.half_life_days is unset).
-- inputs: node_days (sql/node_days.sql), day_weights (day, weight)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with per_user as (
  select n.locale, n.utt_norm, n.intent, n.user_key,
         cast(sum(n.n_events) as bigint) as n_events,
         cast(sum(n.n_defective) as bigint) as n_defective,
         cast(sum(n.n_logged_friction) as bigint) as n_logged_friction,
         sum(n.n_events * w.weight) as w_events,
         sum(n.n_defective * w.weight) as w_defective
  from node_days n
  join day_weights w on w.day = n.day
  group by n.locale, n.utt_norm, n.intent, n.user_key
)
select locale, utt_norm, intent,
       cast(sum(n_events) as bigint) as n_events,
       count(*) as n_users,
       cast(sum(n_defective) as bigint) as n_defective,
       cast(sum(n_logged_friction) as bigint) as n_logged_friction,
       count(case when n_defective < n_events then user_key end) as n_success_users,
       sum(w_events) as w_events,
       sum(w_defective) as w_defective
from per_user
group by locale, utt_norm, intent
order by locale, utt_norm, intent

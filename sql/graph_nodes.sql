-- Synonymy-graph nodes: one per (locale, normalized utterance) with interpretation and success statistics over
-- the window. The defect rate and the top interpretation's share are decay-weighted (w_*: every day weighs 1
-- when window.half_life_days is unset, and then they equal the plain ratios); counts are never decayed.
-- inputs: node_days, node_intents
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with display_forms as (
  select locale, utt_norm, utt, sum(n_events) as n,
         row_number() over (partition by locale, utt_norm order by sum(n_events) desc, utt) as rk
  from node_days
  group by locale, utt_norm, utt
),
users as (
  select locale, utt_norm, count(distinct user_key) as n_users
  from node_days
  group by locale, utt_norm
),
ranked_intents as (
  select i.*, row_number() over (partition by locale, utt_norm order by w_events desc, n_events desc, intent) as rk
  from node_intents i
),
totals as (
  select locale, utt_norm, cast(sum(n_events) as bigint) as n_events, cast(sum(n_defective) as bigint) as n_friction,
         cast(sum(n_logged_friction) as bigint) as n_logged_friction,
         sum(w_events) as w_events, sum(w_defective) as w_defective
  from node_intents
  group by locale, utt_norm
)
select md5(concat(t.locale, '|', t.utt_norm)) as node_id,
       t.locale, t.utt_norm, d.utt,
       t.n_events, u.n_users, t.n_friction,
       t.w_defective / t.w_events as defect_rate,
       case when r.intent = '' then null else r.intent end as top_intent,
       r.w_events / t.w_events as top_intent_share,
       t.n_events - t.n_friction as n_success,
       t.n_logged_friction
from totals t
join users u on u.locale = t.locale and u.utt_norm = t.utt_norm
join display_forms d on d.locale = t.locale and d.utt_norm = t.utt_norm and d.rk = 1
join ranked_intents r on r.locale = t.locale and r.utt_norm = t.utt_norm and r.rk = 1
order by t.locale, t.utt_norm

-- Rewrite edges failing -> fixing, aggregated across users: one vote per distinct user per edge.
-- Each user's evidence on an edge is their strongest pair's rephrase score (a probability): summed over
-- users it is the expected number of users who rephrased a into b (soft votes, no threshold), and its
-- maximum is the single strongest user's evidence; strong_users sums only users with a pair above the
-- rephrase threshold, so the label model can weigh confident and doubtful users apart. An edge is kept when its strongest user reaches
-- min_edge_score, so that several users' doubtful rephrases still reach the label model, which weighs them.
-- Association over all candidate transitions in the locale: Dunning log-likelihood ratio and PMI.
-- inputs: edge_days (sql/edge_days.sql), day_weights (day, weight: 1 unless window.half_life_days is set)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
-- Scores are summed as integer nano-units: a sum of doubles depends on the order in which threads or
-- partitions add them, and equal inputs must give equal bytes on every run and on both engines.
with per_user as (
  -- one row per user and edge over the window; a user's soft vote weighs as of their latest day with it
  select e.locale, e.utt_norm_a, e.utt_norm_b, e.user_key,
         max(e.user_score) as user_score,
         max(e.user_rephrased) as user_rephrased,
         cast(sum(e.rephrase_events) as bigint) as rephrase_events,
         cast(sum(e.pair_events) as bigint) as pair_events,
         cast(sum(e.score_units) as bigint) as score_units,
         max(e.embed_sim) as embed_sim,
         max(w.weight) as weight
  from edge_days e
  join day_weights w on w.day = e.day
  group by e.locale, e.utt_norm_a, e.utt_norm_b, e.user_key
),
transitions as (
  select locale, utt_norm_a, utt_norm_b,
         count(*) as k11,
         cast(sum(user_rephrased) as bigint) as n_users,
         cast(sum(rephrase_events) as bigint) as n_events,
         cast(sum(score_units) as bigint) / 1e9 / sum(pair_events) as mean_score,
         cast(sum(cast(round(user_score * weight * 1e9) as bigint)) as bigint) / 1e9 as soft_users,
         cast(sum(case when user_rephrased = 1 then cast(round(user_score * weight * 1e9) as bigint) else 0 end) as bigint)
           / 1e9 as strong_users,
         max(user_score) as max_score,
         max(embed_sim) as embed_sim
  from per_user
  group by locale, utt_norm_a, utt_norm_b
),
with_margins as (
  select t.*,
         sum(k11) over (partition by locale, utt_norm_a) as row_total,
         sum(k11) over (partition by locale, utt_norm_b) as col_total,
         sum(k11) over (partition by locale) as grand_total
  from transitions t
),
cells as (
  select w.*,
         cast(row_total - k11 as double) as k12,
         cast(col_total - k11 as double) as k21,
         cast(grand_total - row_total - col_total + k11 as double) as k22
  from with_margins w
)
select locale, utt_norm_a, utt_norm_b, n_users, n_events, k11 as n_users_any, mean_score, soft_users, strong_users, max_score, embed_sim,
       2.0 * (
         k11 * ln(k11 * grand_total / (row_total * col_total))
         + case when k12 > 0 then k12 * ln(k12 * grand_total / (row_total * (grand_total - col_total))) else 0.0 end
         + case when k21 > 0 then k21 * ln(k21 * grand_total / ((grand_total - row_total) * col_total)) else 0.0 end
         + case when k22 > 0 then k22 * ln(k22 * grand_total / ((grand_total - row_total) * (grand_total - col_total))) else 0.0 end
       ) as llr,
       ln(k11 * grand_total / (row_total * col_total)) as pmi
from cells
where max_score >= {{min_edge_score}}
order by locale, utt_norm_a, utt_norm_b

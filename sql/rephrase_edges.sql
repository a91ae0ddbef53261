-- Rewrite edges failing -> fixing, aggregated across users: one vote per distinct user per edge.
-- Each user's evidence on an edge is their strongest pair's rephrase score (a probability): summed over
-- users it is the expected number of users who rephrased a into b (soft votes, no threshold), and its
-- maximum is the single strongest user's evidence.
-- Association over all candidate transitions in the locale: Dunning log-likelihood ratio and PMI.
-- input: scored_pairs
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with per_user as (
  select locale, utt_norm_a, utt_norm_b, user_key,
         max(rephrase_score) as user_score,
         max(case when is_rephrase then 1 else 0 end) as user_rephrased,
         cast(sum(case when is_rephrase then 1 else 0 end) as bigint) as rephrase_events,
         count(*) as pair_events,
         sum(rephrase_score) as score_sum
  from scored_pairs
  where utt_norm_a <> utt_norm_b
  group by locale, utt_norm_a, utt_norm_b, user_key
),
transitions as (
  select locale, utt_norm_a, utt_norm_b,
         count(*) as k11,
         cast(sum(user_rephrased) as bigint) as n_users,
         cast(sum(rephrase_events) as bigint) as n_events,
         sum(score_sum) / sum(pair_events) as mean_score,
         sum(user_score) as soft_users,
         max(user_score) as max_score
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
select locale, utt_norm_a, utt_norm_b, n_users, n_events, k11 as n_users_any, mean_score, soft_users, max_score,
       2.0 * (
         k11 * ln(k11 * grand_total / (row_total * col_total))
         + case when k12 > 0 then k12 * ln(k12 * grand_total / (row_total * (grand_total - col_total))) else 0.0 end
         + case when k21 > 0 then k21 * ln(k21 * grand_total / ((grand_total - row_total) * col_total)) else 0.0 end
         + case when k22 > 0 then k22 * ln(k22 * grand_total / ((grand_total - row_total) * (grand_total - col_total))) else 0.0 end
       ) as llr,
       ln(k11 * grand_total / (row_total * col_total)) as pmi
from cells
where n_users > 0
order by locale, utt_norm_a, utt_norm_b

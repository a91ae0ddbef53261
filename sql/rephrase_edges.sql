-- Rewrite edges failing -> fixing, aggregated across users: one vote per distinct user per edge.
-- Each user's evidence on an edge is their strongest pair's rephrase score (a probability): summed over
-- users it is the expected number of users who rephrased a into b (soft votes, no threshold), and its
-- maximum is the single strongest user's evidence; strong_users sums only users with a pair above the
-- rephrase threshold, so the label model can weigh confident and doubtful users apart. An edge is kept when its strongest user reaches
-- min_edge_score, so that several users' doubtful rephrases still reach the label model, which weighs them.
-- Association over all candidate transitions in the locale: Dunning log-likelihood ratio and PMI.
-- input: scored_pairs
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
-- Scores are summed as integer nano-units: a sum of doubles depends on the order in which threads or
-- partitions add them, and equal inputs must give equal bytes on every run and on both engines.
with per_user as (
  select locale, utt_norm_a, utt_norm_b, user_key,
         max(rephrase_score) as user_score,
         max(case when is_rephrase then 1 else 0 end) as user_rephrased,
         cast(sum(case when is_rephrase then 1 else 0 end) as bigint) as rephrase_events,
         count(*) as pair_events,
         cast(sum(cast(round(rephrase_score * 1e9) as bigint)) as bigint) as score_units,
         max(embed_sim) as embed_sim
  from scored_pairs
  where utt_norm_a <> utt_norm_b
  group by locale, utt_norm_a, utt_norm_b, user_key
),
transitions as (
  select locale, utt_norm_a, utt_norm_b,
         count(*) as k11,
         cast(sum(user_rephrased) as bigint) as n_users,
         cast(sum(rephrase_events) as bigint) as n_events,
         cast(sum(score_units) as bigint) / 1e9 / sum(pair_events) as mean_score,
         cast(sum(cast(round(user_score * 1e9) as bigint)) as bigint) / 1e9 as soft_users,
         cast(sum(case when user_rephrased = 1 then cast(round(user_score * 1e9) as bigint) else 0 end) as bigint)
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

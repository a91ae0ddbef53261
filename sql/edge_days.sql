-- Per (UTC day, locale, failing text, next text, user): that user's rephrase evidence that day, the daily
-- statistic sql/rephrase_edges.sql aggregates over the window (stages/daily.py). Scores are kept as integer
-- nano-units so that sums over days give equal bytes whatever the order (see rephrase_edges.sql).
-- input: scored_pairs
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
select day, locale, utt_norm_a, utt_norm_b, user_key,
       max(rephrase_score) as user_score,
       cast(max(case when is_rephrase then 1 else 0 end) as bigint) as user_rephrased,
       cast(sum(case when is_rephrase then 1 else 0 end) as bigint) as rephrase_events,
       count(*) as pair_events,
       cast(sum(cast(round(rephrase_score * 1e9) as bigint)) as bigint) as score_units,
       max(embed_sim) as embed_sim
from scored_pairs
where utt_norm_a <> utt_norm_b
group by day, locale, utt_norm_a, utt_norm_b, user_key
order by day, locale, utt_norm_a, utt_norm_b, user_key

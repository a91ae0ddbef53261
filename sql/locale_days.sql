-- Per (UTC day, locale): turns, turn pairs and rephrases, the funnel's first counts, kept one day at a time
-- (stages/daily.py) and summed over the window by sql/locale_counts.sql. A pair counts on its first turn's day.
-- inputs: turn_friction, scored_pairs
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with turn_counts as (
  select day, locale, count(*) as turns from turn_friction group by day, locale
),
pair_counts as (
  select day, locale, count(*) as pairs, cast(sum(case when is_rephrase then 1 else 0 end) as bigint) as rephrases
  from scored_pairs group by day, locale
)
select t.day, t.locale, t.turns, coalesce(p.pairs, 0) as pairs, coalesce(p.rephrases, 0) as rephrases
from turn_counts t left join pair_counts p on p.day = t.day and p.locale = t.locale
order by t.day, t.locale

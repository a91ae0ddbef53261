-- Funnel counts per locale: turns, turn pairs, rephrases. inputs: turns, scored_pairs
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
with turn_counts as (
  select locale, count(*) as turns from turns group by locale
),
pair_counts as (
  select locale, count(*) as pairs, cast(sum(case when is_rephrase then 1 else 0 end) as bigint) as rephrases
  from scored_pairs group by locale
)
select t.locale, t.turns, coalesce(p.pairs, 0) as pairs, coalesce(p.rephrases, 0) as rephrases
from turn_counts t left join pair_counts p on p.locale = t.locale
order by t.locale

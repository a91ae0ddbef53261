-- Funnel counts per locale over the window: turns, turn pairs, rephrases. input: locale_days (sql/locale_days.sql)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
select locale, cast(sum(turns) as bigint) as turns, cast(sum(pairs) as bigint) as pairs,
       cast(sum(rephrases) as bigint) as rephrases
from locale_days
group by locale
order by locale

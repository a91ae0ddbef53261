-- Per (locale, utterance, UTC day, interpretation): events and defective events, the daily evidence a label's
-- lifecycle reads (selflearn/lifecycle.py: did the text fail that day; was it read as the labelled intent
-- without friction) and the emerging phrasings' burst score (per day, interpretations summed).
-- input: node_days (sql/node_days.sql)
-- Integer sums are cast to bigint: DuckDB would give HUGEINT, Spark bigint; both must give int64.
select locale, utt_norm, day, intent,
       cast(sum(n_events) as bigint) as n_events,
       cast(sum(n_defective) as bigint) as n_defective
from node_days
group by locale, utt_norm, day, intent
order by locale, utt_norm, day, intent

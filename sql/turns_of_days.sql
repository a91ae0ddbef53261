-- The turns of the given UTC days (a day to compute and its neighbours, stages/daily.py). inputs: turns, days
select t.*
from turns t
where t.utt_norm <> ''  -- punctuation-only turns carry nothing to match on
  and t.day in (select day from days)

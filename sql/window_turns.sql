-- Turns inside the statistics window: the last N whole UTC days up to the newest turn. input: turns
select t.*
from turns t
cross join (select floor(max(ts_ms) / 86400000.0) * 86400000 as newest_day_ms from turns) w
where t.utt_norm <> ''  -- punctuation-only turns carry nothing to match on
  and t.ts_ms >= w.newest_day_ms - cast({{window_days}} - 1 as bigint) * 86400000

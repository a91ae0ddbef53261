-- Slots of each label target: taken from its earliest successful turn read with the target intent, the earliest
-- of the window's days' earliest (sql/day_texts.sql).
-- inputs: day_texts, targets (locale, utt_norm, intent)
with candidates as (
  select d.locale, d.utt_norm, d.success_slots as nlu_slots,
         row_number() over (partition by d.locale, d.utt_norm order by d.success_ts_ms, d.success_event_id) as rk
  from day_texts d
  join targets t on t.locale = d.locale and t.utt_norm = d.utt_norm and t.intent = d.nlu_intent
  where d.success_event_id is not null
)
select locale, utt_norm, nlu_slots from candidates where rk = 1 order by locale, utt_norm

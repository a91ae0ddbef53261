-- Slots of each label target: taken from its earliest successful turn read with the target intent.
-- inputs: turn_friction, targets (locale, utt_norm, intent)
with candidates as (
  select f.locale, f.utt_norm, f.nlu_slots,
         row_number() over (partition by f.locale, f.utt_norm order by f.ts_ms, f.event_id) as rk
  from turn_friction f
  join targets t on t.locale = f.locale and t.utt_norm = f.utt_norm and t.intent = f.nlu_intent
  where f.friction < 0.5
)
select locale, utt_norm, nlu_slots from candidates where rk = 1 order by locale, utt_norm

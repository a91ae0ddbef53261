-- Consecutive turns of one user within one session and one locale, close enough in time to be a retry.
-- A session may switch language; a turn followed by one in another locale is no rewrite of it (graph nodes
-- and rewrite edges are per locale).
-- input: turn_friction (sql/turn_friction.sql). success_b: evidence the second turn went right.
select a.day, a.locale, a.user_key, a.session_key,
       a.event_id as event_id_a, b.event_id as event_id_b,
       a.utt as utt_a, b.utt as utt_b, a.utt_norm as utt_norm_a, b.utt_norm as utt_norm_b,
       a.nlu_intent as intent_a, b.nlu_intent as intent_b, b.nlu_slots as slots_b,
       cast(b.ts_ms - a.ts_ms as double) / 1000 as gap_s,
       a.friction as friction_a,
       case when b.next_gap_s is null or b.next_gap_s >= {{long_pause_s}} then 1.0 - b.friction * 0.9
            else 1.0 - b.friction end as success_b
from turn_friction a
join turn_friction b
  on a.session_key = b.session_key and b.turn_index = a.turn_index + 1 and a.locale = b.locale
where b.ts_ms - a.ts_ms <= {{max_pair_gap_ms}}
order by a.locale, a.session_key, a.turn_index

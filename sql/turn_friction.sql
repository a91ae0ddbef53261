-- Per-turn friction evidence. input: turns (contract.TURNS_SCHEMA)
-- Sessions: the log's session_id when present, else a new session after an inactivity gap, named by the time
-- of its first turn (not by a count of the user's earlier sessions): a day computed with only its neighbour
-- days as context names its sessions as a run over the whole window does (stages/daily.py).
-- Arithmetic is kept in double on purpose: bare decimal literals would be DECIMAL in both engines.
-- Friction is a noisy-OR of signals; a missing optional column contributes no evidence, never an error.
with ordered as (
  select t.*,
         lag(ts_ms) over (partition by user_key order by ts_ms, event_id) as prev_ts_ms
  from turns t
),
marked as (
  select o.*,
         case when prev_ts_ms is null or ts_ms - prev_ts_ms > {{inactivity_gap_ms}} then 1 else 0 end as starts_gap_session
  from ordered o
),
sessionized as (
  select m.*,
         case when session_id is not null then concat(user_key, ':s:', session_id)
              else concat(user_key, ':g:', cast(max(case when starts_gap_session = 1 then ts_ms end) over (
                     partition by user_key order by ts_ms, event_id
                     rows between unbounded preceding and current row) as string))
         end as session_key
  from marked m
),
sequenced as (
  select s.*,
         cast(row_number() over (partition by session_key order by ts_ms, event_id) as bigint) as turn_index,
         lead(ts_ms) over (partition by session_key order by ts_ms, event_id) as next_ts_ms
  from sessionized s
),
signals as (
  select q.*,
         case when coalesce(barge_in, false) then cast(1 as double) else cast(0 as double) end as sig_barge_in,
         case when response_status in ('error', 'unhandled') then cast(1 as double) else cast(0 as double) end as sig_bad_status,
         case when nlu_confidence < {{low_confidence}} then cast(1 as double) else cast(0 as double) end as sig_low_confidence,
         case when next_ts_ms is not null and next_ts_ms - ts_ms <= {{quick_retry_ms}} then cast(1 as double) else cast(0 as double) end as sig_quick_next
  from sequenced q
)
select event_id, day, locale, user_key, session_key, turn_index, ts_ms,
       utt, utt_norm, nlu_intent, nlu_slots, nlu_confidence, response_status, barge_in,
       case when next_ts_ms is null then null else cast(next_ts_ms - ts_ms as double) / 1000 end as next_gap_s,
       1.0 - (1.0 - 0.8 * sig_barge_in) * (1.0 - 0.8 * sig_bad_status)
           * (1.0 - 0.3 * sig_low_confidence) * (1.0 - 0.3 * sig_quick_next) as friction
from signals
order by locale, session_key, turn_index

-- Ingest's dedup across files on the engine path (stages/ingest/on_engine.py): the first occurrence of an event
-- id wins, as with the streaming path's set of seen ids. Each file's curation already dropped the repeats within
-- the file, so an event id occurs at most once per staged file. A staged row is a duplicate when an earlier file
-- of this run kept the same id (file_order.source_rank: the inputs' order by name) or when a curated file that
-- this run keeps holds it (curated_ids: files not re-ingested, including those gone from the input).
-- inputs: staged_turns (source_file, event_id), file_order (source_file, source_rank), curated_ids (event_id)
-- output: the (source_file, event_id) rows to drop from the staged files
with ranked as (
    select t.source_file, t.event_id,
           row_number() over (partition by t.event_id order by o.source_rank) as copy
    from staged_turns t
    join file_order o on o.source_file = t.source_file
),
kept_before as (
    select distinct event_id from curated_ids
)
select r.source_file, r.event_id
from ranked r
left join kept_before k on k.event_id = r.event_id
where r.copy > 1 or k.event_id is not null
order by r.source_file, r.event_id

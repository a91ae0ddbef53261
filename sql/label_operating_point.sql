-- The operating point and the abstention counts of one labels run, one row: the cut, how many candidates were
-- scored, why the others were not emitted, and the expected precision (mean confidence) of the emitted ones.
-- inputs: label_candidates (sql/label_candidates.sql), label_decided (its abstention tallies: no_evidence, tie)
with candidates as (
  select max(cut) as cut,
         cast(count(*) as bigint) as candidates,
         cast(coalesce(sum(case when not eligible then 1 else 0 end), 0) as bigint) as no_confident_rephrase,
         cast(coalesce(sum(case when eligible and not emitted then 1 else 0 end), 0) as bigint) as low_confidence,
         cast(coalesce(sum(case when emitted and target is null then 1 else 0 end), 0) as bigint)
           as target_not_releasable,
         avg(case when emitted then confidence end) as expected_precision
  from label_candidates
),
tallies as (
  select cast(coalesce(sum(case when d.outcome = 'no_evidence' then d.count else 0 end), 0) as bigint) as no_evidence,
         cast(coalesce(sum(case when d.outcome = 'tie' then d.count else 0 end), 0) as bigint) as tie
  from label_decided d
  where d.outcome <> 'scored'
)
select c.*, t.no_evidence, t.tie
from candidates c
cross join tallies t

-- Every scored label candidate with the precision-target operating cut and whether it is emitted
-- (selflearn.stages.labels.operating_cut, in SQL so the cut needs no candidate on the driver). With calibrated
-- confidences the expected precision of the labels at or above a cut is their mean confidence: rank the eligible
-- candidates at or above the floor by confidence, most confident first; the cut is the lowest confidence whose
-- running mean still reaches the target (null: not even the most confident one does, nothing is emitted).
-- The running mean is one window function (sum and count in one frame), so rank and sum never disagree on ties;
-- tied confidences give the same running sums in any order. An engine that adds the frame in another order than
-- numpy's cumsum may differ in the last bit, which moves the cut only if a running mean lies that close to the target.
-- inputs: label_decided (selflearn.stages.labels DECIDED_SCHEMA: scored rows and abstention tallies)
-- params: target_precision, min_confidence, allow_variant_only (1: every scored candidate is eligible)
with scored as (
  select d.*, (d.confident_rephrase or {{allow_variant_only}} = 1) as eligible
  from label_decided d
  where d.outcome = 'scored'
),
ranked as (
  select confidence,
         avg(confidence) over (order by confidence desc rows between unbounded preceding and current row)
           as running_precision
  from scored
  where eligible and confidence >= {{min_confidence}}
),
operating as (
  select min(confidence) as cut from ranked where running_precision >= {{target_precision}}
)
select s.node_row, s.node_id, s.locale, s.utt, s.utt_norm, s.intent, s.n_users, s.n_events, s.system_intent,
       s.log_strong_votes, s.log_weak_votes, s.agreement, s.best_evidence, s.relative_similarity, s.logged_friction,
       s.rephrased_away, s.same_as_system, s.own_intent_share, s.variant_agreement, s.neighbour_support,
       s.confident_rephrase, s.sources, s.confidence, s.target, s.evidence, s.eligible,
       coalesce(s.eligible and s.confidence >= o.cut, false) as emitted, o.cut
from scored s
cross join operating o
order by s.node_row

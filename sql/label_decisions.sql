-- The emitted labels that have a releasable target (selflearn.stages.labels DECISION_COLUMNS, confidence not yet
-- rounded), in node order, with the target's display text.
-- inputs: label_candidates (sql/label_candidates.sql), label_nodes (node_id, utt, ...)
select c.node_id, c.locale, c.utt, c.utt_norm, c.intent, c.confidence, c.sources as source, c.n_users,
       c.n_events, c.target, t.utt as target_utt, c.system_intent, c.evidence
from label_candidates c
join label_nodes t on t.node_id = c.target
where c.emitted and c.target is not null
order by c.node_row

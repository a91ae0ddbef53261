-- The scored candidates of some locales (node id, winning intent, confidence): what cross-locale transfer
-- needs of the label model's rows, for the small locales only (selflearn.stages.transfer.borrow).
-- inputs: label_candidates (sql/label_candidates.sql), locales (locale)
select c.node_id, c.locale, c.utt_norm, c.intent, c.confidence
from label_candidates c
join locales l on l.locale = c.locale
order by c.node_row

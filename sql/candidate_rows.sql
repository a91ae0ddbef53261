-- work/label_candidates.parquet (selflearn.stages.labels CANDIDATE_COLUMNS): every scored candidate with its
-- confidence and whether it was emitted, in node order, for `selflearn eval`'s precision-yield curve.
-- inputs: label_candidates (sql/label_candidates.sql)
select locale, utt_norm, intent, confidence, emitted, confident_rephrase,
       log_strong_votes, log_weak_votes, agreement, best_evidence, relative_similarity, logged_friction,
       rephrased_away, same_as_system, own_intent_share, variant_agreement, neighbour_support
from label_candidates
order by node_row

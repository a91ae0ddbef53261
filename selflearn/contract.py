"""Arrow schemas of the input log contract (v1) and of every stage output.

Column names live here once; stages, SQL and tests refer to these schemas instead of repeating them.
"""
from __future__ import annotations

import pyarrow as pa

LOG_CONTRACT_VERSION = "1"

SLOT = pa.struct([("name", pa.string()), ("value", pa.string())])
SLOTS = pa.list_(SLOT)

# ---------------------------------------------------------------- input log contract v1
# (name, type, required). ts accepts any unit, tz-aware or naive (read as UTC).
LOG_COLUMNS: list[tuple[str, pa.DataType, bool]] = [
    ("event_id", pa.string(), True),
    ("user_id", pa.string(), True),
    ("session_id", pa.string(), False),
    ("locale", pa.string(), True),
    ("ts", pa.timestamp("us", tz="UTC"), True),
    ("utterance", pa.string(), True),
    ("nlu_intent", pa.string(), False),
    ("nlu_slots", SLOTS, False),
    ("nlu_confidence", pa.float64(), False),
    ("response_status", pa.string(), False),
    ("barge_in", pa.bool_(), False),
]
LOG_SCHEMA = pa.schema([pa.field(n, t, nullable=not req) for n, t, req in LOG_COLUMNS])
REQUIRED_LOG_COLUMNS = [n for n, _, req in LOG_COLUMNS if req]
RESPONSE_STATUSES = ("success", "error", "unhandled")

# ---------------------------------------------------------------- ingest output: curated turns
# One row per kept user turn. Raw user ids never leave ingest: user_key is a salted hash.
TURNS_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("user_key", pa.string()),
    ("session_id", pa.string()),        # null when the log had none (sessions stage derives them)
    ("locale", pa.string()),
    ("day", pa.string()),               # YYYY-MM-DD of ts in UTC: the incremental partition key
    ("ts_ms", pa.int64()),              # epoch milliseconds UTC: integer time keeps SQL portable
    ("utterance", pa.string()),         # as logged (internal only)
    ("utt", pa.string()),               # display text with PII scrubbed: what outputs release
    ("utt_norm", pa.string()),          # normalized for matching (NFKC, casefold, punctuation)
    ("nlu_intent", pa.string()),
    ("nlu_slots", SLOTS),
    ("nlu_confidence", pa.float64()),
    ("response_status", pa.string()),
    ("barge_in", pa.bool_()),
    ("source_file", pa.string()),
])

# Private, for operators (never a catalog view, never released): rows are found again by file and row number,
# so no user key or event id is kept, and every logged string in it is cut and PII scrubbed.
QUARANTINE_SCHEMA = pa.schema([
    ("source_file", pa.string()),
    ("row_number", pa.int64()),         # 0-based row within the source file; -1 for a whole file
    ("reason", pa.string()),            # reason code, see selflearn.stages.ingest.REASONS
    ("detail", pa.string()),
    ("locale", pa.string()),            # as logged, cut and scrubbed
    ("utterance", pa.string()),         # cut, then PII scrubbed
])

# ---------------------------------------------------------------- sessions, pairs, friction
# Turn pairs: consecutive turns of one user within one session (output of sql/turn_pairs.sql).
PAIRS_SCHEMA = pa.schema([
    ("day", pa.string()),
    ("locale", pa.string()),
    ("user_key", pa.string()),
    ("session_key", pa.string()),
    ("event_id_a", pa.string()),
    ("event_id_b", pa.string()),
    ("utt_a", pa.string()),
    ("utt_b", pa.string()),
    ("utt_norm_a", pa.string()),
    ("utt_norm_b", pa.string()),
    ("intent_a", pa.string()),
    ("intent_b", pa.string()),
    ("slots_b", SLOTS),
    ("gap_s", pa.float64()),
    ("friction_a", pa.float64()),       # [0, 1] evidence that turn a went wrong
    ("success_b", pa.float64()),        # [0, 1] evidence that turn b went right
])

REPHRASE_PAIRS_SCHEMA = pa.schema(list(PAIRS_SCHEMA) + [
    ("char_sim", pa.float64()),
    ("token_sim", pa.float64()),
    ("embed_sim", pa.float64()),
    ("rephrase_score", pa.float64()),
    ("is_rephrase", pa.bool_()),
])

# Turns of the statistics window with sessions and friction (output of sql/turn_friction.sql).
TURN_FRICTION_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("day", pa.string()),
    ("locale", pa.string()),
    ("user_key", pa.string()),
    ("session_key", pa.string()),       # the logged session, or one derived from inactivity gaps
    ("turn_index", pa.int64()),         # 1-based within the session
    ("ts_ms", pa.int64()),
    ("utt", pa.string()),
    ("utt_norm", pa.string()),
    ("nlu_intent", pa.string()),
    ("nlu_slots", SLOTS),
    ("nlu_confidence", pa.float64()),
    ("response_status", pa.string()),
    ("barge_in", pa.bool_()),
    ("next_gap_s", pa.float64()),       # null for a session's last turn
    ("friction", pa.float64()),         # [0, 1] evidence that the turn went wrong
])

# Each normalized text once, the unit of embedding (sql/unique_texts.sql).
UNIQUE_TEXTS_SCHEMA = pa.schema([("utt_norm", pa.string())])

# ---------------------------------------------------------------- aggregates (sql/node_intents, graph_nodes, rephrase_edges)
# Outcomes per (utterance, system interpretation).
NODE_INTENTS_SCHEMA = pa.schema([
    ("locale", pa.string()),
    ("utt_norm", pa.string()),
    ("intent", pa.string()),            # '' when the log had none
    ("n_events", pa.int64()),
    ("n_users", pa.int64()),
    ("n_defective", pa.int64()),        # turns with friction or rephrased by their user
    ("n_logged_friction", pa.int64()),  # turns whose friction the log itself shows
    ("n_success_users", pa.int64()),
])

# Per-day statistics (stages/daily.py; private: user keys), aggregated over the window with decay weights.
NODE_DAYS_SCHEMA = pa.schema([
    ("day", pa.string()), ("locale", pa.string()), ("utt_norm", pa.string()), ("utt", pa.string()),
    ("intent", pa.string()), ("user_key", pa.string()),
    ("n_events", pa.int64()), ("n_defective", pa.int64()), ("n_logged_friction", pa.int64()),
])
LOCALE_DAYS_SCHEMA = pa.schema([
    ("day", pa.string()), ("locale", pa.string()), ("turns", pa.int64()), ("pairs", pa.int64()),
    ("rephrases", pa.int64()),
])
# Per (day, locale, text, NLU reading): said that day, and its earliest turn read so without friction
# (sql/day_texts.sql)
DAY_TEXTS_SCHEMA = pa.schema([
    ("day", pa.string()), ("locale", pa.string()), ("utt_norm", pa.string()), ("nlu_intent", pa.string()),
    ("success_ts_ms", pa.int64()), ("success_event_id", pa.string()), ("success_slots", SLOTS),
])
EDGE_DAYS_SCHEMA = pa.schema([
    ("day", pa.string()), ("locale", pa.string()), ("utt_norm_a", pa.string()), ("utt_norm_b", pa.string()),
    ("user_key", pa.string()), ("user_score", pa.float64()), ("user_rephrased", pa.int64()),
    ("rephrase_events", pa.int64()), ("pair_events", pa.int64()), ("score_units", pa.int64()),
    ("embed_sim", pa.float64()),
])

# Utterance statistics before the graph adds component and p_success (becomes NODES_SCHEMA).
UTTERANCE_STATS_SCHEMA = pa.schema([
    ("node_id", pa.string()),
    ("locale", pa.string()),
    ("utt_norm", pa.string()),
    ("utt", pa.string()),
    ("n_events", pa.int64()),
    ("n_users", pa.int64()),
    ("n_friction", pa.int64()),
    ("defect_rate", pa.float64()),
    ("top_intent", pa.string()),
    ("top_intent_share", pa.float64()),
    ("n_success", pa.int64()),
    ("n_logged_friction", pa.int64()),
])

# Rephrase edges failing -> fixing text, one vote per distinct user (sql/rephrase_edges.sql): the
# multiturn edges of the graph, and (those a user confidently rephrased along) the released rewrite pairs.
REPHRASE_EDGES_SCHEMA = pa.schema([
    ("locale", pa.string()),
    ("utt_norm_a", pa.string()),
    ("utt_norm_b", pa.string()),
    ("n_users", pa.int64()),            # users with a pair above the rephrase threshold
    ("n_events", pa.int64()),
    ("n_users_any", pa.int64()),        # users with any pair a -> b
    ("mean_score", pa.float64()),
    ("soft_users", pa.float64()),       # sum over users of their strongest pair's rephrase score
    ("strong_users", pa.float64()),
    ("max_score", pa.float64()),
    ("embed_sim", pa.float64()),
    ("llr", pa.float64()),
    ("pmi", pa.float64()),
])

# Funnel counts per locale (sql/locale_counts.sql).
LOCALE_COUNTS_SCHEMA = pa.schema([
    ("locale", pa.string()), ("turns", pa.int64()), ("pairs", pa.int64()), ("rephrases", pa.int64()),
])

# ---------------------------------------------------------------- graph
NODES_SCHEMA = pa.schema([
    ("node_id", pa.string()),           # stable hash of (locale, utt_norm)
    ("locale", pa.string()),
    ("utt_norm", pa.string()),
    ("utt", pa.string()),               # most frequent display form
    ("n_events", pa.int64()),
    ("n_users", pa.int64()),
    ("n_friction", pa.int64()),         # turns with friction
    ("defect_rate", pa.float64()),
    ("top_intent", pa.string()),        # the system's most frequent interpretation
    ("top_intent_share", pa.float64()),
    ("n_success", pa.int64()),          # turns whose interpretation held (no friction)
    ("component", pa.int64()),
    ("p_success", pa.float64()),        # absorbing chain: P(path from here ends in success)
])

EDGES_SCHEMA = pa.schema([
    ("src", pa.string()),
    ("dst", pa.string()),
    ("kind", pa.string()),              # multiturn / cross_user / cross_lingual
    ("n_users", pa.int64()),            # one vote per distinct user
    ("n_events", pa.int64()),
    ("weight", pa.float64()),
    ("llr", pa.float64()),              # Dunning log-likelihood ratio of the pair counts
    ("pmi", pa.float64()),
    ("similarity", pa.float64()),
])

# ---------------------------------------------------------------- weak labels
WEAK_LABELS_SCHEMA = pa.schema([
    ("locale", pa.string()),
    ("utt", pa.string()),
    ("utt_norm", pa.string()),
    ("intent", pa.string()),
    ("annot_utt", pa.string()),
    ("slots", SLOTS),
    ("confidence", pa.float64()),
    ("source", pa.string()),
    ("n_users", pa.int64()),
    ("n_events", pa.int64()),
    ("target_utt", pa.string()),
    ("target_locale", pa.string()),
    ("system_intent", pa.string()),     # what the system currently says (the defect being fixed)
    ("evidence", pa.string()),
    # the label's life over runs in the same output folder (selflearn/lifecycle.py); days are UTC YYYY-MM-DD
    ("state", pa.string()),             # new | confirmed (retired labels are not emitted)
    ("first_seen", pa.string()),        # first day the text was said
    ("first_labelled", pa.string()),    # newest day of the first run that labelled it with this intent
    ("last_evidence", pa.string()),     # last day the text failed
])

# Released rewrite pairs (rephrases/pairs.parquet): rephrase edges a user confidently rephrased along,
# both texts releasable, with their display forms and the system's interpretations.
REWRITE_PAIRS_SCHEMA = pa.schema([
    ("locale", pa.string()), ("utt_a", pa.string()), ("utt_b", pa.string()),
    ("utt_norm_a", pa.string()), ("utt_norm_b", pa.string()),
    ("intent_a", pa.string()), ("intent_b", pa.string()),
    ("n_users", pa.int64()), ("n_events", pa.int64()), ("mean_score", pa.float64()),
    ("llr", pa.float64()), ("pmi", pa.float64()),
])

# ---------------------------------------------------------------- simulator ground truth
TRUTH_TURNS_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("true_intent", pa.string()),
    ("true_scenario", pa.string()),
    ("true_annot_utt", pa.string()),
    ("true_slots", SLOTS),
    ("request_id", pa.string()),        # the MASSIVE id / template id the user meant
    ("system_correct", pa.bool_()),     # the simulated NLU got the intent right
])
TRUTH_PAIRS_SCHEMA = pa.schema([
    ("event_id_a", pa.string()),
    ("event_id_b", pa.string()),
    ("is_rephrase", pa.bool_()),
    ("kind", pa.string()),              # paraphrase / repetition / asr_noise / unrelated / related_different / ...
])


# What the labels stage hands to export: the weak labels before each label's lifecycle (stages/history.py)
# adds its state and days.
LIFECYCLE_COLUMNS = ("state", "first_seen", "first_labelled", "last_evidence")
MINED_LABELS_SCHEMA = pa.schema([f for f in WEAK_LABELS_SCHEMA if f.name not in LIFECYCLE_COLUMNS])

# Each failing utterance's nearest reliably successful utterances in its language (variants.nearest_reliable),
# internal: the label model reads their intents as where the failing text's meaning lies.
RELIABLE_NEIGHBOURS_SCHEMA = pa.schema([
    pa.field("src", pa.string()), pa.field("dst", pa.string()), pa.field("similarity", pa.float64()),
])

# The same in the other locales (variants.nearest_reliable_abroad), internal: cross-locale transfer reads what
# they agree on. chance: the median cosine of random pairs of the two locales' utterances.
RELIABLE_NEIGHBOURS_ABROAD_SCHEMA = pa.schema([*RELIABLE_NEIGHBOURS_SCHEMA, pa.field("chance", pa.float64())])

# Named datasets that stages hand each other (selflearn.pipeline) -> the schema each must satisfy.
DATASET_SCHEMAS: dict[str, pa.Schema] = {
    "curated_turns": TURNS_SCHEMA,
    "turns": TURNS_SCHEMA,
    "turn_friction": TURN_FRICTION_SCHEMA,
    "turn_pairs": PAIRS_SCHEMA,
    "fresh_friction": TURN_FRICTION_SCHEMA,
    "day_texts": DAY_TEXTS_SCHEMA,
    "fresh_scored_pairs": REPHRASE_PAIRS_SCHEMA,
    "node_days": NODE_DAYS_SCHEMA,
    "locale_days": LOCALE_DAYS_SCHEMA,
    "node_intents": NODE_INTENTS_SCHEMA,
    "utterance_stats": UTTERANCE_STATS_SCHEMA,
    "rephrase_edges": REPHRASE_EDGES_SCHEMA,
    "weak_labels": MINED_LABELS_SCHEMA,
    "released_labels": WEAK_LABELS_SCHEMA,
    "rewrite_pairs": REWRITE_PAIRS_SCHEMA,
    "graph_nodes": NODES_SCHEMA,
    "graph_edges": EDGES_SCHEMA,
    "locale_counts": LOCALE_COUNTS_SCHEMA,
    "reliable_neighbours": RELIABLE_NEIGHBOURS_SCHEMA,
    "reliable_neighbours_abroad": RELIABLE_NEIGHBOURS_ABROAD_SCHEMA,
}


def empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def conform(table: pa.Table, schema: pa.Schema, stage: str) -> pa.Table:
    """Select and safely cast `table` to `schema`; a missing column is a bug in `stage`, said plainly."""
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise ValueError(f"stage {stage!r} produced no column(s) {missing}; expected {schema.names}")
    return pa.table([table[f.name].cast(f.type) for f in schema], schema=schema)


def column_names(data) -> list[str]:
    """Columns of a dataset whatever holds it: an Arrow table or batch, a pandas or Spark DataFrame."""
    if hasattr(data, "schema") and hasattr(data.schema, "names"):
        return list(data.schema.names)
    return [str(c) for c in data.columns]


def check_dataset(name: str, data, stage: str) -> None:
    """A dataset with a schema in DATASET_SCHEMAS must hold every column of it; a missing one is a bug in
    `stage`, said plainly. Column names only: reading a lazy engine relation's types costs nothing, but
    comparing them would make DuckDB's and Spark's equivalent types (int32 counts, nullability) disagree."""
    schema = DATASET_SCHEMAS.get(name)
    if schema is None:
        return
    missing = [f.name for f in schema if f.name not in column_names(data)]
    if missing:
        raise ValueError(f"stage {stage!r} produced dataset {name!r} without column(s) {missing}; "
                         f"contract.DATASET_SCHEMAS[{name!r}] expects {schema.names}")

-- Catalog views over one run's outputs, written into <out>/catalog.duckdb by selflearn.catalog.write_catalog.
-- Each ${...} placeholder is a table source filled in there: read_parquet / read_json over the output's path
-- relative to <out> (.runs/<run-id>/...), or an empty relation of the output's schema when the run wrote no such
-- file (e.g. nothing was quarantined).
-- Paths are relative so the folder can be moved or copied: DuckDB resolves them against the working directory
-- (plain DuckDB opened inside <out>) or against file_search_path (selflearn.catalog.connect sets it to <out>).

-- released weak labels, every split of training/parquet/ (contract.WEAK_LABELS_SCHEMA)
create or replace view weak_labels as
select * from ${weak_labels};

-- aggregated failing -> fixing rewrites whose both texts are releasable
create or replace view rewrite_pairs as
select * from ${rewrite_pairs};

-- synonymy graph: utterances seen from at least privacy.min_users users, and the edges between them
create or replace view graph_nodes as
select * from ${graph_nodes};

create or replace view graph_edges as
select * from ${graph_edges};


-- each label's life over the runs in this folder: state (new, confirmed, retired), first_seen, first_labelled,
-- last_evidence, why (selflearn/lifecycle.py); and every change run after run
create or replace view label_history as
select * from ${label_history};

create or replace view label_changes as
select * from ${label_changes};

-- phrasings whose traffic or failure rate burst in the last days against their own history, per locale ranked
-- by burst score, with the NLU's reading and the mined label if any (selflearn/emerging.py)
create or replace view emerging_phrasings as
select * from ${emerging_phrasings};

-- the MASSIVE-format training files, one row per line of training/massive/<split>/<locale>.jsonl
-- (the split is the `partition` column)
create or replace view massive as
select * from ${massive};

-- manifest.json as one row: config, counts, rows accounting, timings
create or replace view run_manifest as
select * from ${run_manifest};

-- turns -> pairs -> rephrases -> failing utterances -> labels, per locale. The cast names the columns even
-- when a run had no turns: read_json infers an empty list as JSON[], which unnests to no columns at all.
create or replace view funnel as
with per_locale as (
  select unnest(cast(funnel as struct(locale varchar, turns bigint, pairs bigint, rephrases bigint,
                                      failing_utterances bigint, labels bigint)[]), recursive := true)
  from run_manifest
)
select locale, turns, pairs, rephrases, failing_utterances, labels
from per_locale
order by locale;

-- log rows rejected by ingest, counted per locale and reason code. The rows themselves (<out>/quarantine/) are
-- private to operators and never a view: they hold text of any number of users.
create or replace view quarantine_summary as
with per_reason as (
  select unnest(cast(quarantine as struct(locale varchar, reason varchar, "rows" bigint)[]), recursive := true)
  from run_manifest
)
select locale, reason, "rows"
from per_reason
order by locale, reason;

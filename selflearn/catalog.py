"""A DuckDB catalog over one run's outputs, and named example queries against it.

    write_catalog(out_dir) -> out_dir/catalog.duckdb     views from sql/views.sql over every output
    run_query(out_dir, "top_rewrite_pairs", locale="de-DE", limit=5) -> pandas.DataFrame

The catalog holds views only (no data), so it is small and rewritten at the end of every run. View paths
are absolute: DuckDB resolves relative paths against the working directory of the process that opens the
catalog, not against the database file, so a moved run folder needs `selflearn catalog --out NEW_DIR`.
Example queries take their arguments as DuckDB prepared parameters ($locale, $limit); nothing a caller
passes is ever spliced into SQL text.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from selflearn import contract
from selflearn.sqlfiles import SQL_DIR
from selflearn.stages.export import REWRITE_PAIRS_SCHEMA

CATALOG_FILE = "catalog.duckdb"
VIEWS_SQL = SQL_DIR / "views.sql"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_PARAM = re.compile(r"\$([a-z_]+)")

MASSIVE_COLUMNS = {
    "id": "VARCHAR", "locale": "VARCHAR", "partition": "VARCHAR", "scenario": "VARCHAR", "intent": "VARCHAR",
    "utt": "VARCHAR", "annot_utt": "VARCHAR",
    "weak_label": "STRUCT(confidence DOUBLE, source VARCHAR, n_users BIGINT, n_events BIGINT, "
                  "target_utt VARCHAR, evidence VARCHAR)",
}


# ------------------------------------------------------------------------------------------------ the catalog

def write_catalog(out_dir: str | Path) -> Path:
    """Write out_dir/catalog.duckdb atomically (built under a temporary name, then renamed) and return its path.
    Raises FileNotFoundError when out_dir holds no finished run (no manifest.json)."""
    out = Path(out_dir).resolve()
    if not (out / "manifest.json").is_file():
        raise FileNotFoundError(f"{out} has no manifest.json: run `selflearn run --out {out}` first")
    sources = _sources(out)
    sql = _PLACEHOLDER.sub(lambda m: sources[m.group(1)], VIEWS_SQL.read_text(encoding="utf-8"))
    path = out / CATALOG_FILE
    tmp = out / f".{CATALOG_FILE}.{os.getpid()}.tmp"
    _remove(tmp)
    try:
        con = duckdb.connect(str(tmp))
        try:
            con.execute(sql)
        finally:
            con.close()
        os.replace(tmp, path)
    finally:
        _remove(tmp)
    return path


def connect(out_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to out_dir/catalog.duckdb (written first if missing)."""
    path = Path(out_dir) / CATALOG_FILE
    if not path.is_file():
        write_catalog(out_dir)
    return duckdb.connect(str(path), read_only=True)


def _remove(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)


def _literal(path: Path) -> str:
    return "'" + path.as_posix().replace("'", "''") + "'"


def _empty(schema: pa.Schema | dict[str, str]) -> str:
    """An empty relation with the output's columns, for an output the run did not write."""
    if isinstance(schema, pa.Schema):
        rel = duckdb.connect().from_arrow(schema.empty_table())
        schema = dict(zip(rel.columns, (str(t) for t in rel.dtypes)))
    cols = ", ".join(f'cast(null as {t}) as "{n}"' for n, t in schema.items())
    return f"(select {cols} where false)"


def _sources(out: Path) -> dict[str, str]:
    def parquet(rel: str, schema: pa.Schema) -> str:
        found = sorted(out.glob(rel))
        return f"read_parquet({_literal(out / rel)}, union_by_name = true)" if found else _empty(schema)

    jsonl = "training/massive/*/*.jsonl"
    columns = ", ".join(f"'{n}': '{t}'" for n, t in MASSIVE_COLUMNS.items())
    return {
        "weak_labels": parquet("training/parquet/*.parquet", contract.WEAK_LABELS_SCHEMA),
        "rewrite_pairs": parquet("rephrases/pairs.parquet", REWRITE_PAIRS_SCHEMA),
        "graph_nodes": parquet("graph/nodes.parquet", contract.NODES_SCHEMA),
        "graph_edges": parquet("graph/edges.parquet", contract.EDGES_SCHEMA),
        "quarantine": parquet("quarantine/*.parquet", contract.QUARANTINE_SCHEMA),
        "massive": (f"read_json({_literal(out / jsonl)}, format = 'newline_delimited', columns = {{{columns}}})"
                    if any(out.glob(jsonl)) else _empty(MASSIVE_COLUMNS)),
        "run_manifest": f"read_json({_literal(out / 'manifest.json')}, format = 'auto', "
                        f"maximum_object_size = 1073741824)",
    }


# ------------------------------------------------------------------------------------------------ example queries

@dataclass(frozen=True)
class ExampleQuery:
    name: str
    question: str
    sql: str

    @property
    def params(self) -> list[str]:
        return sorted(set(_PARAM.findall(self.sql)))


# $locale: one locale, or NULL for all; $limit: rows (per locale where the query says so)
EXAMPLES: dict[str, ExampleQuery] = {q.name: q for q in [
    ExampleQuery("top_rewrite_pairs", "Which rewrites fix failing utterances for the most users, per locale?", """
select locale, utt_a as failing_utt, utt_b as rewrite, intent_a as system_intent, intent_b as rewrite_intent,
       n_users, n_events, round(mean_score, 3) as mean_score, round(llr, 2) as llr
from rewrite_pairs
where $locale is null or locale = $locale
qualify row_number() over (partition by locale order by n_users desc, llr desc, utt_norm_a, utt_norm_b) <= $limit
order by locale, n_users desc, llr desc, utt_norm_a, utt_norm_b"""),

    ExampleQuery("defect_rate_by_intent", "Which system interpretations fail most often, by intent and locale?", """
select locale, top_intent as intent, count(*) as utterances, sum(n_events)::bigint as events,
       sum(n_friction)::bigint as friction_events, round(sum(n_friction) / sum(n_events), 4) as defect_rate
from graph_nodes
where ($locale is null or locale = $locale) and top_intent is not null
group by locale, top_intent
having sum(n_events) > 0
order by friction_events desc, defect_rate desc, locale, intent
limit $limit"""),

    ExampleQuery("labels_gained_per_intent", "How many weak labels did each intent gain, from which evidence?", """
select locale, intent, count(*) as labels, round(avg(confidence), 3) as mean_confidence,
       sum(n_users)::bigint as users, mode(system_intent) as usually_misread_as,
       string_agg(distinct source, ', ' order by source) as evidence_sources
from weak_labels
where $locale is null or locale = $locale
group by locale, intent
order by labels desc, locale, intent
limit $limit"""),

    ExampleQuery("top_failing_phrasings", "What do users say most often that the assistant gets wrong?", """
with failing as (
  select n.* from graph_nodes n
  where n.defect_rate >= (select config.labels.failing_defect_rate from run_manifest)
    and ($locale is null or n.locale = $locale)
)
select f.locale, f.utt, f.n_users, f.n_events, round(f.defect_rate, 3) as defect_rate,
       f.top_intent as system_intent, w.intent as weak_label, round(w.confidence, 3) as confidence
from failing f
left join weak_labels w on w.locale = f.locale and w.utt_norm = f.utt_norm
order by f.n_users desc, f.n_events desc, f.locale, f.utt_norm
limit $limit"""),

    ExampleQuery("graph_component_sizes", "How large are the synonymy graph's components, and what is in them?", """
with failing as (
  select config.labels.failing_defect_rate as rate from run_manifest
),
members as (
  select component, count(*) as utterances, count(distinct locale) as locales,
         sum(n_events)::bigint as events,
         count(*) filter (where defect_rate >= (select rate from failing)) as failing_utterances,
         arg_max(utt, n_users) as most_used_utt, bool_or($locale is null or locale = $locale) as has_locale
  from graph_nodes
  group by component
)
select component, utterances, locales, events, failing_utterances, most_used_utt
from members
where has_locale
order by utterances desc, events desc, component
limit $limit"""),

    ExampleQuery("abstentions", "Why did the labeler abstain instead of emitting a label, and how often?", """
with reasons as (
  select unnest(map_entries(cast(to_json(counts.abstained) as map(varchar, bigint))), recursive := true)
  from run_manifest
)
select key as reason, value as utterances, round(value / sum(value) over (), 3) as share
from reasons
order by utterances desc, reason"""),

    ExampleQuery("unlabeled_failing_utterances", "Which failing utterances got no label and need a human?", """
select n.locale, n.utt, n.n_users, n.n_events, round(n.defect_rate, 3) as defect_rate,
       n.top_intent as system_intent
from graph_nodes n
anti join weak_labels w on w.locale = n.locale and w.utt_norm = n.utt_norm
where n.defect_rate >= (select config.labels.failing_defect_rate from run_manifest)
  and ($locale is null or n.locale = $locale)
order by n.n_users desc, n.n_events desc, n.locale, n.utt_norm
limit $limit"""),

    ExampleQuery("quarantine_reasons", "Which log rows were rejected at ingest, and why?", """
select coalesce(locale, '(none)') as locale, reason, count(*) as log_rows, any_value(detail) as example_detail
from quarantine
where $locale is null or locale = $locale
group by all
order by log_rows desc, locale, reason
limit $limit"""),
]}


def run_query(target: str | Path | duckdb.DuckDBPyConnection, name: str, *, locale: str | None = None,
              limit: int = 20) -> pd.DataFrame:
    """Run example query `name` on a run folder (its catalog) or an open catalog connection.
    locale=None means every locale; limit is the row cap (per locale for top_rewrite_pairs)."""
    if name not in EXAMPLES:
        raise KeyError(f"no example query {name!r}; choose one of {', '.join(EXAMPLES)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    if locale is not None and not isinstance(locale, str):
        raise TypeError(f"locale must be a string or None, got {locale!r}")
    query = EXAMPLES[name]
    values = {"locale": locale, "limit": limit}
    params = {p: values[p] for p in query.params}
    if isinstance(target, duckdb.DuckDBPyConnection):
        return target.execute(query.sql, params).df()
    con = connect(target)
    try:
        return con.execute(query.sql, params).df()
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    """python -m selflearn.catalog OUT_DIR [QUERY] [--locale L] [--limit N]: list the example queries or run one."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m selflearn.catalog", description=main.__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("query", nargs="?", choices=list(EXAMPLES))
    parser.add_argument("--locale")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)
    if args.query is None:
        for q in EXAMPLES.values():
            print(f"{q.name:30} {q.question}")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(run_query(args.out_dir, args.query, locale=args.locale, limit=args.limit).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

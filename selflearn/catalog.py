"""A DuckDB catalog over one run's outputs, and named example queries inside it.

    write_catalog(out_dir) -> out_dir/catalog.duckdb     views from sql/views.sql over every output, plus one
                                                        table macro per example query
    connect(out_dir) -> a read-only connection that answers from any working directory
    run_query(out_dir, "top_rewrite_pairs", locale="de-DE", limit=5) -> pandas.DataFrame

The catalog holds views and macros only (no data), so it is small and rewritten at the end of every run. It views
released files only (and the manifest): the quarantine is private to operators and appears as counts per reason.

The catalog travels with its folder. View paths are relative to the --out folder (DuckDB resolves a relative
path against the working directory, or against the `file_search_path` setting when one is set), so after `mv`
or `cp -r` of the folder, plain DuckDB opened inside it answers every view, and `connect()` answers from
anywhere by setting `file_search_path` to the folder. The paths name the catalog's own run folder
(`.runs/<run-id>/...`, see selflearn.outdir), not the `training/` links, so an open catalog reads one run
throughout; the relative part is escaped for DuckDB's glob syntax, and the folder itself, being the search path,
is taken literally: an --out named `run[1]`, `r?n` or `run*x` reads its own files, never a sibling's.

Example queries are table macros in the catalog (`select * from top_rewrite_pairs(for_locale := 'de-DE',
max_rows := 5)`), so a plain DuckDB user has them too; `run_query` calls the same macros with the caller's
values as prepared parameters: nothing a caller passes is ever spliced into SQL text.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from selflearn import contract, outdir
from selflearn.layout import CATALOG_FILE, RUN_FILES, RunLayout
from selflearn.sqlfiles import SQL_DIR
from selflearn.stages import emerging, history

VIEWS_SQL = SQL_DIR / "views.sql"
_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_PARAM = re.compile(r"\$([a-z_]+)")
# example-query parameter -> (its macro parameter, default). Macro parameters are substituted into the body by
# name, so they must not be a column's name (`locale`) or a keyword (`limit`).
MACRO_PARAMS = {"locale": ("for_locale", "null"), "limit": ("max_rows", "20")}
_GLOB_CHAR = re.compile(r"([\[*?])")

MASSIVE_COLUMNS = {
    "id": "VARCHAR", "locale": "VARCHAR", "partition": "VARCHAR", "scenario": "VARCHAR", "intent": "VARCHAR",
    "utt": "VARCHAR", "annot_utt": "VARCHAR",
    "weak_label": "STRUCT(confidence DOUBLE, source VARCHAR, n_users BIGINT, n_events BIGINT, "
                  "target_utt VARCHAR, evidence VARCHAR)",
}


# ------------------------------------------------------------------------------------------------ the catalog

class CatalogError(RuntimeError):
    """DuckDB could not build the catalog; the message is one line."""


def write_catalog(out_dir: str | Path, run_dir: str | Path | None = None) -> Path:
    """Write the catalog of the run in `run_dir` (default: the run published in out_dir) into that run folder,
    atomically (built under a temporary name, then renamed), and return its path. Views over the run's
    outputs read run_dir only (the quarantine is private: the catalog shows its counts from the manifest) and
    name it relative to out_dir. Raises FileNotFoundError when there is no finished run (no manifest.json),
    CatalogError when DuckDB fails."""
    out = Path(out_dir).resolve()
    run = Path(run_dir).resolve() if run_dir is not None else outdir.published_dir(out)
    if not RunLayout(out, run).manifest.is_file():
        raise FileNotFoundError(f"{out} has no manifest.json: run `selflearn run --out {out}` first")
    sources = _sources(run, out)
    views = _PLACEHOLDER.sub(lambda m: sources[m.group(1)], VIEWS_SQL.read_text(encoding="utf-8"))
    path = RunLayout(out, run).catalog
    tmp = run / f".{CATALOG_FILE}.{os.getpid()}.tmp"
    # Built in a private temporary folder, then copied beside the target and renamed into place: DuckDB
    # (2.0) cannot write a database whose path holds a '?' (it derives the WAL's name as if from a URL).
    with tempfile.TemporaryDirectory(prefix="selflearn-catalog-") as build:
        # DuckDB checks a view's files when it creates it, and the views name them relative to the out folder;
        # it is reached through a link because file_search_path splits its value at commas
        alias = Path(build) / "out"
        alias.symlink_to(out, target_is_directory=True)
        try:
            con = duckdb.connect(str(Path(build) / CATALOG_FILE))
            try:
                con.execute("set file_search_path = $folder", {"folder": str(alias)})
                con.execute(views)
                con.execute(macros_sql())
            finally:
                con.close()
        except duckdb.Error as exc:
            raise CatalogError(f"cannot write the catalog of {out}: {_one_line(exc)}") from None
        try:
            shutil.copyfile(Path(build) / CATALOG_FILE, tmp)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def connect(out_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to out_dir/catalog.duckdb (written first if missing) whose relative view paths
    resolve against out_dir, whatever the working directory."""
    folder = Path(out_dir).resolve()
    path = RunLayout(folder).catalog
    if not path.is_file():
        write_catalog(out_dir)
    if "," in str(folder) and not Path.cwd().resolve() == folder:
        raise CatalogError(f"DuckDB cannot search {folder} for the catalog's files: its path holds a comma "
                           f"(file_search_path is a comma-separated list); open catalog.duckdb from inside "
                           f"that folder, or run `selflearn catalog --query NAME --out {out_dir}`")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise CatalogError(f"cannot open {path}: {_one_line(exc)} (rewrite it with `selflearn catalog --out "
                           f"{out_dir}`)") from None
    if "," not in str(folder):
        con.execute("set file_search_path = $folder", {"folder": str(folder)})
    return con


def _remove(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)


def _literal(path: Path, pattern: str = "") -> str:
    """A DuckDB string literal naming `path` exactly, plus an optional glob `pattern` below it. DuckDB globs
    every path it reads, so `[`, `*` and `?` in the folder are escaped as one-character classes."""
    escaped = _GLOB_CHAR.sub(r"[\1]", path.as_posix())
    return "'" + (escaped + pattern).replace("'", "''") + "'"


def _empty(schema: pa.Schema | dict[str, str]) -> str:
    """An empty relation with the output's columns, for an output the run did not write."""
    if isinstance(schema, pa.Schema):
        rel = duckdb.connect().from_arrow(schema.empty_table())
        schema = dict(zip(rel.columns, (str(t) for t in rel.dtypes)))
    cols = ", ".join(f'cast(null as {t}) as "{n}"' for n, t in schema.items())
    return f"(select {cols} where false)"


def _sources(run: Path, out: Path) -> dict[str, str]:
    """Table sources over the run's files, named relative to `out` (absolute for a run folder outside it)."""
    base = run.relative_to(out) if run.is_relative_to(out) else run

    def parquet(folder: Path, rel: str, schema: pa.Schema) -> str:
        parent, _, pattern = rel.rpartition("/")
        found = sorted(folder.glob(rel))
        return (f"read_parquet({_literal(base / parent, '/' + pattern)}, union_by_name = true)" if found
                else _empty(schema))

    columns = ", ".join(f"'{n}': '{t}'" for n, t in MASSIVE_COLUMNS.items())
    layout = RunLayout(run, run)
    labels = layout.relative(layout.training_labels) + "/*.parquet"
    massive = layout.training_massive_dir
    return {
        "weak_labels": parquet(run, labels, contract.WEAK_LABELS_SCHEMA),
        "rewrite_pairs": parquet(run, RUN_FILES["rewrite_pairs"], contract.REWRITE_PAIRS_SCHEMA),
        "graph_nodes": parquet(run, RUN_FILES["graph_nodes"], contract.NODES_SCHEMA),
        "graph_edges": parquet(run, RUN_FILES["graph_edges"], contract.EDGES_SCHEMA),
        "label_history": parquet(run, RUN_FILES["label_history"], history.HISTORY_SCHEMA),
        "label_changes": parquet(run, RUN_FILES["label_changes"], history.CHANGES_SCHEMA),
        "emerging_phrasings": parquet(run, RUN_FILES["emerging_phrasings"], emerging.EMERGING_SCHEMA),
        "massive": (f"read_json({_literal(base / layout.relative(massive), '/*/*.jsonl')}, "
                    f"format = 'newline_delimited', columns = {{{columns}}})" if any(massive.glob("*/*.jsonl"))
                    else _empty(MASSIVE_COLUMNS)),
        "run_manifest": f"read_json({_literal(base / layout.relative(layout.manifest))}, format = 'auto', "
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

    def _macro_params(self) -> list[str]:
        return [p for p in MACRO_PARAMS if p in self.params]

    def macro(self) -> str:
        """`create macro NAME(for_locale := null, max_rows := 20) as table ...`: the query inside the catalog."""
        signature = ", ".join(f"{MACRO_PARAMS[p][0]} := {MACRO_PARAMS[p][1]}" for p in self._macro_params())
        body = _PARAM.sub(lambda m: MACRO_PARAMS[m.group(1)][0], self.sql)
        return f"create or replace macro {self.name}({signature}) as table {body.strip()};"

    def call(self) -> str:
        """The macro called with the caller's values as prepared parameters ($locale, $limit)."""
        args = ", ".join(f"{MACRO_PARAMS[p][0]} := ${p}" for p in self._macro_params())
        return f"select * from {self.name}({args})"

    def usage(self) -> str:
        args = ", ".join(f"{MACRO_PARAMS[p][0]} := {MACRO_PARAMS[p][1]}" for p in self._macro_params())
        return f"select * from {self.name}({args})"


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
select locale, reason, "rows" as log_rows
from quarantine_summary
where $locale is null or locale = $locale
order by log_rows desc, locale, reason
limit $limit"""),
]}


def macros_sql() -> str:
    """The example queries as table macros, and a view `example_queries` listing them (name, question, usage),
    so that a plain DuckDB user finds them with `from example_queries`."""
    rows = ", ".join("(" + ", ".join(_quote(v) for v in (q.name, q.question, q.usage())) + ")"
                     for q in EXAMPLES.values())
    listing = (f"create or replace view example_queries as select * from (values {rows}) "
               f"as q(name, question, usage);")
    return "\n".join([*(q.macro() for q in EXAMPLES.values()), listing])


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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
        return _execute(target, query, params)
    con = connect(target)
    try:
        return _execute(con, query, params)
    finally:
        con.close()


def _execute(con: duckdb.DuckDBPyConnection, query: ExampleQuery, params: dict) -> pd.DataFrame:
    try:
        return con.execute(query.call(), params).df()
    except duckdb.Error as exc:  # e.g. a file that is gone (a pruned run folder), a catalog older than its macros
        raise CatalogError(f"example query {query.name} failed: {_one_line(exc)} (open the catalog from inside "
                           "its --out folder, or rewrite it with `selflearn catalog --out DIR`)") from None


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
    try:
        result = run_query(args.out_dir, args.query, locale=args.locale, limit=args.limit)
    except (CatalogError, FileNotFoundError) as exc:
        print(f"selflearn.catalog: {exc}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(result.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

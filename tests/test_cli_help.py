"""Every command says what it does and every option what it takes: `selflearn COMMAND --help` is the manual."""
from __future__ import annotations

import argparse

from selflearn.cli import _parser


def subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_description_and_every_option_help():
    commands = subcommands()
    assert set(commands) == {"run", "simulate", "eval", "catalog"}
    for name, parser in commands.items():
        assert parser.description and len(parser.description) > 40, name
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"selflearn {name} {'/'.join(action.option_strings)} has no help text"


def test_examples_need_no_duckdb_command():
    assert "duckdb /" not in _parser().epilog


def test_without_pyspark_the_spark_engine_says_which_extra_to_install(monkeypatch, tmp_path, capsys):
    """PySpark is the `spark` extra: a DuckDB-only install asked for Spark gets advice, not a traceback."""
    import sys

    import pytest

    from selflearn.cli import main
    from selflearn.engines import EngineUnavailable, get_engine

    monkeypatch.setitem(sys.modules, "pyspark", None)  # what `import pyspark` meets where it is not installed
    with pytest.raises(EngineUnavailable, match=r"selflearn\[spark\]"):
        get_engine("spark", master="local[1]")
    logs = tmp_path / "logs"
    logs.mkdir()
    assert main(["run", "--logs", str(logs), "--out", str(tmp_path / "out"), "--engine", "spark"]) == 2
    assert "pip install 'selflearn[spark]'" in capsys.readouterr().err

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

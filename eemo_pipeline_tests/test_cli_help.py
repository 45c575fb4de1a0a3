"""Every ``eemo`` command has a one-line description and a working ``--help`` (found from the parser itself,
so a command added later is covered too)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from eemo_pipeline.cli import build_parser, main


def _commands() -> dict[str, str]:
    """Command name -> its one-line help, as ``eemo --help`` lists them."""
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {choice.dest: choice.help or "" for choice in action._choices_actions}


def test_every_command_has_a_one_line_description() -> None:
    commands = _commands()
    assert {"sample", "demo", "serve-offline", "sql", "status"} <= set(commands)
    for name, summary in commands.items():
        assert summary.strip(), f"eemo {name} has no one-line help"
        assert "\n" not in summary and len(summary) <= 100, f"eemo {name}: help should be one short line: {summary!r}"


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: eemo {command}")
    assert "-h, --help" in out
    assert len(out.split("\n\n")) >= 2, f"eemo {command} --help has no description"


def test_top_level_help_lists_every_command() -> None:
    eemo = Path(sys.executable).with_name("eemo")
    done = subprocess.run([str(eemo), "--help"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    for name, summary in _commands().items():
        assert name in done.stdout and summary.split()[0] in done.stdout

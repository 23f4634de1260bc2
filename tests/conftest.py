"""Fixtures shared by the test modules (see tests/README.md for how the suite is organised)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass
class CliResult:
    """What one ``celltwin`` command did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run ``celltwin ARGS...`` in this process, through :func:`celltwin.cli.main.main`.

    The exit code is what the console script would exit with: ``main``'s return value, or
    argparse's ``SystemExit`` code for usage errors and ``--help``. A subprocess adds only an
    interpreter start; the tests that need a real process (console script, signals, a fresh
    interpreter) start one themselves.
    """
    from celltwin.cli.main import main

    def run(*args) -> CliResult:
        capsys.readouterr()   # what the test printed before is not the command's
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run

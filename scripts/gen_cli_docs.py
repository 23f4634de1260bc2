"""Write docs/cli.md, the reference of every `celltwin` command, from the parsers themselves.

    python scripts/gen_cli_docs.py           # rewrite docs/cli.md
    python scripts/gen_cli_docs.py --check   # exit 1 when docs/cli.md is out of date

tests/test_docs.py fails when the file differs from what this writes: a new option, a changed
default or help text means running this script.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_page import write_or_check  # noqa: E402  (a sibling script)

OUT = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = "100"   # usage lines are wrapped at this many columns, whatever the terminal


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser, help)`` of every command and subcommand, depth first, in --help order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path + (name,), sub, helps.get(name) or ""
                yield from commands(sub, path + (name,))


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices is not None and not isinstance(action.choices, dict):
        return "{" + ",".join(str(choice) for choice in action.choices) + "}"
    metavar = action.metavar or (action.dest.upper() if action.option_strings else action.dest)
    if isinstance(metavar, tuple):
        return " ".join(metavar)
    return f"{metavar} ..." if action.nargs in ("+", "*") else str(metavar)


def _default(action: argparse.Action) -> str:
    default = action.default
    if action.nargs == 0 or default is None or default == argparse.SUPPRESS or default == []:
        return ""
    return f"`{default}`"


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.dest}`"
        required = " (required)" if action.required and action.option_strings else ""
        value = _value(action)
        rows.append(f"| {name}{required} | {_cell(value) and f'`{_cell(value)}`'} | "
                    f"{_default(action)} | {_cell((action.help or '').replace('%%', '%'))} |")
    if not rows:
        return []
    return ["| option | value | default | what |", "| --- | --- | --- | --- |", *rows, ""]


def render() -> str:
    """The text of docs/cli.md."""
    os.environ["COLUMNS"] = WIDTH   # argparse wraps usage at the terminal's width
    from celltwin.cli.main import build_parser

    parser = build_parser()
    lines = ["# `celltwin` command reference", "",
             "Generated from the parsers by `python scripts/gen_cli_docs.py`; do not edit by "
             "hand (`tests/test_docs.py` fails when it is out of date). Every command prints "
             "the same with `--help`. Bad input is one `error:` line per problem and exit "
             "code 2.", "", "| command | what |", "| --- | --- |"]
    listed = list(commands(parser))
    for path, _, summary in listed:
        anchor = "celltwin-" + "-".join(path)
        lines.append(f"| [`celltwin {' '.join(path)}`](#{anchor}) | {_cell(summary)} |")
    lines.append("")
    for path, sub, summary in listed:
        lines += [f"## celltwin {' '.join(path)}", ""]
        if sub.description or summary:
            lines += [_cell(sub.description or summary), ""]
        lines += ["```", sub.format_usage().strip(), "```", ""]
        lines += _options(sub)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUT, render, "gen_cli_docs.py",
                          argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

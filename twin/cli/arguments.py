"""The one set of argparse types and the parser class every ``celltwin`` subcommand uses.

Every value a command line carries is checked here, before a command starts: numbers are
finite and inside bounds that catch typing mistakes (a negative seed, zero episodes, a grid of
a hundred million points), paths are of the kind the option wants (a folder to write into is
not an existing file, a file to write is not an existing folder, a file to read exists and is
readable). A refused value is one ``error:`` line naming the option, and exit code 2, as every
other bad input of celltwin: :class:`CliParser` replaces argparse's usage-and-message block by
that line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

EXIT_USAGE = 2
MAX_SEED = 2**32 - 1        # numpy's legacy seeding (SB3's set_random_seed) takes no more


class CliParser(argparse.ArgumentParser):
    """argparse, with a usage error as one ``error:`` line and exit 2 (no usage block).

    Subparsers are made of the parser's own class, so every subcommand reports alike.
    """

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    def missing_choice(self, what: str, choices) -> int:
        """A group called without its subcommand: the help on stdout, one ``error:`` line,
        and the usage exit code."""
        self.print_help()
        print(f"error: {self.prog}: which {what}? one of: {', '.join(choices)}", file=sys.stderr)
        return EXIT_USAGE


def group_handler(parser: CliParser, commands, what: str = "action"):
    """The handler of a command group (``celltwin cell``) called without a subcommand;
    ``commands`` is what the group's ``add_subparsers`` returned."""
    return lambda args: parser.missing_choice(what, list(commands.choices))


# ----------------------------------------------------------------------------- numbers
def _format(value: float) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bounded(text: str, kind: type, low: float | None, high: float | None,
             low_open: bool = False):
    try:
        # Python refuses integers of more than 4300 digits with a ValueError too.
        value = int(text.strip()) if kind is int else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'an integer' if kind is int else 'a number'}: '{_format(text)}'") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: '{_format(text)}'")
    if low is not None and (value < low or (low_open and value == low)):
        raise argparse.ArgumentTypeError(
            f"must be {'>' if low_open else '>='} {_format(low)}, got {_format(value)}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be <= {_format(high)}, got {_format(value)}")
    return value


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer in ``[low, high]`` (either bound may be ``None``)."""
    def parse(text: str) -> int:
        return _bounded(text, int, low, high)
    parse.__name__ = "integer"
    return parse


def number(low: float | None = None, high: float | None = None, *,
           low_open: bool = False) -> Callable[[str], float]:
    """argparse type: a finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    def parse(text: str) -> float:
        return _bounded(text, float, low, high, low_open)
    parse.__name__ = "number"
    return parse


def count(high: int) -> Callable[[str], int]:
    """argparse type: a count from 1 to ``high`` (a bound on typing mistakes, not on celltwin)."""
    return integer(1, high)


seed = integer(0, MAX_SEED)
port = integer(0, 65535)   # a TCP port; 0 lets the system pick a free one
positive_int = integer(1)
non_negative_int = integer(0)
positive_float = number(0.0, low_open=True)
non_negative_float = number(0.0)
fraction = number(0.0, 1.0)


def name_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated names (letters, digits, ``_``); the command checks that
    each names something it knows."""
    names = tuple(part.strip() for part in text.split(","))
    if not text.strip() or not all(part and part.replace("_", "").isalnum() and part.isascii()
                                   for part in names):
        raise argparse.ArgumentTypeError(f"invalid name list: {text[:80]!r} (expected names "
                                         "separated by commas, e.g. position_gain,latency_steps)")
    return tuple(dict.fromkeys(names))


# ----------------------------------------------------------------------------- paths
def _path_type(check: Callable[[Path], None]) -> Callable[[str], Path]:
    """An argparse type that applies ``check`` to the path; a file system that refuses even
    to look (a name too long, a loop of links) is a refused value too."""
    def parse(text: str) -> Path:
        if not text:
            raise argparse.ArgumentTypeError("an empty path")
        path = Path(text)
        try:
            check(path)
        except OSError as error:
            raise argparse.ArgumentTypeError(f"'{_format(text)}': {error.strerror}") from None
        return path
    parse.__name__ = check.__name__
    return parse


def _creatable(path: Path) -> None:
    """Refuse a path that cannot be created: an ancestor is a file, or the nearest existing
    ancestor is a folder this user cannot write into."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"'{path}' cannot be created: '{parent}' is "
                                                 "a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise argparse.ArgumentTypeError(f"'{path}' cannot be created: folder "
                                                 f"'{parent}' is not writable")
            return


@_path_type
def output_dir(path: Path) -> None:
    """argparse type: a folder to write into: new, or an existing folder (not a file)."""
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is an existing file, not a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder '{path}' is not writable")
    _creatable(path)


@_path_type
def output_file(path: Path) -> None:
    """argparse type: a file to write: new, or an existing regular file (not a folder, and
    not a device: writing replaces the file)."""
    if str(path).endswith(("/", os.sep)) or path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is a folder, not a file")
    if path.exists() and not path.is_file():
        raise argparse.ArgumentTypeError(f"'{path}' is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"file '{path}' is not writable")
    _creatable(path)


@_path_type
def input_file(path: Path) -> None:
    """argparse type: an existing, readable regular file (a folder, a device or a pipe is
    refused: reading one would fail or never end)."""
    if not path.exists():
        raise argparse.ArgumentTypeError(f"file not found: '{path}'")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"'{path}' is a folder, not a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"'{path}' is not a regular file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"file '{path}' is not readable")


def input_file_text(text: str) -> str:
    """argparse type: :func:`input_file`, as the text a training config holds."""
    return str(input_file(text))


__all__ = ["CliParser", "EXIT_USAGE", "MAX_SEED", "count", "fraction", "group_handler",
           "input_file", "input_file_text", "integer", "non_negative_float", "non_negative_int",
           "number", "output_dir", "output_file", "port", "positive_float", "positive_int",
           "seed"]

"""Typed errors shared by every celltwin package.

Every error a user can cause is a :class:`CelltwinError` carrying one or more
:class:`Problem` records: where (file, line, dotted path), what arrived and what was
expected. The CLI prints one line per problem and exits 2; library users can inspect
``error.problems`` instead of parsing messages. This module imports nothing heavy so the
deployment adapter can use it on a controller.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Problem:
    """One thing wrong with something a user wrote or asked for.

    Attributes:
        message: what is wrong, in words.
        path: dotted path inside the document (``robots[0].model``), or ``""``.
        file: the file the problem is in, or ``None``.
        line: 1-based line in ``file`` where the parser knows it, or ``None``.
        value: the offending value (``None`` when there is none to show).
        expected: what would have been accepted, in words.
    """

    message: str
    path: str = ""
    file: str | None = None
    line: int | None = None
    value: Any = None
    expected: str | None = None

    def __str__(self) -> str:
        where = self.file or ""
        if self.file and self.line:
            where = f"{self.file}:{self.line}"
        head = ": ".join(part for part in (where, self.path) if part)
        text = f"{head}: {self.message}" if head else self.message
        if self.expected:
            text += f" (expected {self.expected})"
        return printable(text)


MAX_LINE_CHARS = 2000
"""Longest problem line printed; past it, the line ends with how much was cut."""


def printable(text: str) -> str:
    """``text`` as one printable line: control characters and line breaks escaped (``\\x1b``,
    ``\\n``), and cut at :data:`MAX_LINE_CHARS`. A value from a hostile file can hold a
    newline (a second, forged ``error:`` line) or a terminal escape sequence."""
    if not text.isprintable():
        text = "".join(char if char.isprintable() else char.encode("unicode_escape").decode()
                       for char in text)
    if len(text) > MAX_LINE_CHARS:
        text = f"{text[:MAX_LINE_CHARS]}... ({len(text) - MAX_LINE_CHARS} characters more)"
    return text


class CelltwinError(Exception):
    """Base of every error caused by user input; holds at least one :class:`Problem`."""

    def __init__(self, problems: Problem | str | Sequence[Problem]):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        if not self.problems:
            raise ValueError("a CelltwinError needs at least one problem")
        super().__init__("\n".join(str(p) for p in self.problems))


class CellSpecError(CelltwinError):
    """A cell layout file is malformed or refers to things that do not exist."""


class PhysicsParamsError(CelltwinError):
    """A physics parameter file or override is malformed or names unknown bodies/joints."""


class WorldError(CelltwinError):
    """A twin could not be built or was asked about a body, link or joint it does not have."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    Only ``choices`` are ever suggested. A word close to one word of longer names
    (``frictoin`` to ``lateral_friction``) suggests the names holding that word.
    """
    word, choices = str(word), [str(choice) for choice in choices]
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    holders: dict[str, list[str]] = {}
    for choice in choices:
        words = re.split(r"[_./-]", choice)
        for part in words if len(words) > 1 else ():
            if len(part) >= 4 and choice not in holders.setdefault(part, []):
                holders[part].append(choice)
    close = difflib.get_close_matches(word, holders, n=1, cutoff=0.75) if len(word) >= 4 else []
    if not close:
        return ""
    names = [f"'{name}'" for name in holders[close[0]]]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"; did you mean {listed}?"


def one_of(choices: Iterable[str]) -> str:
    """Format an ``expected`` text listing the accepted names."""
    return "one of: " + ", ".join(sorted(choices))


class EnvError(CelltwinError):
    """An environment was asked for with a task, cell, robot or option that cannot work."""


def named(table, name: str | None, what: str, error: type[CelltwinError] = WorldError):
    """``table[name]``; an unknown name is ``error`` naming the names there are (with a
    did-you-mean). Both twins, pybullet's and MuJoCo's, look up bodies, robots and parts so.
    ``name`` ``None`` means the only entry, and is the error when there are several."""
    if name is None:
        if len(table) != 1:
            raise error(Problem(f"this cell has several {what}s; name one",
                                expected=one_of(table)))
        return next(iter(table.values()))
    try:
        return table[name]
    except KeyError:
        raise error(Problem(f"no {what} named '{name}'{did_you_mean(name, table)}",
                            value=name, expected=one_of(table))) from None

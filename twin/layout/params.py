"""Layout parameters addressed by dotted path, and the grids a sweep runs over them.

A path names one number of a cell as the cell file writes it: ``robots[0].base.xyz[0]``,
``conveyors[0].speed_mps``, ``bins[1].pose.xyz[1]``. Setting one goes through the cell's own
validation (``CellSpec`` dumped to plain data, changed, validated again), so a value the cell
format rejects is reported exactly as in a cell file, with its path.

``--param PATH=LO:HI:N`` gives N evenly spaced values from LO to HI (``PATH=V`` one value);
the grid is every combination of the parameters' values.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.layout.jobs import LayoutError
from celltwin.spec import CellSpec
from celltwin.spec import validate_cell_data

_PATH = re.compile(r"^[A-Za-z_]\w*(\[\d+\])*(\.[A-Za-z_]\w*(\[\d+\])*)*$")
_TOKEN = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")
MAX_POINTS = 10_000
MAX_COUNT = 1_000   # values of one parameter (a grid beyond MAX_POINTS is refused anyway)


@dataclass(frozen=True)
class SweepParam:
    """One swept parameter: its path and the values it takes."""

    path: str
    values: tuple[float, ...]


def parse_param(text: str) -> SweepParam:
    """Parse ``PATH=LO:HI:N`` or ``PATH=VALUE``.

    Raises:
        LayoutError: malformed text, with what was expected.
    """
    where = f"--param {text}"
    if "=" not in text:
        raise LayoutError(Problem("expected PATH=LO:HI:N", path=where, value=text,
                                  expected="e.g. conveyors[0].speed_mps=0.05:0.15:3"))
    path, _, spec = text.partition("=")
    path, spec = path.strip(), spec.strip()
    if not _PATH.match(path):
        raise LayoutError(Problem(f"'{path}' is not a dotted path", path=where, value=path,
                                  expected="names and [index] joined by dots, "
                                           "e.g. robots[0].base.xyz[0]"))
    fields = spec.split(":")
    try:
        numbers = [float(field) for field in fields[:2]]
        count = int(fields[2]) if len(fields) == 3 else 1
    except ValueError:
        numbers, count = [], 0
    if len(fields) not in (1, 3) or not numbers or not all(map(math.isfinite, numbers)) \
            or count < 1:
        raise LayoutError(Problem(f"cannot read the values '{spec}'", path=where, value=spec,
                                  expected="LO:HI:N with numbers LO, HI and a count N >= 1, "
                                           "or one number"))
    if count > MAX_COUNT:
        raise LayoutError(Problem(f"{count} values of one parameter", path=where, value=spec,
                                  expected=f"a count N from 1 to {MAX_COUNT}"))
    if len(fields) == 1:
        return SweepParam(path, (numbers[0],))
    values = np.linspace(numbers[0], numbers[1], count)
    return SweepParam(path, tuple(round(float(v), 12) for v in values))


def tokens(path: str) -> list[str | int]:
    """``robots[0].base.xyz[0]`` -> ``['robots', 0, 'base', 'xyz', 0]``."""
    return [name if name else int(index) for name, index in _TOKEN.findall(path)]


def _locate(data: dict, path: str) -> tuple[Any, str | int, Any]:
    """The container, key and current value a path points at in a dumped cell."""
    node: Any = data
    walked = ""
    parts = tokens(path)
    for position, token in enumerate(parts):
        if isinstance(token, str):
            if not isinstance(node, dict):
                raise _path_error(path, f"{walked or 'the cell'} is a list, not a mapping; "
                                        f"index it with [n] before '.{token}'")
            if token not in node:
                # Suggest only keys the path can go on through: a number itself where the
                # path ends, something holding numbers before that. Any other key would be
                # a suggestion that then fails.
                last = position == len(parts) - 1
                usable = [key for key, value in node.items()
                          if (_is_number(value) if last else _holds_number(value))]
                raise _path_error(path, f"{walked or 'the cell'} has no key '{token}'"
                                  + did_you_mean(token, usable),
                                  expected=one_of(usable) if usable else
                                  "a path to a number of the cell")
            here = f"{walked}.{token}" if walked else token
        else:
            if not isinstance(node, list):
                kind = "not set" if node is None else "not a list"
                raise _path_error(path, f"{walked} is {kind}; it cannot take [{token}]")
            if token >= len(node):
                raise _path_error(path, f"{walked} has {len(node)} entries; [{token}] is out "
                                        "of range", expected=f"an index 0..{len(node) - 1}"
                                  if node else "a list that is not empty")
            here = f"{walked}[{token}]"
        if position == len(parts) - 1:
            return node, token, node[token]
        node = node[token]
        walked = here
    raise _path_error(path, "empty path")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _holds_number(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_holds_number(item) for item in value.values())
    if isinstance(value, list):
        return any(_holds_number(item) for item in value)
    return _is_number(value)


def _path_error(path: str, message: str, expected: str | None = None) -> LayoutError:
    return LayoutError(Problem(message, path=f"--param {path}", value=path, expected=expected))


def check_param(cell: CellSpec, param: SweepParam) -> None:
    """Raise LayoutError unless ``param.path`` names a number of ``cell``."""
    data = cell.model_dump(mode="json")
    _, _, value = _locate(data, param.path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = ("not set in this cell" if value is None else
                "a mapping" if isinstance(value, dict) else
                "a list" if isinstance(value, list) else f"{type(value).__name__} {value!r}")
        raise _path_error(param.path, f"{param.path} is {kind}, not a number",
                          expected="the path of one number, e.g. robots[0].base.xyz[0]")


def with_values(cell: CellSpec, values: dict[str, float], name: str | None = None) -> CellSpec:
    """A copy of ``cell`` with the numbers at the given paths set (validated like a file).

    Raises:
        LayoutError: a path does not exist or is not a number.
        CellSpecError: a value the cell format rejects, with its dotted path.
    """
    data = cell.model_dump(mode="json")
    for path, value in values.items():
        container, key, current = _locate(data, path)
        if isinstance(current, bool) or not isinstance(current, (int, float)):
            check_param(cell, SweepParam(path, (value,)))
        if isinstance(current, int) and float(value).is_integer():
            value = int(value)  # integer fields (substeps, count) stay integers
        container[key] = value
    if name is not None:
        data["name"] = name
    return validate_cell_data(data)


def grid(params: list[SweepParam]) -> list[dict[str, float]]:
    """Every combination of the parameters' values, first parameter slowest."""
    paths = [param.path for param in params]
    if len(set(paths)) != len(paths):
        repeated = sorted({path for path in paths if paths.count(path) > 1})
        raise LayoutError(Problem(f"parameter given twice: {', '.join(repeated)}",
                                  path="--param", expected="each path once"))
    size = math.prod(len(param.values) for param in params)
    if size > MAX_POINTS:
        raise LayoutError(Problem(f"the grid has {size} points", path="--param",
                                  expected=f"at most {MAX_POINTS}"))
    return [dict(zip(paths, combo)) for combo in itertools.product(*(p.values for p in params))]

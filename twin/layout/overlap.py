"""Static bodies of a layout that interpenetrate as built: what `layout run`, `compare` and
`sweep` refuse before simulating.

Bullet never collides two fixed bodies while stepping, so a fixture built through a table, or
a robot base inside a conveyor, runs as if nothing were wrong and its KPIs look fine. Each pair
is measured right after the run world is built (``getClosestPoints``, see
:func:`celltwin.check.check_interpenetrations`), and reported with both names and the depth.
"""

from __future__ import annotations

from celltwin.check import check_interpenetrations
from celltwin.core.errors import Problem
from celltwin.layout.jobs import LayoutError
from celltwin.layout.pool import run_cell
from celltwin.spec import CellSpec
from celltwin.world import World

ALLOW_HINT = "bodies apart as built (move one), or --allow-overlap"


class OverlapError(LayoutError):
    """Bodies of a layout overlap as built; one problem per overlapping pair."""


def overlap_problems(world, cell_name: str) -> list[Problem]:
    """One problem per pair of bodies of ``world`` that overlap deeper than the check's
    tolerance (2 mm), deepest first."""
    found = sorted(check_interpenetrations(world), key=lambda pair: -pair.depth_m)
    return [Problem(f"cell '{cell_name}': bodies '{pair.body_a}' and '{pair.body_b}' overlap "
                    f"by {pair.depth_m * 1000:.1f} mm as built",
                    value=round(pair.depth_m, 5), expected=ALLOW_HINT) for pair in found]


def check_overlaps(world, cell_name: str) -> None:
    """Raise :class:`OverlapError` if bodies of ``world`` overlap."""
    problems = overlap_problems(world, cell_name)
    if problems:
        raise OverlapError(problems)


def check_cell_overlaps(cell: CellSpec, jobs) -> None:
    """Build the run world of ``cell`` (as :func:`celltwin.layout.runner.run_layout` does)
    and raise :class:`OverlapError` if its bodies overlap."""
    with World(run_cell(cell, jobs)) as world:
        check_overlaps(world, cell.name)

"""Which robot picks where and places where: the target naming convention of layout runs.

A robot's job is one *pick* target and one *place* target, found by name in the cell:

- pick targets are the targets whose name starts with ``pick``, place targets those starting
  with ``place``; a target with ``robot:`` set belongs to that robot only, one without it to
  every robot. A robot without a pick target picks over the centre of each region parts spawn
  in on a body (``pick_<region>``); one without a place target places over the first tray,
  else bin (``place_<bin>``, 5 cm above its floor) (:mod:`celltwin.spec.conventions`);
- a pick target is fed by the part type whose spawn region lies on the same body as the
  target's ``relative_to`` (a conveyor: parts arrive on the belt; a bin: parts wait in the
  bin; any other body: parts wait on it). A pick target with no part type spawning on its body
  cannot be fed and is not chosen;
- when a robot has several fed pick targets, a conveyor-fed one wins (parts arriving is what a
  run measures), then the first in file order; ``--pick`` names one instead;
- the first place target of the robot is used unless ``--place`` names one.

Pick and place targets must be relative to fixed bodies (equipment, conveyors, bins) or the
world: the part pool of a run replaces the cell's parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from celltwin.core.errors import CelltwinError, Problem, did_you_mean, one_of
from celltwin.spec import CellSpec, SpawnRegionSpec, TargetSpec
from celltwin.spec.conventions import (PICK_PREFIX, PLACE_PREFIX, default_place_target,
                                       pick_target_over, robot_targets)

FeedKind = Literal["belt", "bin", "fixture"]


class LayoutError(CelltwinError):
    """A layout command was asked for something the cell cannot do (no targets, bad names)."""


@dataclass(frozen=True)
class Feed:
    """Where and how parts of one type arrive.

    Attributes:
        region: the spawn region parts appear in (at its centre).
        part: the part type (a spec entry of ``cell.parts``).
        kind: ``belt`` (region on a conveyor), ``bin`` (region on a bin) or ``fixture``.
        conveyor: the conveyor's name for a belt feed, else ``None``.
    """

    region: SpawnRegionSpec
    part: object
    kind: FeedKind
    conveyor: str | None = None

    @property
    def name(self) -> str:
        return self.region.name


@dataclass(frozen=True)
class Job:
    """One robot's work: pick parts of ``feed`` at ``pick``, place them at ``place``."""

    robot: str
    pick: TargetSpec
    place: TargetSpec
    feed: Feed


def find_jobs(cell: CellSpec, pick: str | None = None, place: str | None = None) -> list[Job]:
    """Return one job per robot that has a fed pick target and a place target.

    Args:
        cell: the cell.
        pick: name of the pick target to use (for every robot it belongs to).
        place: name of the place target to use.

    Raises:
        LayoutError: a named target does not exist or is not a pick/place target, or no robot
            has a job; every problem at once.
    """
    targets = {target.name: target for target in cell.targets}
    problems = []
    for option, name, prefix in (("--pick", pick, "pick"), ("--place", place, "place")):
        if name is None:
            continue
        if name not in targets:
            named = [t for t in targets if t.startswith(prefix)]
            problems.append(Problem(f"cell '{cell.name}' has no target '{name}'"
                                    + did_you_mean(name, targets), path=option, value=name,
                                    expected=one_of(named) if named
                                    else f"a target named {prefix}*"))
    if problems:
        raise LayoutError(problems)
    feeds = _feeds(cell)
    jobs = []
    for robot in cell.robots:
        mine = [t for t in cell.targets if t.robot in (None, robot.name)]
        picks = [t for t in mine if t.name == pick] if pick else \
            robot_targets(cell, PICK_PREFIX, robot.name)
        if not picks and pick is None:  # none named: over where parts spawn on a body
            picks = [pick_target_over(feed.region) for feed in feeds.values()]
        places = [t for t in mine if t.name == place] if place else \
            robot_targets(cell, PLACE_PREFIX, robot.name)
        if not places and place is None and default_place_target(cell, robot.name):
            places = [default_place_target(cell, robot.name)]
        fed = [(t, feeds[t.relative_to]) for t in picks if t.relative_to in feeds]
        if not fed or not places:
            continue
        fed.sort(key=lambda item: item[1].kind != "belt")  # stable: file order otherwise
        target, feed = fed[0]
        jobs.append(Job(robot.name, target, places[0], feed))
    if not jobs:
        raise LayoutError(_no_job_problems(cell, feeds, pick, place))
    for job in jobs:
        for target in (job.pick, job.place):
            if target.relative_to is not None and target.relative_to not in _fixed_bodies(cell):
                problems.append(Problem(
                    f"target '{target.name}' is relative to part '{target.relative_to}'; pick and "
                    "place targets of a layout run must be relative to fixed bodies",
                    path=f"targets.{target.name}.relative_to", value=target.relative_to,
                    expected="equipment, a conveyor, a bin, or the world"))
    if problems:
        raise LayoutError(problems)
    return jobs


def _feeds(cell: CellSpec) -> dict[str, Feed]:
    """Body name -> the first part type whose spawn region lies on that body."""
    regions = {region.name: region for region in cell.spawn_regions}
    conveyors = {conveyor.name for conveyor in cell.conveyors}
    bins = {bin_spec.name for bin_spec in cell.bins}
    feeds: dict[str, Feed] = {}
    for part in cell.parts:
        region = regions[part.spawn]
        if region.on is None or region.on in feeds:
            continue
        kind = "belt" if region.on in conveyors else "bin" if region.on in bins else "fixture"
        feeds[region.on] = Feed(region, part, kind, region.on if kind == "belt" else None)
    return feeds


def _fixed_bodies(cell: CellSpec) -> set[str]:
    return {item.name for item in (*cell.equipment, *cell.conveyors, *cell.bins)}


def _no_job_problems(cell: CellSpec, feeds: dict[str, Feed], pick, place) -> list[Problem]:
    picks = [t.name for t in robot_targets(cell, PICK_PREFIX)]
    places = [t.name for t in robot_targets(cell, PLACE_PREFIX)]
    if not picks and pick is None and not feeds:
        return [Problem(f"cell '{cell.name}' has no pick target, and no part spawns on a body "
                        "to pick over", path="targets",
                        expected="a target named pick* relative to the body parts arrive on, or "
                                 "a spawn region 'on' a body (a bin, a conveyor, a fixture)")]
    if not places and place is None and default_place_target(cell) is None:
        return [Problem(f"cell '{cell.name}' has no place target, and no tray or bin to place "
                        "into", path="targets", expected="a target named place*, or a tray or bin")]
    fed_bodies = ", ".join(sorted(feeds)) or "none"
    return [Problem(f"no robot of cell '{cell.name}' has both a fed pick target and a place "
                    f"target (pick targets: {', '.join(picks) or 'none'}; place targets: "
                    f"{', '.join(places) or 'none'}; bodies parts spawn on: {fed_bodies})",
                    path="targets",
                    expected="a pick* target relative to a body a part type spawns on, and a "
                             "place* target, both for the same robot")]

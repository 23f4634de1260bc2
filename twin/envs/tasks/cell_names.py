"""Where a task finds what it needs in a cell: its part, the region that part starts in (the
pick region), where it goes (the place target) and where goals are drawn (the goal region).

Each is found by the conventions of :mod:`celltwin.spec.conventions` (documented in
docs/cells.md, "What the tasks look for") unless the env is told by name (``object=``,
``pick=``, ``place=``, ``goal_region=``). A cell that lacks one is an :class:`EnvError` that
says what is missing and what would do; :func:`celltwin.envs.tasks.hosting` asks every task
of a cell.
"""

from __future__ import annotations

from celltwin.check import target_pose
from celltwin.core.errors import EnvError, Problem, did_you_mean, one_of
from celltwin.envs.tasks.base import Region, find_part, part_spec
from celltwin.spec.conventions import PICK_REGION, containers, default_place_target

# Goals made up around a place target: within this of it horizontally, and up to this above.
AROUND_TARGET_M = (0.05, 0.1)
# ... and at least this far above the rim of the bin or tray the target is in [m].
OVER_RIM_M = 0.05
# Goals made up above a pick region: from its bottom up to this above its top [m].
ABOVE_PICK_M = 0.2
# Reach goals made up around the TCP at home: this far either way horizontally, and from this
# far below it up to the TCP [m].
AROUND_HOME_M = (0.15, 0.2)


def find_pick(world, task_id: str, object: str | None, pick: str | None, *,
              on_conveyor: bool = False) -> tuple[str, Region]:
    """The task's part and the region it starts each episode in.

    The region: ``pick`` (a spawn region), else :data:`PICK_REGION` when the cell has one (not
    for a conveyor task: its part rides in from where it spawns), else the part's own. The
    part: ``object``, else the first one that spawns in ``pick``, else (a conveyor task) the
    first that spawns on a conveyor, else the cell's first part.
    """
    spec = world.spec
    regions = {region.name: region for region in spec.spawn_regions}
    conveyors = {conveyor.name for conveyor in spec.conveyors}
    if on_conveyor and not conveyors:
        raise EnvError(Problem(f"{task_id} needs a conveyor, and cell '{spec.name}' has none",
                               path="conveyors", expected="at least one conveyor"))
    if pick is not None and pick not in regions:
        raise EnvError(Problem(f"{task_id}: cell '{spec.name}' has no spawn region '{pick}' to "
                               "pick from" + did_you_mean(pick, regions), path="pick", value=pick,
                               expected=one_of(regions) if regions else "a spawn region name"))
    if pick is None and not on_conveyor and PICK_REGION in regions:
        pick = PICK_REGION
    if object is not None:
        name = find_part(world, object, task_id)
    else:
        name = _part_spawning_in(world, pick, conveyors if on_conveyor else None, task_id)
    region = regions[pick or part_spec(world, name).spawn]
    if on_conveyor and region.on not in conveyors:
        raise EnvError(Problem(
            f"{task_id} picks a part that rides a conveyor; spawn region '{region.name}' is not "
            "on one", path="pick" if pick else f"parts.{part_spec(world, name).name}.spawn",
            value=region.name, expected="a spawn region 'on' a conveyor: "
            + ", ".join(sorted(conveyors))))
    return name, Region(world, region)


def _part_spawning_in(world, pick: str | None, conveyors, task_id: str) -> str:
    spec = world.spec
    on = {region.name: region.on for region in spec.spawn_regions}
    for part in spec.parts:
        if pick is not None and part.spawn == pick:
            return part.body_names()[0]
    if conveyors:
        for part in spec.parts:
            if on[part.spawn] in conveyors:
                return part.body_names()[0]
        if spec.parts:
            raise EnvError(Problem(f"{task_id} needs a part that spawns on a conveyor; no part of "
                                   f"cell '{spec.name}' does", path="parts",
                                   expected="a part whose spawn region is 'on' a conveyor"))
    return find_part(world, None, task_id)


def find_goal_region(world, task_id: str, name: str | None, conventional: tuple[str, ...],
                     made_up) -> Region:
    """The goal region: ``name``, else the first of ``conventional`` the cell has, else
    ``made_up()`` (a :class:`Region` the task derives, or None when it cannot)."""
    regions = {region.name: region for region in world.spec.spawn_regions}
    if name is not None:
        if name not in regions:
            raise EnvError(Problem(f"{task_id} needs a spawn region named '{name}' in cell "
                                   f"'{world.spec.name}'" + did_you_mean(name, regions),
                                   path="goal_region", value=name,
                                   expected=one_of(regions) if regions
                                   else "a spawn_regions entry (the cell has none)"))
        return Region(world, regions[name])
    for candidate in conventional:
        if candidate in regions:
            return Region(world, regions[candidate])
    region = made_up()
    if region is None:
        raise EnvError(Problem(
            f"{task_id} finds no goal region in cell '{world.spec.name}'", path="spawn_regions",
            expected=f"a spawn region named {' or '.join(conventional)}, or goal_region="))
    return region


def around_home(world, robot) -> Region:
    """Reach goals made up around the TCP where the robot stands as the cell is built."""
    tcp = robot.ee_pose()[0]
    side, depth = AROUND_HOME_M
    return Region.box(world, "around the TCP at home", tcp - [side, side, depth],
                      tcp + [side, side, 0.0])


def above(world, region: Region) -> Region:
    """Goals made up over a pick region: its box, raised up to :data:`ABOVE_PICK_M`."""
    corners = region.corners()
    low, high = corners.min(axis=0), corners.max(axis=0)
    return Region.box(world, f"above '{region.name}'", low, high + [0.0, 0.0, ABOVE_PICK_M])


def around(world, target) -> Region:
    """Goals made up around a place target: near it horizontally, at it and above it; over
    the rim when the target is in a bin or tray (the part is held there, not put down)."""
    position = target_pose(world, target)[0]
    side, rise = AROUND_TARGET_M
    bins = {container.name: container for container in world.spec.bins}
    if target.relative_to in bins:
        rim = world.frame(target.relative_to)[0][2] + bins[target.relative_to].size_m[2]
        position[2] = max(position[2], rim + OVER_RIM_M)
    return Region.box(world, f"around '{target.name}'", position - [side, side, 0.0],
                      position + [side, side, rise])


def find_place(world, task_id: str, place: str | None, robot_name: str):
    """The place target: ``place`` (a target), else the robot's first ``place*`` target, else
    one made up over the first tray (else bin); None when the cell has none of these."""
    targets = {target.name: target for target in world.spec.targets}
    if place is None:
        return default_place_target(world.spec, robot_name)
    if place not in targets:
        raise EnvError(Problem(f"{task_id}: cell '{world.spec.name}' has no target '{place}'"
                               + did_you_mean(place, targets), path="place", value=place,
                               expected=one_of(targets) if targets else "a target name"))
    return targets[place]


def find_container(world, task_id: str, place: str | None, robot_name: str):
    """The bin or tray parts go into: ``place`` (a bin or tray, or a target on one), else the
    one the robot's first ``place*`` target is on, else the first tray, else the first bin."""
    spec = world.spec
    bins = {container.name: container for container in spec.bins}
    if not bins:
        raise EnvError(Problem(f"{task_id} needs a bin or tray to place into; cell "
                               f"'{spec.name}' has none", path="bins",
                               expected="at least one entry under bins"))
    if place in bins:
        return bins[place]
    targets = {target.name: target for target in spec.targets}
    if place is not None and place not in targets:
        raise EnvError(Problem(f"{task_id}: no bin, tray or target named '{place}'"
                               + did_you_mean(place, [*bins, *targets]), path="place",
                               value=place, expected=one_of(bins) + ", or a target on one"))
    target = targets[place] if place is not None else default_place_target(spec, robot_name)
    if target.relative_to in bins:
        return bins[target.relative_to]
    if place is not None:
        raise EnvError(Problem(f"{task_id} places into a bin or tray; target '{place}' is not "
                               "on one", path="place", value=place,
                               expected="a bin or tray, or a target relative to one: "
                               + ", ".join(bins)))
    return containers(spec)[0]


def region_label(region: Region) -> str:
    """A region as a sentence names it: ``'goal_space'``, or what a made-up one is."""
    return region.name if " " in region.name else f"'{region.name}'"


__all__ = ["above", "around", "around_home", "find_container", "find_goal_region", "find_pick",
           "find_place", "region_label"]

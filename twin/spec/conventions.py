"""The names the tasks and layout runs look for in a cell, and what they do without them.

A cell file names its bodies, regions and targets freely; what a task or a layout run needs
of it (where a part is picked, where it goes, where goals are drawn) is found by these
conventions, each overridable by name (env options ``pick=``, ``place=``, ``goal_region=``;
the CLI's ``--pick`` and ``--place``). ``docs/cells.md`` ("What the tasks look for") is the
user's account of them; this module is their one home for everything that reads a
:class:`CellSpec`.
"""

from __future__ import annotations

from celltwin.spec.bodies import SpawnRegionSpec, TargetSpec
from celltwin.spec.primitives import Pose
from celltwin.spec.schema import CellSpec

PICK_REGION = "pick_space"
"""The spawn region Push's and PickPlace's part starts in, when a cell has one."""
GOAL_REGION = "goal_space"
"""The spawn region Push's and PickPlace's goals are drawn from (Reach's second choice)."""
REACH_REGION = "reach_space"
"""The spawn region Reach's goals are drawn from."""
PICK_PREFIX = "pick"
"""Targets whose name starts with this are pick targets (layout runs)."""
PLACE_PREFIX = "place"
"""Targets whose name starts with this are place targets (layout runs, the tasks' place)."""
PLACE_HEIGHT_M = 0.05
"""A place target made up for a bin or tray without one: this far above its floor [m]."""
DOWN_DEG = (180.0, 0.0, 0.0)
"""The orientation of a made-up target: the tool pointing straight down."""


def robot_targets(cell: CellSpec, prefix: str, robot: str | None = None) -> list[TargetSpec]:
    """Targets whose name starts with ``prefix`` that ``robot`` may use (those without a
    ``robot`` are everyone's), in file order."""
    return [target for target in cell.targets if target.name.startswith(prefix)
            and (robot is None or target.robot in (None, robot))]


def containers(cell: CellSpec) -> list:
    """The bins and trays, trays first (a tray is where parts are put down), in file order."""
    return ([b for b in cell.bins if b.kind == "tray"]
            + [b for b in cell.bins if b.kind != "tray"])


def default_place_target(cell: CellSpec, robot: str | None = None) -> TargetSpec | None:
    """The place target by convention: the robot's first ``place*`` target; without one, a
    target made up over the first tray (else bin), :data:`PLACE_HEIGHT_M` above its floor;
    ``None`` for a cell with neither."""
    named = robot_targets(cell, PLACE_PREFIX, robot)
    if named:
        return named[0]
    found = containers(cell)
    if not found:
        return None
    container = found[0]
    return TargetSpec(name=f"{PLACE_PREFIX}_{container.name}", relative_to=container.name,
                      pose=Pose(xyz=(0.0, 0.0, container.wall_thickness_m + PLACE_HEIGHT_M),
                                rpy_deg=DOWN_DEG))


def pick_target_over(region: SpawnRegionSpec) -> TargetSpec:
    """A pick target made up for a spawn region on a body: the tool straight down at the
    region's centre, in the body's frame (where a run's parts arrive)."""
    centre = tuple((low + high) / 2 for low, high in zip(region.low_m, region.high_m))
    return TargetSpec(name=f"{PICK_PREFIX}_{region.name}", relative_to=region.on,
                      pose=Pose(xyz=centre, rpy_deg=DOWN_DEG))


__all__ = ["DOWN_DEG", "GOAL_REGION", "PICK_PREFIX", "PICK_REGION", "PLACE_HEIGHT_M",
           "PLACE_PREFIX", "REACH_REGION", "containers", "default_place_target",
           "pick_target_over", "robot_targets"]

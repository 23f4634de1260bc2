"""`layout check`: can every robot reach its targets, and get there without hitting anything?

Three questions per robot, each answered without stepping physics:

1. **Reach**: inverse kinematics (``celltwin.robots.Kinematics``) for every target the robot must reach,
   with every joint kept ``margin`` inside its limits.
2. **Paths**: the straight line in joint space from home to the configuration above the target
   (``approach_m`` higher, the way the scripted expert comes in) and from there down to the
   target, sampled every ``path_step_rad`` of the largest joint move. At each sample the
   robot is posed in the world (other robots at home) and ``getClosestPoints`` measures every
   moving link against every fixed body and every other robot. Overlap is a collision; closer
   than ``clearance_m`` a near miss. Parts are left out: a run brings its own.
3. **Clearance at home**: the closest approach of the robot's moving links to each other
   body, posed at home.

The world is snapshotted before and restored after, so it is left exactly as it was.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from celltwin.robots import Kinematics
from celltwin.core.atomic import atomic_write_text
from celltwin.check import Interpenetration, check_interpenetrations, target_pose
from celltwin.layout.proximity import Proximity, ProximityProbe


@dataclass(frozen=True)
class TargetReach:
    """Whether one robot reaches one target, and how its path there looks."""

    target: str
    robot: str
    reachable: bool
    reason: str
    position_m: tuple[float, float, float]
    position_error_m: float
    q_rad: tuple[float, ...]
    path_checked: bool = False
    collisions: tuple[Proximity, ...] = ()
    near_misses: tuple[Proximity, ...] = ()

    @property
    def ok(self) -> bool:
        return self.reachable and not self.collisions


@dataclass(frozen=True)
class HomeClearance:
    """The closest a robot's moving links come to one body with the robot at home."""

    robot: str
    body: str
    distance_m: float | None  # None: nothing within the search distance
    link: str = ""


@dataclass
class LayoutReport:
    """Everything ``layout check`` found; see :attr:`problems` and :attr:`warnings`."""

    cell: str
    margin_deg: float
    clearance_m: float
    approach_m: float
    reach: list[TargetReach] = field(default_factory=list)
    home: list[HomeClearance] = field(default_factory=list)
    interpenetrations: list[Interpenetration] = field(default_factory=list)
    envelopes_m: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        """Faults that make the layout unusable: unreachable, colliding, overlapping."""
        found = []
        for r in self.reach:
            if not r.reachable:
                found.append(f"target '{r.target}' is not reachable by '{r.robot}' with a "
                             f"{self.margin_deg:g} deg joint margin: {r.reason}")
            for hit in r.collisions:
                found.append(f"path of '{r.robot}' to '{r.target}' collides: {hit.describe()} "
                             f"overlap {-hit.distance_m * 1000:.1f} mm")
        for clearance in self.home:
            if clearance.distance_m is not None and clearance.distance_m < 0:
                found.append(f"'{clearance.robot}' at home overlaps '{clearance.body}' "
                             f"({clearance.link}) by {-clearance.distance_m * 1000:.1f} mm")
        for overlap in self.interpenetrations:
            found.append(f"bodies '{overlap.body_a}' and '{overlap.body_b}' overlap by "
                         f"{overlap.depth_m * 1000:.1f} mm as built")
        return found

    @property
    def warnings(self) -> list[str]:
        """Things to look at that do not stop the cell: near misses and tight clearances."""
        found = []
        for r in self.reach:
            for near in r.near_misses:
                found.append(f"path of '{r.robot}' to '{r.target}' passes "
                             f"{near.distance_m * 1000:.1f} mm from {near.body}"
                             f"{'/' + near.body_link if near.body_link else ''} "
                             f"({r.robot}/{near.link})")
        for clearance in self.home:
            if clearance.distance_m is not None and 0 <= clearance.distance_m < self.clearance_m:
                found.append(f"'{clearance.robot}' at home is {clearance.distance_m * 1000:.1f} mm "
                             f"from '{clearance.body}' ({clearance.link})")
        return found

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"cell": self.cell, "ok": self.ok, "margin_deg": self.margin_deg,
                "clearance_m": self.clearance_m, "approach_m": self.approach_m,
                "problems": self.problems, "warnings": self.warnings,
                "reach": [_reach_dict(r) for r in self.reach],
                "home_clearance": [asdict(c) for c in self.home],
                "interpenetrations": [asdict(i) for i in self.interpenetrations],
                "reach_envelope_m": self.envelopes_m}

    def to_text(self) -> str:
        lines = [f"layout check of cell '{self.cell}' (joint margin {self.margin_deg:g} deg, "
                 f"near miss < {self.clearance_m * 1000:g} mm)"]
        lines.append(f"targets ({len(self.reach)} target x robot pairs):")
        for r in self.reach:
            if not r.reachable:
                verdict = f"NOT reachable: {r.reason}"
            elif r.collisions:
                verdict = f"reachable, path COLLIDES ({len(r.collisions)} link/body pairs)"
            elif r.near_misses:
                closest = r.near_misses[0]
                verdict = (f"reachable, path clear; closest {closest.distance_m * 1000:.1f} mm "
                           f"to {closest.body}")
            else:
                verdict = "reachable, path clear"
            lines.append(f"  {r.target:<18} by {r.robot:<10} {verdict}")
        lines.append("clearance at home (moving links):")
        for c in self.home:
            distance = (">= search distance" if c.distance_m is None
                        else f"{c.distance_m * 1000:7.1f} mm")
            lines.append(f"  {c.robot:<10} - {c.body:<20} {distance}"
                         + (f"  ({c.link})" if c.link else ""))
        problems, warnings = self.problems, self.warnings
        lines += [f"problem: {text}" for text in problems]
        lines += [f"warning: {text}" for text in warnings]
        lines.append("OK" if not problems else f"PROBLEMS FOUND ({len(problems)})")
        return "\n".join(lines)


def _reach_dict(reach: TargetReach) -> dict:
    data = asdict(reach)
    data["ok"] = reach.ok
    return data


def check_layout(world, *, margin_deg: float = 5.0, clearance_m: float = 0.01,
                 approach_m: float = 0.12, path_step_rad: float = 0.02) -> LayoutReport:
    """Check reach, paths and clearances of every robot in ``world``.

    Args:
        world: a freshly built world (parts anywhere: they are not measured).
        margin_deg: how far inside its limits every joint must stay at a target [deg].
        clearance_m: distances below this are near misses [m].
        approach_m: height above each target the path passes through; 0 goes straight [m].
        path_step_rad: largest joint move between two path samples [rad].
    """
    report = LayoutReport(world.spec.name, margin_deg, clearance_m, approach_m)
    report.interpenetrations = check_interpenetrations(world)
    snapshot = world.snapshot()
    try:
        for robot_spec in world.spec.robots:
            probe = ProximityProbe(world, robot_spec.name, _obstacles(world, robot_spec.name))
            robot = world.robots[robot_spec.name]
            home = robot.joint_positions()
            for body in _obstacles(world, robot_spec.name):
                closest = probe.minimum(body, search_m=1.0)
                report.home.append(HomeClearance(robot_spec.name, body,
                                                 None if closest is None else closest.distance_m,
                                                 "" if closest is None else closest.link))
            report.envelopes_m[robot_spec.name] = reach_envelope_m(robot.model)
            targets = [t for t in world.spec.targets if t.robot in (None, robot_spec.name)]
            if not targets:
                continue
            with Kinematics(robot.model, robot_spec.base.xyz,
                            robot_spec.base.quaternion_xyzw()) as kinematics:
                for target in targets:
                    report.reach.append(_check_target(
                        world, robot, probe, kinematics, target, home,
                        margin_rad=math.radians(margin_deg), clearance_m=clearance_m,
                        approach_m=approach_m, step_rad=path_step_rad))
            robot.reset_joints(home)
    finally:
        world.restore(snapshot)
    return report


def _obstacles(world, robot: str) -> list[str]:
    """Everything a robot must not hit: fixed bodies, the floor and the other robots."""
    return [name for name in world.bodies if name != robot and name not in world.parts]


def _check_target(world, robot, probe, kinematics, target, home, *, margin_rad, clearance_m,
                  approach_m, step_rad) -> TargetReach:
    position, orientation = target_pose(world, target)
    ik = kinematics.ik(position, orientation, seed=home, limit_margin_rad=margin_rad)
    result = TargetReach(target.name, robot.name, ik.reachable, ik.reason,
                         tuple(position.tolist()), float(ik.position_error_m),
                         tuple(np.round(ik.q, 5).tolist()))
    if not ik.reachable:
        return result
    waypoints = [home]
    if approach_m > 0:
        above = kinematics.ik(position + [0.0, 0.0, approach_m], orientation, seed=ik.q,
                              limit_margin_rad=margin_rad)
        if above.reachable:
            waypoints.append(np.asarray(above.q))
    waypoints.append(np.asarray(ik.q))
    worst: dict[tuple, Proximity] = {}
    for start, end in zip(waypoints[:-1], waypoints[1:]):
        samples = max(2, int(math.ceil(float(np.max(np.abs(end - start))) / step_rad)) + 1)
        for fraction in np.linspace(0.0, 1.0, samples):
            robot.reset_joints(start + fraction * (end - start))
            for near in probe.within(clearance_m):
                key = near.pair()
                if key not in worst or near.distance_m < worst[key].distance_m:
                    worst[key] = near
    hits = sorted(worst.values(), key=lambda p: p.distance_m)
    return TargetReach(result.target, result.robot, True, "", result.position_m,
                       result.position_error_m, result.q_rad, True,
                       tuple(p for p in hits if p.distance_m < 0),
                       tuple(p for p in hits if p.distance_m >= 0))


_ENVELOPES: dict = {}  # RobotModel -> reach [m]


def reach_envelope_m(model, samples: int = 600) -> float:
    """Largest horizontal distance of the TCP from the base axis over random configurations [m].

    A planning figure for the top view (the circle a robot's gripper can sweep), not a
    guarantee that every point inside is reachable with the gripper pointing down.
    """
    # Keyed by the model itself, not its name: two robot files may share a name, and an edited
    # one is a new model (its prepared URDF's name carries the content's digest).
    if model not in _ENVELOPES:
        rng = np.random.default_rng(0)
        with Kinematics(model) as kinematics:
            reach = 0.0
            for _ in range(samples):
                q = rng.uniform(kinematics.lower, kinematics.upper)
                position, _ = kinematics.fk(q)
                reach = max(reach, float(np.hypot(position[0], position[1])))
        _ENVELOPES[model] = reach
    return _ENVELOPES[model]


def report_marks(report: LayoutReport) -> list:
    """Top-view marks of a report: targets green (fine) or red, collisions and near misses."""
    from celltwin.layout.topview import Mark

    marks = []
    for reach in report.reach:
        marks.append(Mark(reach.position_m, reach.target,
                          "limegreen" if reach.ok else "red", "o"))
        for hit in reach.collisions[:3]:
            marks.append(Mark(hit.point_m, f"{hit.link} x {hit.body}", "red", "x"))
        for near in reach.near_misses[:2]:
            marks.append(Mark(near.point_m, f"{near.distance_m * 1000:.0f} mm", "orange", "x"))
    return marks


def write_check(world, report: LayoutReport, out_dir) -> list:
    """Write ``layout_check.json`` and ``layout_check.png`` into ``out_dir``; return the paths."""
    import json
    from pathlib import Path

    from celltwin.layout.topview import draw_top_view

    out_dir = Path(out_dir)
    json_path = atomic_write_text(out_dir / "layout_check.json",
                                  json.dumps(report.to_dict(), indent=2))
    verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
    png_path = draw_top_view(world, out_dir / "layout_check.png", envelopes_m=report.envelopes_m,
                             marks=report_marks(report),
                             title=f"layout check: {report.cell} - {verdict}")
    return [json_path, png_path]

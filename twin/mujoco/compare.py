"""The agreement report: the pybullet world and the MuJoCo twin of one cell, measured alike.

Both engines are built from the same cell and PhysicsParams (the twin from the world,
:class:`TwinSource`), start from the same state and get the same inputs:

- forward kinematics: the TCP pose at the same joint angles, sampled uniformly within the
  joint limits (acceptance: every robot within 1 mm);
- joint step response: from the start pose under gravity, one arm joint's set-point steps by
  :data:`STEP_RAD` (away from its nearer limit) while the others hold; the 10-90 % rise time,
  sampled every physics step (acceptance: within 5 %);
- a dropped part: each part type's first body lifted :data:`DROP_HEIGHT_M` above its start and
  let go; where it settles after :data:`DROP_S`;
- conveyor travel: a part on each belt, carried for :data:`CONVEYOR_S`.

Every check starts from the start state again (a snapshot in each engine).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from celltwin.mujoco.engine import load_mujoco
from celltwin.mujoco.source import TwinSource
from celltwin.mujoco.twin import MujocoTwin
from celltwin.physics import PhysicsParams
from celltwin.spec import CellSpec
from celltwin.world import World

FK_LIMIT_M = 1e-3
RISE_LIMIT = 0.05
STEP_RAD = 0.2
STEP_S = 0.6
DROP_HEIGHT_M = 0.05
DROP_S = 1.5
CONVEYOR_S = 2.0


@dataclass(frozen=True)
class Check:
    """One quantity measured in both engines.

    Attributes:
        section: ``forward kinematics``, ``step response``, ``dropped part`` or ``conveyor``.
        name: what was measured (``arm/panda_joint2 rise time``).
        unit: unit of the values and the error (``m``, ``s``, ``rad``).
        pybullet: the pybullet value, where a single one exists.
        mujoco: the MuJoCo value, where a single one exists.
        error: how far apart the engines are, in ``unit`` (``relative``: a fraction).
        limit: the acceptance limit of ``error``, where the issue sets one.
        relative: whether ``error`` is relative to the pybullet value.
        note: why a check has no value, or what it assumed.
    """

    section: str
    name: str
    unit: str
    pybullet: float | None
    mujoco: float | None
    error: float | None
    limit: float | None = None
    relative: bool = False
    note: str = ""

    @property
    def passed(self) -> bool | None:
        """Within its limit (``None``: no limit set; a missing value fails a limit)."""
        if self.limit is None:
            return None
        return bool(self.error is not None and self.error <= self.limit)


@dataclass
class AgreementReport:
    """Every check of one cell; see :mod:`celltwin.mujoco.compare`."""

    cell: str
    engines: dict[str, str]
    settings: dict[str, float]
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every check that has a limit is within it."""
        return all(check.passed is not False for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.passed is False]

    def to_dict(self) -> dict:
        return {"cell": self.cell, "engines": self.engines, "settings": self.settings,
                "ok": self.ok,
                "checks": [{**asdict(check), "passed": check.passed} for check in self.checks]}


def compare_engines(cell: CellSpec | str | Path, physics: PhysicsParams | None = None, *,
                    fk_samples: int = 200, seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> AgreementReport:
    """Build both twins of ``cell`` and run every check (see the module docstring).

    Args:
        cell: a CellSpec, a cell file or the name of a shipped example.
        physics: PhysicsParams overrides, applied to the world the twin is built from.
        fk_samples: joint configurations per robot for the kinematics check.
        seed: seed of the sampled configurations.
        progress: called with the name of each section as it starts.
    """
    say = progress or (lambda text: None)
    with World(cell, physics=physics) as world:
        twin = MujocoTwin.from_source(TwinSource.of_world(world))
        report = AgreementReport(
            world.spec.name,
            {"pybullet": metadata.version("pybullet"), "mujoco": load_mujoco().__version__},
            {"fk_samples": fk_samples, "seed": seed, "step_rad": STEP_RAD, "step_s": STEP_S,
             "drop_height_m": DROP_HEIGHT_M, "drop_s": DROP_S, "conveyor_s": CONVEYOR_S,
             "timestep_s": world.physics_params().timestep_s,
             "control_period_s": world.control_period_s})
        pair = _Pair(world, twin)
        rng = np.random.default_rng(seed)
        say("forward kinematics")
        for name in world.robots:
            report.checks += pair.kinematics(name, fk_samples, rng)
        say("joint step responses")
        for name in world.robots:
            report.checks += pair.step_responses(name)
        say("dropped parts")
        report.checks += pair.drops()
        say("conveyors")
        report.checks += pair.conveyors()
        twin.close()
    return report


class _Pair:
    """The two engines of one cell, each returned to its start state before a check."""

    def __init__(self, world: World, twin: MujocoTwin):
        self.world, self.twin = world, twin
        self._starts = (world.snapshot(), twin.snapshot())
        self._substeps = int(world.physics_params().substeps)

    def _restart(self, substeps: int | None = None) -> None:
        world, twin = self.world, self.twin
        world.restore(self._starts[0])
        twin.restore(self._starts[1])
        steps = PhysicsParams(substeps=substeps or self._substeps)
        world.apply_physics(steps)
        twin.apply_physics(steps)

    # --- forward kinematics ----------------------------------------------------------------
    def kinematics(self, name: str, samples: int, rng: np.random.Generator) -> list[Check]:
        self._restart()
        bullet, mj = self.world.robot(name), self.twin.robot(name)
        position_errors, angle_errors = [], []
        for _ in range(samples):
            q = rng.uniform(bullet.arm_lower, bullet.arm_upper)
            bullet.reset_joints(q)
            mj.reset_joints(q)
            self.twin.forward()
            (p_b, q_b), (p_m, q_m) = bullet.ee_pose(), mj.ee_pose()
            position_errors.append(float(np.linalg.norm(p_b - p_m)))
            angle_errors.append(rotation_angle(q_b, q_m))
        model = bullet.model.name
        return [Check("forward kinematics", f"{name} ({model}) TCP position, max over "
                      f"{samples} configurations", "m", None, None, max(position_errors),
                      limit=FK_LIMIT_M),
                Check("forward kinematics", f"{name} ({model}) TCP orientation, max over "
                      f"{samples} configurations", "rad", None, None, max(angle_errors))]

    # --- step response ---------------------------------------------------------------------
    def step_responses(self, name: str) -> list[Check]:
        checks = []
        for index, joint in enumerate(self.world.robot(name).model.arm_joint_names):
            self._restart(substeps=1)  # sampled every physics step
            bullet, mj = self.world.robot(name), self.twin.robot(name)
            start = bullet.joint_positions()
            room_up = bullet.arm_upper[index] - start[index]
            room_down = start[index] - bullet.arm_lower[index]
            target = start.copy()
            target[index] += STEP_RAD if room_up >= room_down else -STEP_RAD
            bullet.command_joint_positions(target)
            mj.command_joint_positions(target)
            steps = int(round(STEP_S / self.world.control_period_s))
            traces = np.zeros((2, steps))
            touched: tuple[set, set] = (set(), set())
            for k in range(steps):
                self.world.step()
                self.twin.step()
                traces[0, k] = bullet.joint_positions()[index]
                traces[1, k] = mj.joint_positions()[index]
                touched[0].update(self._bullet_touching(name))
                touched[1].update(self.twin.touching(name))
            dt = self.world.control_period_s
            rises = [rise_time(trace, start[index], target[index], dt) for trace in traces]
            error = (float(abs(rises[1] - rises[0]) / rises[0])
                     if None not in rises and rises[0] > 0 else None)
            notes = [] if error is not None else [_unreached(rises)]
            if touched[0] or touched[1]:
                # Why the engines may part here: their contact models differ, not their servos.
                notes.append(_touched(*touched))
            note = "; ".join(notes)
            checks.append(Check("step response", f"{name}/{joint} rise time (10-90 %)", "s",
                                rises[0], rises[1], error, limit=RISE_LIMIT, relative=True,
                                note=note))
        self._restart()
        return checks

    def _bullet_touching(self, name: str) -> set[str]:
        """Names of the world's bodies in contact with body ``name`` (a robot: any link)."""
        world = self.world
        names = {body: other for other, body in world.bodies.items()}
        body = world.body(name)
        return {names[contact[2]] for contact in world.client.getContactPoints(bodyA=body)
                if contact[2] != body and contact[2] in names}

    # --- dropped parts ---------------------------------------------------------------------
    def drops(self) -> list[Check]:
        checks = []
        for part in self.world.spec.parts:
            name = part.body_names()[0]
            self._restart()
            position, orientation = self.world.part_pose(name)
            lifted = position + np.array([0.0, 0.0, DROP_HEIGHT_M])
            yaw = yaw_of(orientation)
            self.world.place_part(name, lifted, yaw)
            self.twin.place_part(name, lifted, yaw)
            steps = int(round(DROP_S / self.world.control_period_s))
            self.world.step(steps)
            self.twin.step(steps)
            (p_b, q_b), (p_m, q_m) = self.world.part_pose(name), self.twin.part_pose(name)
            checks += [
                Check("dropped part", f"{name} settling position", "m", None, None,
                      float(np.linalg.norm(p_b - p_m)),
                      note=f"dropped {DROP_HEIGHT_M} m onto its start, {DROP_S} s"),
                Check("dropped part", f"{name} settling height", "m", float(p_b[2]),
                      float(p_m[2]), abs(float(p_b[2] - p_m[2])))]
            # A cylinder's turn about its axis shows nowhere, a sphere's turn at all.
            if part.shape == "box":
                checks.append(Check("dropped part", f"{name} settling orientation", "rad", None,
                                    None, rotation_angle(q_b, q_m)))
            elif part.shape == "cylinder":
                checks.append(Check("dropped part", f"{name} settling tilt of its axis", "rad",
                                    None, None, axis_angle(q_b, q_m)))
        self._restart()
        return checks

    # --- conveyors -------------------------------------------------------------------------
    def conveyors(self) -> list[Check]:
        spec = self.world.spec
        regions = {region.name: region for region in spec.spawn_regions}
        checks = []
        for conveyor in spec.conveyors:
            riders = [part for part in spec.parts if regions[part.spawn].on == conveyor.name]
            if not riders:
                checks.append(Check("conveyor", f"{conveyor.name} part travel", "m", None, None,
                                    None, note="no part starts on this belt"))
                continue
            name = riders[0].body_names()[0]
            self._restart()
            direction = self.world.conveyors[conveyor.name].direction
            start = self.world.part_pose(name)[0]
            steps = int(round(CONVEYOR_S / self.world.control_period_s))
            self.world.step(steps)
            self.twin.step(steps)
            travel = [float((engine.part_pose(name)[0] - start) @ direction)
                      for engine in (self.world, self.twin)]
            checks.append(Check(
                "conveyor", f"{conveyor.name}: {name} travel along the belt", "m", travel[0],
                travel[1], abs(travel[1] - travel[0]),
                note=f"{CONVEYOR_S} s at {conveyor.speed_mps} m/s: "
                     f"{conveyor.speed_mps * CONVEYOR_S:g} m on a belt that never slips"))
        self._restart()
        return checks


def _unreached(rises: list[float | None]) -> str:
    if rises[0] is None and rises[1] is None:
        return "neither trace reached 90 % of the step"
    engine = "pybullet" if rises[0] is None else "MuJoCo"
    return f"the {engine} trace never reached 90 % of the step"


def _touched(bullet: set[str], mj: set[str]) -> str:
    def listed(names: set[str]) -> str:
        return ", ".join(f"'{name}'" for name in sorted(names)) or "nothing"

    where = (f"{listed(bullet)} in both engines" if bullet == mj
             else f"{listed(bullet)} in pybullet and {listed(mj)} in MuJoCo")
    return f"the robot touched {where}, whose contact models differ"


# ----------------------------------------------------------------------------- measures
def rise_time(trace: np.ndarray, start: float, target: float, dt: float) -> float | None:
    """Time from 10 % to 90 % of the step ``start -> target`` [s], first crossings, linearly
    interpolated between samples ``dt`` apart (sample ``k`` at ``(k + 1) dt``); ``None`` when
    the trace never gets there."""
    fraction = (np.asarray(trace, dtype=float) - start) / (target - start)
    fraction = np.concatenate(([0.0], fraction))  # at t = 0 it rests at the start

    def crossing(level: float) -> float | None:
        above = np.nonzero(fraction >= level)[0]
        if not len(above):
            return None
        k = int(above[0])
        return dt * (k - 1 + (level - fraction[k - 1]) / (fraction[k] - fraction[k - 1]))

    low, high = crossing(0.1), crossing(0.9)
    return None if low is None or high is None else float(high - low)


def rotation_angle(quat_a, quat_b) -> float:
    """Angle of the rotation between two orientations (x, y, z, w) [rad]."""
    a, b = np.asarray(quat_a, dtype=float), np.asarray(quat_b, dtype=float)
    # q_a^-1 q_b; its vector part's norm and scalar part give the angle without acos's
    # loss of precision near zero.
    w = a[3] * b[3] + a[:3] @ b[:3]
    vector = a[3] * b[:3] - b[3] * a[:3] - np.cross(a[:3], b[:3])
    return float(2.0 * math.atan2(np.linalg.norm(vector), abs(w)))


def axis_angle(quat_a, quat_b) -> float:
    """Angle between the local z axes of two orientations (x, y, z, w) [rad]."""
    axes = []
    for x, y, z, w in (np.asarray(quat_a, dtype=float), np.asarray(quat_b, dtype=float)):
        axes.append(np.array([2 * (x * z + y * w), 2 * (y * z - x * w), 1 - 2 * (x * x + y * y)]))
    return float(math.atan2(np.linalg.norm(np.cross(*axes)), axes[0] @ axes[1]))


def yaw_of(quat_xyzw) -> float:
    """Yaw about the world z axis of an upright orientation (x, y, z, w) [rad]."""
    x, y, z, w = (float(v) for v in quat_xyzw)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))

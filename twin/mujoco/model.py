"""The MuJoCo model of a cell as the builder leaves it: the MjSpec and the names that tie its
elements to the cell and its PhysicsParams (read by the mapping, the twin and its robots)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from celltwin.mujoco.source import RobotStart, TwinSource
from celltwin.mujoco.suction import SuctionHandles


@dataclass(frozen=True)
class Collider:
    """A geom that touches others.

    Attributes:
        geom: the geom's name in the model.
        owner: the PhysicsParams ``bodies`` key its contact properties come from
            (``table``, ``part``, ``arm`` for a robot's base link, ``arm/panda_link3``).
        body: the pybullet body it belongs to (a robot's links all belong to the robot).
        moving: whether it moves (a part, or a robot link other than the fixed base).
    """

    geom: str
    owner: str
    body: str
    moving: bool


@dataclass
class RobotHandles:
    """Where one robot sits in the model, by name.

    Attributes:
        start: the robot as the pybullet world built it.
        root_body: the body of its base link.
        links: MuJoCo body of each PhysicsParams link key (``arm/panda_link1``).
        arm_joints: MuJoCo joint of each arm joint, in the model's order.
        finger_joints: MuJoCo joints of the fingers (none when held closed).
        arm_actuators: one motor per arm joint, in the same order (named as the joint).
        finger_actuators: one motor per driven finger (the first of two geared fingers).
        joint_keys: PhysicsParams ``joints`` key of each moving joint, by MuJoCo joint name.
        tcp_site: the site at the tool centre point.
        suction: where its suction cup is (:mod:`celltwin.mujoco.suction`), or None.
    """

    start: RobotStart
    root_body: str
    links: dict[str, str]
    arm_joints: tuple[str, ...]
    finger_joints: tuple[str, ...]
    arm_actuators: tuple[str, ...]
    finger_actuators: tuple[str, ...]
    joint_keys: dict[str, str]
    tcp_site: str
    suction: SuctionHandles | None = None

    @property
    def finger_share(self) -> float:
        """Fingers per driven finger: one motor driving two geared fingers pushes twice as
        hard for the same force per finger (as :class:`celltwin.robots.Robot` does)."""
        return len(self.finger_joints) / max(len(self.finger_actuators), 1)


@dataclass(frozen=True)
class PartNames:
    """The MuJoCo elements of one free part: its body, free joint and geom."""

    body: str
    joint: str
    geom: str


class Names:
    """MuJoCo names for the cell's elements, one namespace per kind as in MuJoCo.

    Each element gets its cell name where MuJoCo has it free, else that name with a suffix
    (``table~2``): a cell may call a table ``world`` (MuJoCo's world body) or a part
    ``arm/panda_link1``, and the twin still builds. Look names up in :class:`CellModel`'s
    tables, never by the cell name.
    """

    def __init__(self) -> None:
        self._used: dict[str, set[str]] = {"body": {"world"}}

    def claim(self, kind: str, wanted: str) -> str:
        """A free ``kind`` name (``body``, ``geom``, ``joint``, ``mesh``), claimed."""
        used = self._used.setdefault(kind, set())
        name, count = wanted, 1
        while name in used:
            count += 1
            name = f"{wanted}~{count}"
        used.add(name)
        return name

    def prefix(self, wanted: str) -> str:
        """A prefix no name claimed so far starts with, for the elements of a robot."""
        used = set().union(*self._used.values())
        prefix, count = f"{wanted}/", 1
        while any(name.startswith(prefix) for name in used):
            count += 1
            prefix = f"{wanted}~{count}/"
        return prefix

    def add(self, kind: str, names) -> None:
        """Record names an attached robot brought."""
        self._used.setdefault(kind, set()).update(names)


@dataclass
class CellModel:
    """A cell's MjSpec with the names that tie it to the cell and its PhysicsParams.

    Attributes:
        spec: the MuJoCo model specification.
        source: what it was built from.
        bodies: MuJoCo body of every named body of the cell (robots: their base link).
        parts: MuJoCo body, free joint and geom of every free part body.
        belts: MuJoCo geom of every conveyor's belt.
        robots: the robots, by name.
        pairs: the contact pairs with the two colliders each joins.
        link_inertia: nominal mass and inertia (``inertia``, ``fullinertia``) of every robot
            link body, by MuJoCo body name: a new mass scales them, as pybullet's does.
    """

    spec: object
    source: TwinSource
    bodies: dict[str, str] = field(default_factory=dict)
    parts: dict[str, PartNames] = field(default_factory=dict)
    belts: dict[str, str] = field(default_factory=dict)
    robots: dict[str, RobotHandles] = field(default_factory=dict)
    pairs: list[tuple[Collider, Collider, object]] = field(default_factory=list)
    link_inertia: dict[str, tuple[float, np.ndarray, np.ndarray]] = field(default_factory=dict)
    names: Names = field(default_factory=lambda: Names())


def wxyz(quat_xyzw) -> list[float]:
    """A quaternion (x, y, z, w), pybullet's order, in MuJoCo's order (w, x, y, z)."""
    x, y, z, w = (float(v) for v in quat_xyzw)
    return [w, x, y, z]


def rotation(quat_xyzw) -> np.ndarray:
    """The 3 x 3 rotation matrix of a quaternion (x, y, z, w)."""
    w, x, y, z = wxyz(quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])

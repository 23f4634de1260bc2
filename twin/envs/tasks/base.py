"""What every task shares: finding what it needs in the cell, drawing poses, goal rewards.

A task class is the one home of everything celltwin knows about a task: its Gymnasium id,
episode length, default cell, scripted expert, training preset, success test and what it
needs of a cell (class attributes, read by registration, training, the CLI and the docs
tests), and, per episode, which bodies and regions of a cell it uses, how an episode starts
(object pose, goal), which observation terms it wants, and how achieved and desired goals turn
into reward and success. It never steps physics; the env does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType, SimpleNamespace

import numpy as np

from celltwin.core.errors import EnvError, Problem, did_you_mean, one_of
from celltwin.experts.base import Expert


class Region:
    """A spawn region resolved to the world: sample centres and yaws from it.

    Args:
        world: the world holding the region's frame body.
        spec: the region's :class:`celltwin.spec.SpawnRegionSpec`.
    """

    def __init__(self, world, spec):
        self.name = spec.name
        self.low = np.asarray(spec.low_m, dtype=float)
        self.high = np.asarray(spec.high_m, dtype=float)
        self.yaw_rad = tuple(math.radians(v) for v in spec.yaw_deg)
        position, orientation = world.frame(spec.on)
        self._position = np.asarray(position, dtype=float)
        self._rotation = np.array(world.client.getMatrixFromQuaternion(orientation)).reshape(3, 3)
        self._frame_yaw = math.atan2(self._rotation[1, 0], self._rotation[0, 0])
        # The same draw in plain floats: numpy's per-call cost on 3-vectors is most of a
        # reset's sampling, and every episode samples twice.
        self._low_list = self.low.tolist()
        self._span = (self.high - self.low).tolist()
        self._rows = tuple(tuple(row) for row in self._rotation.tolist())
        self._origin = tuple(self._position.tolist())

    @classmethod
    def box(cls, world, name: str, low, high) -> "Region":
        """A region that is no spawn region of the cell: a box in the world frame, no yaw."""
        return cls(world, SimpleNamespace(name=name, low_m=tuple(low), high_m=tuple(high),
                                          yaw_deg=(0.0, 0.0), on=None))

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Draw a world-frame point and a world yaw [rad] uniformly from the region."""
        (lx, ly, lz), (sx, sy, sz) = self._low_list, self._span
        u, v, w = rng.random(3).tolist()
        x, y, z = lx + sx * u, ly + sy * v, lz + sz * w
        yaw = self.yaw_rad[0] + (self.yaw_rad[1] - self.yaw_rad[0]) * rng.random()
        (a, b, c), (d, e, f), (g, h, i), (ox, oy, oz) = *self._rows, self._origin
        return (np.array((a * x + b * y + c * z + ox, d * x + e * y + f * z + oy,
                          g * x + h * y + i * z + oz)), yaw + self._frame_yaw)

    def centre(self) -> np.ndarray:
        """The region's centre in the world frame [m]."""
        return self._rotation @ ((self.low + self.high) / 2) + self._position

    def corners(self) -> np.ndarray:
        """The region's eight corners in the world frame [m], one per row."""
        local = np.array(np.meshgrid(*zip(self.low, self.high))).reshape(3, -1)
        return (self._rotation @ local).T + self._position

    def lowest_z(self) -> float:
        """Height of the region's lowest corner in the world frame [m]."""
        corners = np.array(np.meshgrid(*zip(self.low, self.high))).reshape(3, -1)
        return float(np.min((self._rotation @ corners)[2] + self._position[2]))


def find_region(world, name: str, task: str) -> Region:
    """Return the spawn region ``name`` of the world's cell, or a clear EnvError."""
    regions = {region.name: region for region in world.spec.spawn_regions}
    if name not in regions:
        raise EnvError(Problem(
            f"{task} needs a spawn region named '{name}' in cell '{world.spec.name}'"
            + did_you_mean(name, regions), path="spawn_regions",
            expected=one_of(regions) if regions else "a spawn_regions entry (the cell has none)"))
    return Region(world, regions[name])


def find_part(world, name: str | None, task: str) -> str:
    """Return the part body ``name`` (the cell's first part when ``None``), or an EnvError."""
    if not world.parts:
        raise EnvError(Problem(f"{task} needs a part, and cell '{world.spec.name}' has none",
                               path="parts", expected="at least one entry under parts"))
    if name is None:
        return world.parts[0]
    if name not in world.parts:
        raise EnvError(Problem(f"{task}: cell '{world.spec.name}' has no part '{name}'"
                               + did_you_mean(name, world.parts), value=name,
                               expected=one_of(world.parts)))
    return name


def part_spec(world, body_name: str):
    """The part type a part body was made from."""
    return next(p for p in world.spec.parts if body_name in p.body_names())


def goal_distance(achieved: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """Euclidean distance over the last axis (works on single goals and batches).

    The ufuncs that ``np.linalg.norm(..., axis=-1)`` runs for real numbers, so the result is
    the same to the bit (float32 goals give a float32 distance, as HER relabelling sees), at
    half the cost of norm's argument handling: every env step and reset computes one.
    """
    difference = np.asarray(achieved) - np.asarray(desired)
    if difference.dtype.kind != "f":
        difference = difference.astype(float)  # as norm does: integers square as floats
    return np.sqrt(np.add.reduce(difference * difference, axis=-1))


class Task:
    """Base of the goal-conditioned tasks.

    A task joins celltwin through :func:`celltwin.envs.tasks.register_task`, which files it
    under ``name`` and registers ``env_id`` with Gymnasium.

    Attributes:
        name: task name as in ``celltwin/<Name>-v0``.
        env_id: the Gymnasium id, ``celltwin/<name>-v0`` unless a class sets its own.
        max_episode_steps: episode length [control steps], the registration's time limit.
        default_cell: the cell (shipped example name or file) an env uses without ``cell=``.
        cell_needs: what the task needs of a cell, in words (docs, ``--help``); a cell that
            lacks one of these is an :class:`EnvError` when the env is built.
        expert: the scripted expert class (:mod:`celltwin.experts`), ``None`` for none;
            ``make_expert(env)`` builds it as ``expert(env, **expert_options)``.
        expert_options: keyword arguments of ``expert``.
        suction_expert: the scripted expert for a robot with a suction cup, when the task
            grips (``None``: none); ``suction_expert_options`` its keyword arguments.
        preset: the training preset a run of this task starts from: a preset name in
            ``celltwin/training/presets`` (``reach`` for ``reach.yaml``) or a YAML file;
            ``None`` when training needs a config file.
        observation_terms: terms of the ``observation`` entry, in order.
        uses_gripper: whether the action has a gripper element.
        distance_threshold_m: success when achieved is this close to desired [m]
            (:meth:`is_success`).
    """

    name = ""
    env_id = ""
    max_episode_steps = 50
    default_cell: str | None = None
    cell_needs: tuple[str, ...] = ()
    expert: type[Expert] | None = None
    expert_options: Mapping = MappingProxyType({})
    suction_expert: type[Expert] | None = None
    suction_expert_options: Mapping = MappingProxyType({})
    preset: str | None = None
    observation_terms: tuple[str, ...] = ()
    uses_gripper = True
    distance_threshold_m = 0.05

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The id follows the name (a subclass with a new name gets its own id) unless the
        # class sets one itself.
        if "env_id" not in cls.__dict__:
            cls.env_id = f"celltwin/{cls.name}-v0" if cls.name else ""

    def __init__(self, world, robot, reward: str = "sparse"):
        if reward not in ("sparse", "dense"):
            raise EnvError(Problem(f"unknown reward '{reward}'" + did_you_mean(reward, ("sparse", "dense")),
                                   path="reward", value=reward, expected="one of: dense, sparse"))
        self.world = world
        self.robot = robot
        self.reward_type = reward
        self.object_name: str | None = None
        self.object_body: int | None = None
        self.goal = np.zeros(3)  # desired goal, robot base frame [m]

    # Regions whose lowest point, less WORK_SURFACE_BELOW_M, is the work surface the TCP
    # stays above under ee_delta control (panda-gym keeps its target above the table too).
    WORK_SURFACE_BELOW_M = 0.02

    def work_surface_z(self) -> float | None:
        """World height [m] the TCP target is kept above, or None for no floor."""
        regions = [getattr(self, name) for name in ("goal_region", "object_region")
                   if hasattr(self, name)]
        if not regions:
            return None
        return min(region.lowest_z() for region in regions) - self.WORK_SURFACE_BELOW_M

    def reset(self, rng: np.random.Generator, to_base) -> None:
        """Start an episode: place what the task places and draw a goal (base frame)."""
        raise NotImplementedError

    def describe(self) -> str:
        """What the task uses of its cell, in words (``celltwin cell check``)."""
        raise NotImplementedError

    def goal_points_world(self) -> np.ndarray:
        """World points [m] whose bounding box holds every goal :meth:`reset` can draw (one
        per row): by default the corners of ``goal_region``."""
        return self.goal_region.corners()

    def goal_bounds(self, to_base) -> tuple[np.ndarray, np.ndarray]:
        """The box of goals this task draws, in the robot base frame [m]: ``(low, high)``.

        Args:
            to_base: maps a world point to the robot base frame (the env's reader's).
        """
        points = np.array([to_base(point) for point in self.goal_points_world()])
        return points.min(axis=0), points.max(axis=0)

    def achieved_goal(self, state: dict) -> np.ndarray:
        raise NotImplementedError

    def is_success(self, distance_m: float) -> bool:
        """The success test: achieved within ``distance_threshold_m`` of desired [m]."""
        return distance_m < self.distance_threshold_m

    def compute_reward(self, achieved: np.ndarray, desired: np.ndarray, info=None) -> np.ndarray:
        """Vectorized reward, as HER relabelling needs: -1/0 (sparse) or -distance (dense)."""
        distance = goal_distance(achieved, desired)
        if self.reward_type == "sparse":
            return -(distance >= self.distance_threshold_m).astype(np.float32)
        return -distance.astype(np.float32)

    def reward_from_distance(self, distance: float) -> float:
        """The reward of one step whose goal distance is known (what compute_reward gives)."""
        if self.reward_type == "sparse":
            return -1.0 if distance >= self.distance_threshold_m else 0.0
        return float(-np.float32(distance))

    def follow_rebuilt_parts(self) -> None:
        """Pick up the task object's new body after the world rebuilt parts (startup geometry
        randomization): a new body id, and maybe a new size."""
        if self.object_name is not None:
            self.object_body = self.world.body(self.object_name)

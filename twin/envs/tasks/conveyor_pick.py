"""ConveyorPick: take a part off a running conveyor and put it into a tray."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task, find_part, find_region, part_spec
from celltwin.envs.tasks.object_tasks import OBJECT_TERMS
from celltwin.core.errors import EnvError, Problem, did_you_mean, one_of
from celltwin.experts.reactive_conveyor import ReactiveConveyorExpert
from celltwin.experts.reactive_suction import ReactiveSuctionConveyorExpert


class ConveyorPickTask(Task):
    """A part starts on a conveyor and rides it; place it in the tray (goal: the tray's centre).

    Args:
        object: the part to pick (default: the first part whose spawn region is on a conveyor).
        place_in: the bin or tray to place it in (default: the cell's first tray, else first bin).
    """

    name = "ConveyorPick"
    max_episode_steps = 150  # the part on the conveyor needs time to come within reach
    default_cell = "pick_station"
    cell_needs = ("a conveyor, and a part (the first on it, or `object=`) that spawns on it",
                  "a bin or tray to place into (the first tray, else the first bin, or "
                  "`place_in=`)")
    # Reactive (see reactive_conveyor), 200 episodes: 100% nominal, 95% under `standard`
    # (the phase machine it replaced: 38% under `standard` over 50).
    expert = ReactiveConveyorExpert
    suction_expert = ReactiveSuctionConveyorExpert
    preset = "conveyorpick"
    observation_terms = OBJECT_TERMS
    distance_threshold_m = 0.05

    def __init__(self, world, robot, reward: str = "sparse", object: str | None = None,
                 place_in: str | None = None):
        super().__init__(world, robot, reward)
        self.object_name = find_part(world, object or self._part_on_conveyor(world), self.env_id)
        self.object_body = world.body(self.object_name)
        self.object_region = find_region(world, part_spec(world, self.object_name).spawn,
                                         self.env_id)
        self._container_spec = self._container(world, place_in)
        self.container = self._container_spec.name
        self.goal_world = self._goal_world()

    def _goal_world(self) -> np.ndarray:
        # The part's centre when it lies on the container's floor: depends on its size.
        container = self._container_spec
        half_height = self.world.part_geometries[self.object_name].half_height_m
        local = [0.0, 0.0, container.wall_thickness_m + half_height]
        position, _ = self.world.client.multiplyTransforms(list(container.pose.xyz),
                                                           list(container.pose.quaternion_xyzw()),
                                                           local, [0, 0, 0, 1])
        return np.asarray(position)

    def wall_height_over_goal_m(self) -> float:
        """How far the container's walls rise above the goal (the part's centre on its
        floor) [m]: a part carried in must be higher than that by its half height."""
        container = self._container_spec
        half_height = self.world.part_geometries[self.object_name].half_height_m
        return container.size_m[2] - container.wall_thickness_m - half_height

    def follow_rebuilt_parts(self) -> None:
        super().follow_rebuilt_parts()
        self.goal_world = self._goal_world()

    @classmethod
    def _part_on_conveyor(cls, world) -> str:
        conveyors = {c.name for c in world.spec.conveyors}
        if not conveyors:
            raise EnvError(Problem(f"{cls.env_id} needs a conveyor, and cell '{world.spec.name}' "
                                   "has none", path="conveyors", expected="at least one conveyor"))
        on_belt = {r.name for r in world.spec.spawn_regions if r.on in conveyors}
        for part in world.spec.parts:
            if part.spawn in on_belt:
                return part.body_names()[0]
        raise EnvError(Problem(f"{cls.env_id} needs a part that spawns on a conveyor; no part of "
                               f"cell '{world.spec.name}' does", path="parts",
                               expected="a part whose spawn region is 'on' a conveyor"))

    @classmethod
    def _container(cls, world, name: str | None):
        bins = {b.name: b for b in world.spec.bins}
        if not bins:
            raise EnvError(Problem(f"{cls.env_id} needs a bin or tray to place into; cell "
                                   f"'{world.spec.name}' has none", path="bins",
                                   expected="at least one entry under bins"))
        if name is None:
            trays = [b for b in world.spec.bins if b.kind == "tray"]
            return trays[0] if trays else world.spec.bins[0]
        if name not in bins:
            raise EnvError(Problem(f"{cls.env_id}: no bin or tray named '{name}'"
                                   + did_you_mean(name, bins), value=name, expected=one_of(bins)))
        return bins[name]

    def work_surface_z(self) -> None:
        return None  # the part rides above the belt and drops into a tray: no single surface

    def goal_points_world(self) -> np.ndarray:
        return self.goal_world.reshape(1, 3)   # one goal: the container's floor

    def reset(self, rng: np.random.Generator, to_base) -> None:
        position, yaw = self.object_region.sample(rng)
        self.world.place_part(self.object_name, position, yaw)
        self.goal = to_base(self.goal_world)

    def achieved_goal(self, state: dict) -> np.ndarray:
        return state["object_position"]

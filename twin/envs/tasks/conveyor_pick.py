"""ConveyorPick: take a part off a running conveyor and put it into a bin or tray."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task
from celltwin.envs.tasks.cell_names import find_container, find_pick, region_label
from celltwin.envs.tasks.object_tasks import OBJECT_TERMS
from celltwin.experts.reactive_conveyor import ReactiveConveyorExpert
from celltwin.experts.reactive_suction import ReactiveSuctionConveyorExpert


class ConveyorPickTask(Task):
    """A part starts on a conveyor and rides it; place it in a bin or tray (goal: its floor).

    Args:
        object: the part to pick (default: the first that spawns in ``pick``, else the first
            that spawns on a conveyor).
        pick: the spawn region the part starts in, on a conveyor (default: its own).
        place: the bin or tray to place it in, or a target on one (default: the one the
            robot's first ``place*`` target is on, else the first tray, else the first bin).
        place_in: the same as ``place`` (its older name).
    """

    name = "ConveyorPick"
    max_episode_steps = 150  # the part on the conveyor needs time to come within reach
    default_cell = "pick_station"
    cell_needs = ("a conveyor, and a part (`object=`, else the first that spawns on it) that "
                  "starts on it (in `pick=`, else its own spawn region)",
                  "a bin or tray to place into (`place=`, else the one the first `place*` "
                  "target is on, else the first tray, else the first bin)")
    # Reactive (see reactive_conveyor), 200 episodes: 100% nominal, 95% under `standard`
    # (the phase machine it replaced: 38% under `standard` over 50).
    expert = ReactiveConveyorExpert
    suction_expert = ReactiveSuctionConveyorExpert
    preset = "conveyorpick"
    observation_terms = OBJECT_TERMS
    distance_threshold_m = 0.05

    def __init__(self, world, robot, reward: str = "sparse", object: str | None = None,
                 pick: str | None = None, place: str | None = None,
                 place_in: str | None = None):
        super().__init__(world, robot, reward)
        self.object_name, self.object_region = find_pick(world, self.env_id, object, pick,
                                                         on_conveyor=True)
        self.object_body = world.body(self.object_name)
        self._container_spec = find_container(world, self.env_id, place or place_in,
                                              robot.name)
        self.container = self._container_spec.name
        self.goal_world = self._goal_world()

    def describe(self) -> str:
        return (f"part '{self.object_name}' riding in from {region_label(self.object_region)} "
                f"into '{self.container}'")

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

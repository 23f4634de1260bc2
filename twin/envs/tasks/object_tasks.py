"""Push and PickPlace: move an object to a goal, on the table or in the air."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task, find_part, find_region, part_spec
from celltwin.experts.by_task import PushExpert
from celltwin.experts.reactive_pick import ReactivePickExpert
from celltwin.experts.reactive_suction import ReactiveSuctionExpert

OBJECT_TERMS = ("ee_position", "ee_velocity", "gripper_width", "object_position",
                "object_orientation", "object_velocity", "object_angular_velocity")
# Push holds the gripper closed (welded shut): its opening says nothing, and panda-gym's Push
# leaves the fingers out of the observation too.
PUSH_TERMS = tuple(term for term in OBJECT_TERMS if term != "gripper_width")


class _ObjectTask(Task):
    observation_terms = OBJECT_TERMS
    max_episode_steps = 50  # panda-gym's
    default_cell = "table_top"
    cell_needs = ("a part (the first, or `object=`) and its spawn region",
                  "a spawn region `goal_space` (or `goal_region=`) to draw goals from")

    def __init__(self, world, robot, reward: str = "sparse", object: str | None = None,
                 goal_region: str = "goal_space"):
        super().__init__(world, robot, reward)
        self.object_name = find_part(world, object, self.env_id)
        self.object_body = world.body(self.object_name)
        self.object_region = find_region(world, part_spec(world, self.object_name).spawn, self.env_id)
        self.goal_region = find_region(world, goal_region, self.env_id)

    def achieved_goal(self, state: dict) -> np.ndarray:
        return state["object_position"]

    def _place_object(self, rng: np.random.Generator) -> np.ndarray:
        position, yaw = self.object_region.sample(rng)
        return self.world.place_part(self.object_name, position, yaw)


class PushTask(_ObjectTask):
    """Push the object across the table to a goal on the table (the gripper is held closed)."""

    name = "Push"
    expert = PushExpert
    preset = "push"
    observation_terms = PUSH_TERMS
    uses_gripper = False

    def goal_points_world(self) -> np.ndarray:
        # Goals lie on the table, at the height of the object's spawn region.
        points = self.goal_region.corners()
        heights = self.object_region.corners()[:, 2]
        return np.vstack([np.column_stack([points[:, :2], np.full(len(points), z)])
                          for z in (heights.min(), heights.max())])

    def reset(self, rng: np.random.Generator, to_base) -> None:
        start = self._place_object(rng)
        goal, _ = self.goal_region.sample(rng)
        goal[2] = start[2]  # on the table, at the object's resting height
        self.goal = to_base(goal)


class PickPlaceTask(_ObjectTask):
    """Pick the object up and hold it at a goal drawn from the region, often in the air."""

    name = "PickPlace"
    # Reactive, so that clones of it are unambiguous and DAgger can relabel (see
    # reactive_pick); measured over 200 episodes: 100% nominal, 99% under the `standard`
    # preset, 97.5% with benchmarks/shifted_physics.yaml on top (the phase machine it
    # replaced, pick_place.PickPlaceExpert(place=False, clearance_m=0.05, lift_m=0.02,
    # grip_steps=5, tolerance_m=0.01), did 100 / 99 / 96% over 100).
    expert = ReactivePickExpert
    suction_expert = ReactiveSuctionExpert
    preset = "pickplace"

    def reset(self, rng: np.random.Generator, to_base) -> None:
        self._place_object(rng)
        self.goal = to_base(self.goal_region.sample(rng)[0])

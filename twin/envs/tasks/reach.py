"""Reach: bring the TCP to a goal point."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task, find_region
from celltwin.experts.by_task import ReachExpert


class ReachTask(Task):
    """Move the TCP within 5 cm of a goal drawn from the ``reach_space`` region.

    Args:
        goal_region: spawn region goals are drawn from.
    """

    name = "Reach"
    max_episode_steps = 50  # panda-gym's
    default_cell = "reach_table"
    cell_needs = ("a spawn region `reach_space` (or `goal_region=`) to draw goals from",)
    expert = ReachExpert
    preset = "reach"
    observation_terms = ("ee_position", "ee_velocity")
    uses_gripper = False

    def __init__(self, world, robot, reward: str = "sparse", goal_region: str = "reach_space"):
        super().__init__(world, robot, reward)
        self.goal_region = find_region(world, goal_region, self.env_id)

    def reset(self, rng: np.random.Generator, to_base) -> None:
        self.goal = to_base(self.goal_region.sample(rng)[0])

    def achieved_goal(self, state: dict) -> np.ndarray:
        return state["ee_position"]

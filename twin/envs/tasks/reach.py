"""Reach: bring the TCP to a goal point."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task, find_region


class ReachTask(Task):
    """Move the TCP within 5 cm of a goal drawn from the ``reach_space`` region.

    Args:
        goal_region: spawn region goals are drawn from.
    """

    name = "Reach"
    observation_terms = ("ee_position", "ee_velocity")
    uses_gripper = False

    def __init__(self, world, robot, reward: str = "sparse", goal_region: str = "reach_space"):
        super().__init__(world, robot, reward)
        self.goal_region = find_region(world, goal_region, "celltwin/Reach-v0")

    def reset(self, rng: np.random.Generator, to_base) -> None:
        self.goal = to_base(self.goal_region.sample(rng)[0])

    def achieved_goal(self, state: dict) -> np.ndarray:
        return state["ee_position"]

"""Reach: bring the TCP to a goal point."""

from __future__ import annotations

import numpy as np

from celltwin.envs.tasks.base import Task
from celltwin.envs.tasks.cell_names import around_home, find_goal_region, region_label
from celltwin.experts.by_task import ReachExpert
from celltwin.spec.conventions import GOAL_REGION, REACH_REGION


class ReachTask(Task):
    """Move the TCP within 5 cm of a goal drawn from the goal region.

    Args:
        goal_region: spawn region goals are drawn from (default: ``reach_space``, else
            ``goal_space``, else a box around the TCP at home).
    """

    name = "Reach"
    max_episode_steps = 50  # panda-gym's
    default_cell = "reach_table"
    cell_needs = ("nothing: goals from `goal_region=`, else `reach_space`, else `goal_space`, "
                  "else around the TCP at home",)
    expert = ReachExpert
    preset = "reach"
    observation_terms = ("ee_position", "ee_velocity")
    uses_gripper = False

    def __init__(self, world, robot, reward: str = "sparse", goal_region: str | None = None):
        super().__init__(world, robot, reward)
        self.goal_region = find_goal_region(world, self.env_id, goal_region,
                                            (REACH_REGION, GOAL_REGION),
                                            lambda: around_home(world, robot))

    def describe(self) -> str:
        return f"goals from {region_label(self.goal_region)}"

    def reset(self, rng: np.random.Generator, to_base) -> None:
        self.goal = to_base(self.goal_region.sample(rng)[0])

    def achieved_goal(self, state: dict) -> np.ndarray:
        return state["ee_position"]

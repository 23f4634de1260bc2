"""What every scripted expert shares: reading its env's observations, shaping its actions."""

from __future__ import annotations

import numpy as np


class Expert:
    """Base of the scripted experts (``ee_delta`` envs); see :mod:`celltwin.experts.by_task`."""

    # Whether the action depends on the current observation alone: only such an expert can
    # label states a learner drove it into (DAgger); phase machines remember their phase.
    markov = False

    def __init__(self, env):
        base = env.unwrapped
        if base.controller.mode != "ee_delta":
            raise ValueError(f"scripted experts drive the ee_delta controller, not "
                             f"'{base.controller.mode}'")
        self.layout = base.layout
        self.scale_m = base.controller.scale_m
        self.uses_gripper = base.task.uses_gripper

    def reset(self) -> None:
        """Forget the current episode (call after ``env.reset``)."""

    def term(self, observation, name: str) -> np.ndarray:
        """Observation term ``name`` (``ee_position``, ...) out of a Dict or flat observation."""
        vector = observation["observation"] if isinstance(observation, dict) else observation
        return np.asarray(self.layout.get(vector, name), dtype=float)

    @staticmethod
    def goal(observation) -> np.ndarray:
        """The desired goal of a Dict observation, or the last three values of a flat one."""
        if isinstance(observation, dict):
            return np.asarray(observation["desired_goal"], dtype=float)
        return np.asarray(observation[-3:], dtype=float)

    # Share of the remaining distance commanded per step: below 1, so that actuation latency
    # (a randomized twin, a real controller) does not turn the approach into an oscillation.
    gain = 0.6

    def delta(self, ee: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Normalized ``ee_delta`` action: ``gain`` of the way from ``ee`` to ``target``."""
        return np.clip(self.gain * (target - ee) / self.scale_m, -1.0, 1.0)

    def finish(self, action: np.ndarray) -> np.ndarray:
        """``action`` as the env takes it: float32, without the gripper when the task has none."""
        return (action if self.uses_gripper else action[:3]).astype(np.float32)

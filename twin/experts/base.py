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
        self.period_s = base.world.control_period_s
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

    # TCP deceleration the approach plans with [m/s^2]. The arm's set-points are bounded in
    # joint speed and acceleration (celltwin.core.joint_motion, as on a deployed robot): a
    # TCP that comes in faster than it can brake overshoots its target (into the table, past
    # the part). A few m/s^2 is what the arms' joint acceleration limits give at the TCP.
    braking_mps2 = 5.0
    # Share of the TCP's own motion taken off each step's command, for an expert that reads
    # the TCP velocity (``_ee_velocity``): a set-point that is still moving keeps moving
    # while it brakes, and a pure proportional approach then circles the grasp point
    # (measured on PickPlace: 38/40 nominal without it, 40/40 with it, 22 steps on average).
    damping = 0.5
    _ee_velocity: np.ndarray | None = None

    def delta(self, ee: np.ndarray, target: np.ndarray, speed: float = 1.0,
              stop_m: float | None = None) -> np.ndarray:
        """Normalized ``ee_delta`` action: ``gain`` of the way from ``ee`` to ``target``, at
        most ``speed`` per element and no faster than the TCP can brake within ``stop_m``
        [m] (default: before ``target``)."""
        error = np.asarray(target, dtype=float) - ee
        delta = self.gain * error / self.scale_m
        if self.damping and self._ee_velocity is not None:
            delta = delta - self.damping * self._ee_velocity * self.period_s / self.scale_m
        delta = np.clip(delta, -speed, speed)
        distance = float(np.linalg.norm(error)) if stop_m is None else float(stop_m)
        # The fastest step that still stops within the distance: sqrt(2 a d) for one period.
        most = np.sqrt(2.0 * self.braking_mps2 * distance) * self.period_s / self.scale_m
        size = float(np.linalg.norm(delta))
        return delta * (most / size) if size > most else delta

    def finish(self, action: np.ndarray) -> np.ndarray:
        """``action`` as the env takes it: float32, without the gripper when the task has none."""
        return (action if self.uses_gripper else action[:3]).astype(np.float32)

"""Replaying logged set-points in the pybullet twin, headless.

The twin is the cell's :class:`~celltwin.world.World`, stepped exactly as the envs and the
served twin step it: set-points go through the robot's actuation (its latency queue), one
control period per :meth:`World.step`. So a latency or a gain fitted here means what it means
in training. Sensor noise is switched off: the replay predicts the true joint positions, and
the logged ones carry the noise.

A log's samples are put on the twin's control grid by their times; sample ``k`` is read at
its grid step, before its set-point is sent (the adapter reads, then sends).
"""

from __future__ import annotations

import numpy as np

from celltwin.calibrate.errors import CalibrationError
from celltwin.calibrate.logs import Log
from celltwin.core.errors import Problem
from celltwin.physics import PhysicsParams

# How far a log's sample interval may stray from the twin's control period [-].
PERIOD_TOLERANCE = 0.05


class Replay:
    """One headless twin of a cell that replays logs of one of its robots.

    Args:
        cell: the cell (name, file or CellSpec).
        robot: the robot's name in the cell (the only one when omitted).
        physics: overrides applied before anything is fitted (``--physics``).
    """

    def __init__(self, cell, robot: str | None = None, physics: PhysicsParams | None = None):
        from celltwin.world import World

        self.world = World(cell, physics=physics)
        self.robot = self.world.robot(robot)
        self.robot_name = self.robot.name
        self.world.apply_physics(PhysicsParams.from_mapping(
            {"robots": {self.robot_name: {"joint_noise_std_rad": 0.0}}}, source="<replay>"))
        self.nominal = self.world.physics_params()
        self.period_s = float(self.world.control_period_s)
        self._start = self.world.snapshot()

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.robot.model.arm_joint_names)

    @property
    def payload_link(self) -> str:
        """The link that carries the TCP, as PhysicsParams names it (``body/link``)."""
        client = self.world.client
        return client.getJointInfo(self.robot.body_id, self.robot.ee_link_index)[12].decode()

    def grid(self, log: Log) -> np.ndarray:
        """Each sample's control step from the first (refuses a log sampled at another rate)."""
        steps = (log.times_s - log.times_s[0]) / self.period_s
        interval = float(np.median(np.diff(log.times_s))) if len(log.times_s) > 1 else 0.0
        if abs(interval - self.period_s) > PERIOD_TOLERANCE * self.period_s:
            raise CalibrationError(Problem(
                f"log is sampled every {interval:.4g} s, the twin's control period is "
                f"{self.period_s:.4g} s", file=log.source, path="t_s", value=interval,
                expected="one sample per control period (set the twin's with --physics "
                         "timestep_s/substeps)"))
        return np.rint(steps).astype(int)

    def simulate(self, log: Log, grid: np.ndarray, physics: PhysicsParams) -> np.ndarray:
        """Joint positions the twin predicts at each sample of ``log`` [rad], shape (N, dof).

        Starts at rest at the first logged positions, with ``physics`` applied.
        """
        world, robot = self.world, self.robot
        world.restore(self._start)
        robot.reset_joints(log.positions[0])
        world.apply_physics(physics)
        predicted = np.empty_like(log.positions)
        command, read = robot.command_joint_positions, robot.joint_positions
        setpoints = log.setpoints
        count = len(grid)
        k = 0
        for step in range(int(grid[-1]) + 1):
            while k < count and grid[k] == step:
                predicted[k] = read()
                command(setpoints[k])
                k += 1
            if k < count:
                world.step()
        return predicted

    def close(self) -> None:
        self.world.close()

"""The MuJoCo twin as a robot controller: the served twin's contract over the second engine.

:class:`MujocoVirtualController` is :class:`celltwin.serve.VirtualController` (operational mode,
emergency and protective stops, set-points dropped while stopped, latency and sensor noise,
one state sample per tick, the stall hook) over a :class:`celltwin.mujoco.twin.MujocoTwin`, so
the deployment adapter drives either engine through the same interface:
``InProcessController(MujocoVirtualController.from_cell("reach_table"))`` in process, and the
same object behind ``VirtualControllerServer`` over OPC UA.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from celltwin.mujoco.twin import MujocoTwin
from celltwin.physics import PhysicsParams
from celltwin.serve.virtual_controller import VirtualController


class MujocoVirtualController(VirtualController):
    """One robot of a MuJoCo twin, driven like a robot controller (see
    :class:`celltwin.serve.VirtualController` for the arguments and the contract).

    Attributes:
        tracked: the bodies whose positions each state sample reports.
    """

    def __init__(self, world: MujocoTwin, robot: str | None = None, *,
                 tracked_objects=(), **options):
        self.tracked = tuple(tracked_objects)  # before the base class takes its first sample
        super().__init__(world, robot, tracked_objects=self.tracked, **options)

    @classmethod
    def from_cell(cls, cell, *, robot: str | None = None, physics: PhysicsParams | None = None,
                  held_grippers=(), **options) -> "MujocoVirtualController":
        """Build the MuJoCo twin of ``cell`` (a CellSpec, file or example name) and control one
        robot; the controller owns the twin and closes it in :meth:`close`."""
        twin = MujocoTwin(cell, physics=physics, held_grippers=held_grippers)
        try:
            return cls(twin, robot, owns_world=True, **options)
        except BaseException:
            twin.close()
            raise

    def _object_positions(self) -> Mapping[str, np.ndarray]:
        # The pose a vision system reports: each tracked body's centre of mass (what pybullet
        # reports as its base position) in the robot's base frame.
        if not self.tracked:
            return {}
        rotation = _matrix(self.robot.base_quat_xyzw)
        positions = {}
        for name in self.tracked:
            position, _ = self.world.pose(name)
            positions[name] = rotation.T @ (position - self.robot.base_xyz)
        return positions


def _matrix(quat_xyzw) -> np.ndarray:
    x, y, z, w = (float(v) for v in quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])

"""The MuJoCo twin as a robot controller: the served twin's contract over the second engine.

:class:`MujocoVirtualController` is :class:`celltwin.serve.VirtualController` (operational mode,
emergency and protective stops, set-points dropped while stopped, latency and sensor noise,
one state sample per tick, the stall hook) over a :class:`celltwin.mujoco.twin.MujocoTwin`, so
the deployment adapter drives either engine through the same interface:
``InProcessController(MujocoVirtualController.from_cell("reach_table"))`` in process, and the
same object behind ``VirtualControllerServer`` over OPC UA.
"""

from __future__ import annotations

from celltwin.mujoco.source import TwinSource
from celltwin.mujoco.twin import MujocoTwin
from celltwin.physics import PhysicsParams
from celltwin.serve.virtual_controller import VirtualController


class MujocoVirtualController(VirtualController):
    """One robot of a MuJoCo twin, driven like a robot controller (see
    :class:`celltwin.serve.VirtualController` for the arguments and the contract; the twin
    answers the same questions a pybullet world does, ``pose(name)`` for tracked bodies)."""

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

    @classmethod
    def of_world(cls, world, robot: str | None = None, **options) -> "MujocoVirtualController":
        """The MuJoCo twin of the pybullet ``world`` as it stands now (its cell, PhysicsParams,
        parts, joints, held grippers and randomized draws: :meth:`TwinSource.of_world`),
        controlled as ``VirtualController(world, robot, **options)`` controls the world. The
        controller owns the twin; ``world`` may be closed afterwards."""
        twin = MujocoTwin.from_source(TwinSource.of_world(world))
        try:
            return cls(twin, robot, owns_world=True, **options)
        except BaseException:
            twin.close()
            raise

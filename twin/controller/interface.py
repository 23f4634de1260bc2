"""What the deployment adapter needs from a robot controller, whatever carries it.

Two transports implement :class:`Controller`: the in-process twin controller
(``celltwin.serve``; a pybullet twin with injectable latency and noise) and the OPC UA client
(``celltwin.policies.deploy.opcua_client``; any server with the OPC 40010 robotics model and
celltwin's command interface, e.g. ``celltwin serve``). The adapter talks to both the same way, so a
policy commissioned against the twin runs unchanged against a real cell.

Units: SI throughout (m, rad, s). Joint arrays follow ``Controller.joint_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

import numpy as np

# OPC 40010-1 OperationalModeEnumeration names.
OPERATIONAL_MODES = ("OTHER", "MANUAL_REDUCED_SPEED", "MANUAL_HIGH_SPEED", "AUTOMATIC",
                     "AUTOMATIC_EXTERNAL")
# The automatic modes: the only ones in which a policy may move the robot (in the manual modes
# a person is in the cell with an enabling device).
MOVING_MODES = frozenset({"AUTOMATIC", "AUTOMATIC_EXTERNAL"})


@dataclass(frozen=True)
class ControllerState:
    """One sample of controller state.

    Attributes:
        stamp_s: when the controller took the sample, on its own monotonic clock [s]; the
            adapter's watchdog stops when this stops advancing.
        joint_positions: actual arm joint positions [rad].
        joint_velocities: actual arm joint velocities [rad/s].
        gripper_width_m: opening between the finger pads [m], ``None`` without a gripper.
        operational_mode: one of :data:`OPERATIONAL_MODES`.
        emergency_stop: an emergency stop is active.
        protective_stop: a protective stop is active.
        objects: tracked object positions in the robot base frame [m] (e.g. from vision),
            by name; empty when the cell has no tracking.
    """

    stamp_s: float
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    gripper_width_m: float | None
    operational_mode: str
    emergency_stop: bool
    protective_stop: bool
    objects: Mapping[str, np.ndarray] = field(default_factory=dict)


class Controller(Protocol):
    """A robot controller the adapter can read state from and send joint set-points to.

    Attributes:
        robot_model: the controller's robot model name (e.g. ``panda``), checked against the
            bundle's manifest before anything moves.
        joint_names: names of the arm joints, in the order of every joint array.
    """

    robot_model: str
    joint_names: tuple[str, ...]

    def read_state(self) -> ControllerState:
        """Return the latest state sample (raises ``ControllerError`` when unreachable)."""

    def send_joint_targets(self, positions: np.ndarray, gripper_width_m: float | None = None) -> None:
        """Command joint position set-points [rad] (and a gripper opening [m])."""

    def close(self) -> None:
        """Release the connection; the controller holds its last set-point."""

"""Decoding one Read answer of an OPC UA controller into a :class:`ControllerState`.

Safety values are taken only as the contract has them: a mode outside the enumeration or a
stop flag that is not a boolean (null, a number) is an out-of-contract answer, never read as
"automatic, no stop".
"""

from __future__ import annotations

import math

import numpy as np
from asyncua import ua

from celltwin.controller.errors import ControllerError
from celltwin.controller.interface import OPERATIONAL_MODES, ControllerState
from celltwin.core.errors import Problem
from celltwin.policies.deploy.opcua_browse import ServerNodes


def decode_state(endpoint: str, nodes: ServerNodes,
                 values: list[ua.DataValue]) -> tuple[ControllerState, int]:
    """The state in ``values`` (read from ``nodes.state_nodes``), and the accepted sequence.

    Args:
        endpoint: the server, for messages.
        nodes: what was browsed at connect.
        values: the answer of one Read of ``nodes.state_nodes``.

    Returns:
        The controller's state and the number of the last command it accepted.

    Raises:
        ControllerError: a value's status is not Good, or a value is out of contract.
    """
    bad = [(node, value.StatusCode) for node, value in zip(nodes.state_nodes, values)
           if value.StatusCode is not None and not value.StatusCode.is_good()]
    if bad:
        raise ControllerError([Problem(f"{endpoint} answered {status.name} for "
                                       f"{node.nodeid.to_string()}", value=status.name,
                                       expected="Good")
                               for node, status in bad])
    raw = [value.Value.Value if value.Value is not None else None for value in values]
    dof = len(nodes.joint_names)
    stamp, positions, speeds = raw[0], raw[1:1 + dof], raw[1 + dof:1 + 2 * dof]
    gripper, mode, estop, pstop, accepted = raw[1 + 2 * dof:6 + 2 * dof]
    objects = raw[6 + 2 * dof:]
    if isinstance(mode, bool) or not isinstance(mode, int) \
            or not 0 <= mode < len(OPERATIONAL_MODES):
        raise ControllerError(Problem(f"{endpoint} reports an invalid operational mode",
                                      path="SafetyStates.OperationalMode", value=mode,
                                      expected=f"an integer 0-{len(OPERATIONAL_MODES) - 1}"))
    for name, flag in (("EmergencyStop", estop), ("ProtectiveStop", pstop)):
        if not isinstance(flag, bool):
            raise ControllerError(Problem(f"{endpoint} reports an invalid {name}",
                                          path=f"SafetyStates.{name}", value=flag,
                                          expected="a Boolean"))
    try:
        mode_name = OPERATIONAL_MODES[mode]
        state = ControllerState(
            stamp_s=float(stamp),
            joint_positions=np.asarray(positions, dtype=float) * nodes.angle_scale,
            joint_velocities=np.asarray(speeds, dtype=float) * nodes.speed_scale,
            gripper_width_m=None if gripper is None or math.isnan(gripper) else float(gripper),
            operational_mode=mode_name, emergency_stop=bool(estop), protective_stop=bool(pstop),
            objects={name: np.asarray(position, dtype=float)
                     for name, position in zip(nodes.object_names, objects)})
    except (TypeError, ValueError, IndexError):
        raise ControllerError(Problem(f"{endpoint} answered values out of contract",
                                      value=repr(raw)[:200],
                                      expected="numbers, an OperationalModeEnumeration value "
                                               "and booleans")) from None
    return state, int(accepted or 0)

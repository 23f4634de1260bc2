"""Finding a controller's nodes by browse name: what the OPC UA client reads and writes.

Nodes are found by browse name at connect time, never by node id, so any server with the OPC
40010 robotics model and celltwin's command interface (:mod:`celltwin.controller.opcua_model`)
works. A missing node is a model mismatch reported with its browse path. Positions are
reported in radians: a server whose ``EngineeringUnits`` say degrees is converted, any other
unit is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from asyncua import Client, Node, ua

from celltwin.controller import opcua_model as model
from celltwin.core.errors import Problem

_ANGLE_SCALE = {None: 1.0, model.UNIT_RADIAN: 1.0, model.UNIT_DEGREE: math.pi / 180.0}
_SPEED_SCALE = {None: 1.0, model.UNIT_RADIAN_PER_SECOND: 1.0,
                model.UNIT_DEGREE_PER_SECOND: math.pi / 180.0}


class ModelMismatch(Exception):
    """The server lacks part of the model (raised inside the loop, reported as ControllerError).

    Attributes:
        problems: one :class:`~celltwin.core.errors.Problem` per missing or wrong part.
    """

    def __init__(self, problems):
        super().__init__()
        self.problems = problems if isinstance(problems, list) else [problems]


@dataclass(frozen=True)
class ServerNodes:
    """The nodes of one motion device and of the command interface, as browsed at connect.

    Attributes:
        robot_model: the MotionDevice's ``Model`` (e.g. ``panda``).
        joint_names: the order of joint arrays (the server's ``JointNames``).
        control_period_s: the server's control period [s].
        accepted_sequence: number of the last command the controller had accepted [-].
        interface: the command interface object, whose method raises a protective stop.
        protective_stop: the ``RaiseProtectiveStop`` method.
        setpoints: the joint set-points written by a command.
        gripper_setpoint: the gripper opening written by a command.
        sequence: the command sequence number; writing it commits the set-points.
        state_nodes: what one Read returns the state from, in the order
            :func:`celltwin.policies.deploy.opcua_state.decode_state` reads it: stamp, joint
            positions, joint speeds, gripper width, operational mode, emergency stop,
            protective stop, accepted sequence, tracked objects.
        object_names: the tracked objects, in the order of their state nodes.
        angle_scale: factor from the server's position unit to radians [-].
        speed_scale: factor from the server's speed unit to radians per second [-].
    """

    robot_model: str
    joint_names: tuple[str, ...]
    control_period_s: float
    accepted_sequence: int
    interface: Node
    protective_stop: ua.NodeId
    setpoints: Node
    gripper_setpoint: Node
    sequence: Node
    state_nodes: list[Node]
    object_names: tuple[str, ...]
    angle_scale: float
    speed_scale: float


async def browse(client: Client, endpoint: str, motion_device: str | None) -> ServerNodes:
    """Find the nodes of ``motion_device`` (``None``: the only one) on a connected server.

    Raises:
        ModelMismatch: a namespace, node, axis or unit of the model is missing or unknown.
    """
    namespaces = await client.get_namespace_array()
    missing = [uri for uri in (model.DI_NS, model.ROBOTICS_NS, model.CELLTWIN_NS)
               if uri not in namespaces]
    if missing:
        raise ModelMismatch([Problem(f"{endpoint} has no namespace '{uri}'", path="namespaces",
                                     expected="the OPC 40010 robotics model with celltwin's "
                                              "command interface") for uri in missing])
    ns = {uri: namespaces.index(uri) for uri in namespaces}
    ns[None] = 0
    return await _Browser(client, endpoint, ns).nodes(motion_device)


class _Browser:
    """Browses one server whose namespace indices are known."""

    def __init__(self, client: Client, endpoint: str, ns: dict):
        self.client = client
        self.endpoint = endpoint
        self.ns = ns

    async def nodes(self, motion_device: str | None) -> ServerNodes:
        client = self.client
        objects = client.nodes.objects.nodeid
        system = model.SYSTEM_PATH
        interface = system + (model.COMMAND_INTERFACE,)
        names = (model.JOINT_NAMES, model.JOINT_SETPOINTS, model.GRIPPER_SETPOINT, model.SEQUENCE,
                 model.ACCEPTED_SEQUENCE, model.STATE_STAMP, model.GRIPPER_WIDTH,
                 model.CONTROL_PERIOD, model.TRACKED_OBJECTS, model.RAISE_PROTECTIVE_STOP)
        found = await self._resolve([(objects, system + (model.MOTION_DEVICES,)),
                                     (objects, system + (model.SAFETY_STATES,)),
                                     (objects, interface)]
                                    + [(objects, interface + (name,)) for name in names])
        devices_folder, safety_folder, interface_id = found[:3]
        (joint_names_node, setpoints, gripper_setpoint, sequence, accepted, stamp, gripper_width,
         period_node, tracked, protective_stop) = found[3:]

        device = await self._pick_child(devices_folder, motion_device,
                                        model.path_text(system + (model.MOTION_DEVICES,)))
        safety_state = await self._pick_child(safety_folder, None,
                                              model.path_text(system + (model.SAFETY_STATES,)))
        safety = (model.PARAMETER_SET,)
        model_node, axes, mode, estop, pstop = await self._resolve([
            (device, (model.MODEL,)), (device, (model.AXES,)),
            (safety_state, safety + (model.OPERATIONAL_MODE,)),
            (safety_state, safety + (model.EMERGENCY_STOP,)),
            (safety_state, safety + (model.PROTECTIVE_STOP,))])

        joint_names, period, robot_model, accepted_now = await client.read_values(
            [client.get_node(node)
             for node in (joint_names_node, period_node, model_node, accepted)])
        joint_names = tuple(joint_names)

        axis_nodes = {ref.BrowseName.Name: ref.NodeId
                      for ref in await client.get_node(axes).get_children_descriptions()}
        unknown = [name for name in joint_names if name not in axis_nodes]
        if unknown:
            raise ModelMismatch([Problem(f"{self.endpoint} lists joint '{name}' in JointNames "
                                         "but has no axis of that name", path="Axes",
                                         value=name,
                                         expected="one of: " + ", ".join(sorted(axis_nodes)))
                                 for name in unknown])
        parameters = (model.PARAMETER_SET,)
        axis_paths = []
        for name in joint_names:
            axis_paths += [(axis_nodes[name], parameters + (model.ACTUAL_POSITION,)),
                           (axis_nodes[name], parameters + (model.ACTUAL_SPEED,))]
        axis_found = await self._resolve(axis_paths)
        positions, speeds = axis_found[0::2], axis_found[1::2]
        # Units of the first axis stand for all: the protocol carries revolute arms only.
        angle_scale, speed_scale = await self._unit_scales(positions[0], speeds[0])

        object_refs = await client.get_node(tracked).get_children_descriptions()
        return ServerNodes(
            robot_model=(robot_model.Text if isinstance(robot_model, ua.LocalizedText)
                         else str(robot_model)),
            joint_names=joint_names, control_period_s=float(period),
            accepted_sequence=int(accepted_now or 0),
            interface=client.get_node(interface_id), protective_stop=protective_stop,
            setpoints=client.get_node(setpoints),
            gripper_setpoint=client.get_node(gripper_setpoint),
            sequence=client.get_node(sequence),
            state_nodes=[client.get_node(node) for node in (
                stamp, *positions, *speeds, gripper_width, mode, estop, pstop, accepted,
                *(ref.NodeId for ref in object_refs))],
            object_names=tuple(ref.BrowseName.Name for ref in object_refs),
            angle_scale=angle_scale, speed_scale=speed_scale)

    async def _resolve(self, paths: Sequence[tuple[ua.NodeId, tuple]]) -> list:
        """Node ids of ``(start, browse path)`` pairs in one TranslateBrowsePaths call."""
        requests = []
        for start, path in paths:
            elements = [ua.RelativePathElement(
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences), IsInverse=False,
                IncludeSubtypes=True, TargetName=ua.QualifiedName(name, self.ns[uri]))
                for uri, name in path]
            requests.append(ua.BrowsePath(StartingNode=start,
                                          RelativePath=ua.RelativePath(Elements=elements)))
        results = await self.client.uaclient.translate_browsepaths_to_nodeids(requests)
        problems = [Problem(f"{self.endpoint} has no node {model.path_text(path)}",
                            path=model.path_text(path),
                            expected="the OPC 40010 robotics model with celltwin's command "
                                     "interface (docs/serve.md)")
                    for (_, path), result in zip(paths, results)
                    if not result.StatusCode.is_good() or not result.Targets]
        if problems:
            raise ModelMismatch(problems)
        return [result.Targets[0].TargetId for result in results]

    async def _pick_child(self, folder: ua.NodeId, name: str | None, where: str) -> ua.NodeId:
        children = {ref.BrowseName.Name: ref.NodeId
                    for ref in await self.client.get_node(folder).get_children_descriptions()
                    if ref.NodeClass == ua.NodeClass.Object}
        if name is None and len(children) == 1:
            return next(iter(children.values()))
        if name in children:
            return children[name]
        what = "several; name one with motion_device" if name is None else f"no '{name}'"
        raise ModelMismatch(Problem(f"{self.endpoint}: {where} has {what}" if children
                                    else f"{self.endpoint}: {where} is empty", path=where,
                                    value=name,
                                    expected="one of: " + ", ".join(sorted(children))
                                    if children else "one object"))

    async def _unit_scales(self, position: ua.NodeId, speed: ua.NodeId) -> list[float]:
        units = self.ns[None], "EngineeringUnits"
        lookups = await self.client.get_node(position).get_children_by_path(
            [ua.QualifiedName(units[1], units[0])], raise_on_partial_error=False)
        lookups += await self.client.get_node(speed).get_children_by_path(
            [ua.QualifiedName(units[1], units[0])], raise_on_partial_error=False)
        scales = []
        for found, table, what in ((lookups[0], _ANGLE_SCALE, "ActualPosition"),
                                   (lookups[1], _SPEED_SCALE, "ActualSpeed")):
            unit = None
            if found:
                info = await found[0].read_value()
                unit = getattr(info, "UnitId", None)
            if unit not in table:
                raise ModelMismatch(Problem(f"{self.endpoint} publishes {what} in an unknown "
                                            "unit", path=f"{what}.EngineeringUnits", value=unit,
                                            expected="radian or degree (UNECE C81 / DD)"))
            scales.append(table[unit])
        return scales


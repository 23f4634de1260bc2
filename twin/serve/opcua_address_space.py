"""The address space of a served twin: OPC 40010 robotics model plus celltwin's command interface.

Browse names (``[DI]``, ``[Robotics]``, ``[celltwin]`` are the namespaces
``http://opcfoundation.org/UA/DI/``, ``http://opcfoundation.org/UA/Robotics/`` and
``urn:celltwin:opcua``; :mod:`celltwin.controller.opcua_model` lists them for clients)::

    Objects/[DI]DeviceSet/[celltwin]MotionDeviceSystem          OPC 40010-1 MotionDeviceSystem
      [Robotics]MotionDevices/<robot>                           MotionDevice
        [DI]Manufacturer, [DI]Model (robot model, e.g. panda), [DI]ProductCode, [DI]SerialNumber
        [Robotics]MotionDeviceCategory (1 = ARTICULATED_ROBOT)
        [Robotics]Axes/<joint>/[Robotics]MotionProfile (1 = ROTARY)
        [Robotics]Axes/<joint>/[DI]ParameterSet/[Robotics]ActualPosition   Double [rad]
        [Robotics]Axes/<joint>/[DI]ParameterSet/[Robotics]ActualSpeed      Double [rad/s]
        [Robotics]PowerTrains                                   (empty)
      [Robotics]Controllers/VirtualController                   nameplate only
      [Robotics]SafetyStates/SafetyState/[DI]ParameterSet
        [Robotics]OperationalMode  Int32 (OperationalModeEnumeration: 3 = AUTOMATIC)
        [Robotics]EmergencyStop, [Robotics]ProtectiveStop   Boolean
      [celltwin]CommandInterface
        JointNames String[n], ControlPeriod Double [s]
        JointSetpoints Double[n] [rad] (writable), GripperSetpoint Double [m] (writable),
        Sequence UInt32 (writable; writing it commits), AcceptedSequence UInt32,
        StateStamp Double [s], GripperWidth Double [m] (NaN: no gripper),
        TrackedObjects/<name> Double[3] [m, robot base frame]
        RaiseEmergencyStop(), ClearEmergencyStop(), RaiseProtectiveStop(),
        ClearProtectiveStop(), SetOperationalMode(Int32)

Instance nodes live in celltwin's namespace with readable string ids
(``ns=<celltwin>;s=MotionDeviceSystem.CommandInterface.JointSetpoints``); clients should browse
by name, as :mod:`celltwin.policies.deploy.opcua_client` does. The companion specification's type
nodes (MotionDeviceSystemType, AxisType, ...) are not loaded: that needs the DI and Robotics
NodeSet2 files, which asyncua does not ship; instances carry the spec's browse names, and
measured values carry ``EngineeringUnits`` (UNECE codes) as AnalogUnitType variables do.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Awaitable, Callable

from asyncua import Server, ua

from celltwin.controller import opcua_model as model
from celltwin.controller.interface import OPERATIONAL_MODES

_LOG = logging.getLogger("celltwin.serve")  # the serve log: one line per refused call

RADIAN = (model.UNIT_RADIAN, "rad", "radian")
RADIAN_PER_SECOND = (model.UNIT_RADIAN_PER_SECOND, "rad/s", "radian per second")
METRE = (model.UNIT_METRE, "m", "metre")
SECOND = (model.UNIT_SECOND, "s", "second")


@dataclass(frozen=True)
class CommandHandlers:
    """What the server does when a client writes or calls the command interface.

    Attributes:
        stage_joints: asyncua value setter of ``JointSetpoints``.
        stage_gripper: asyncua value setter of ``GripperSetpoint``.
        commit: asyncua value setter of ``Sequence``.
        safety: runs a safety action of the controller (``raise_emergency_stop``, ...) and
            publishes the result; a coroutine, so that it runs in the server's loop.
    """

    stage_joints: Callable
    stage_gripper: Callable
    commit: Callable
    safety: Callable[[Callable[[], None]], Awaitable[None]]


async def build_address_space(server: Server, controller, serial_number: str,
                              handlers: CommandHandlers) -> dict[str, ua.NodeId]:
    """Add the model for ``controller`` under Objects.

    Returns:
        the node id of every value the server keeps current, by key: ``stamp``,
        ``gripper``, ``mode``, ``estop``, ``pstop``, ``accepted``, ``position<i>``,
        ``speed<i>`` and ``object:<name>``.
    """
    return await _Builder(server, controller).build(serial_number, handlers)


class _Builder:
    def __init__(self, server: Server, controller):
        self.server = server
        self.controller = controller
        self.published: dict[str, ua.NodeId] = {}

    async def build(self, serial_number: str, handlers: CommandHandlers) -> dict[str, ua.NodeId]:
        self.ns = {uri: await self.server.register_namespace(uri)
                   for uri in (model.DI_NS, model.ROBOTICS_NS, model.CELLTWIN_NS)}
        device_set = await self._folder(self.server.nodes.objects, model.DEVICE_SET, "DeviceSet")
        system = await self._object(device_set, model.MOTION_DEVICE_SYSTEM, "MotionDeviceSystem")
        await self._motion_device(system, serial_number)
        controllers = await self._folder(system, model.CONTROLLERS,
                                         "MotionDeviceSystem.Controllers")
        controller_id = "MotionDeviceSystem.Controllers.VirtualController"
        controller = await self._object(controllers, (model.CELLTWIN_NS, "VirtualController"),
                                        controller_id)
        await self._nameplate(controller, controller_id, "VirtualController", serial_number)
        await self._safety_state(system)
        await self._command_interface(system, handlers)
        return self.published

    async def _motion_device(self, system, serial_number: str) -> None:
        controller = self.controller
        devices = await self._folder(system, model.MOTION_DEVICES,
                                     "MotionDeviceSystem.MotionDevices")
        base = f"MotionDeviceSystem.MotionDevices.{controller.robot_name}"
        device = await self._object(devices, (model.CELLTWIN_NS, controller.robot_name), base)
        await self._nameplate(device, base, controller.robot_model, serial_number)
        await self._property(device, model.MOTION_DEVICE_CATEGORY, f"{base}.MotionDeviceCategory",
                             model.ARTICULATED_ROBOT, ua.VariantType.Int32)
        axes = await self._folder(device, model.AXES, f"{base}.Axes")
        for index, joint in enumerate(controller.joint_names):
            axis_id = f"{base}.Axes.{joint}"
            axis = await self._object(axes, (model.CELLTWIN_NS, joint), axis_id)
            await self._property(axis, model.MOTION_PROFILE, f"{axis_id}.MotionProfile",
                                 model.ROTARY, ua.VariantType.Int32)
            parameters_id = f"{axis_id}.ParameterSet"
            parameters = await self._object(axis, model.PARAMETER_SET, parameters_id)
            self.published[f"position{index}"] = await self._variable(
                parameters, model.ACTUAL_POSITION, f"{parameters_id}.ActualPosition", 0.0,
                ua.VariantType.Double, unit=RADIAN)
            self.published[f"speed{index}"] = await self._variable(
                parameters, model.ACTUAL_SPEED, f"{parameters_id}.ActualSpeed", 0.0,
                ua.VariantType.Double, unit=RADIAN_PER_SECOND)
        await self._folder(device, model.POWER_TRAINS, f"{base}.PowerTrains")

    async def _safety_state(self, system) -> None:
        states = await self._folder(system, model.SAFETY_STATES, "MotionDeviceSystem.SafetyStates")
        base = "MotionDeviceSystem.SafetyStates.SafetyState"
        state = await self._object(states, (model.CELLTWIN_NS, "SafetyState"), base)
        parameters = await self._object(state, model.PARAMETER_SET, f"{base}.ParameterSet")
        boolean = ua.VariantType.Boolean
        for key, name, value, vtype in (("mode", model.OPERATIONAL_MODE, 0, ua.VariantType.Int32),
                                        ("estop", model.EMERGENCY_STOP, False, boolean),
                                        ("pstop", model.PROTECTIVE_STOP, False, boolean)):
            self.published[key] = await self._variable(
                parameters, name, f"{base}.ParameterSet.{name[1]}", value, vtype)

    async def _command_interface(self, system, handlers: CommandHandlers) -> None:
        controller = self.controller
        base = "MotionDeviceSystem.CommandInterface"
        interface = await self._object(system, model.COMMAND_INTERFACE, base)
        dof = len(controller.joint_names)
        state = controller.state()
        await self._variable(interface, model.JOINT_NAMES, f"{base}.JointNames",
                             list(controller.joint_names), ua.VariantType.String, dims=[dof])
        await self._variable(interface, model.CONTROL_PERIOD, f"{base}.ControlPeriod",
                             controller.control_period_s, ua.VariantType.Double, unit=SECOND)
        await self._variable(interface, model.JOINT_SETPOINTS, f"{base}.JointSetpoints",
                             controller.active_setpoint.tolist(), ua.VariantType.Double, dims=[dof],
                             unit=RADIAN, setter=handlers.stage_joints)
        await self._variable(interface, model.GRIPPER_SETPOINT, f"{base}.GripperSetpoint",
                             _or_nan(state.gripper_width_m), ua.VariantType.Double, unit=METRE,
                             setter=handlers.stage_gripper)
        await self._variable(interface, model.SEQUENCE, f"{base}.Sequence", 0,
                             ua.VariantType.UInt32, setter=handlers.commit)
        published = self.published
        published["accepted"] = await self._variable(
            interface, model.ACCEPTED_SEQUENCE, f"{base}.AcceptedSequence", 0,
            ua.VariantType.UInt32)
        published["stamp"] = await self._variable(
            interface, model.STATE_STAMP, f"{base}.StateStamp", 0.0, ua.VariantType.Double,
            unit=SECOND)
        published["gripper"] = await self._variable(
            interface, model.GRIPPER_WIDTH, f"{base}.GripperWidth", 0.0, ua.VariantType.Double,
            unit=METRE)
        tracked = await self._object(interface, model.TRACKED_OBJECTS, f"{base}.TrackedObjects")
        for name in state.objects:
            published[f"object:{name}"] = await self._variable(
                tracked, (model.CELLTWIN_NS, name), f"{base}.TrackedObjects.{name}", [0.0] * 3,
                ua.VariantType.Double, dims=[3], unit=METRE)
        await self._methods(interface, base, handlers.safety)

    async def _methods(self, interface, base: str, safety) -> None:
        controller = self.controller
        for name, action in ((model.RAISE_EMERGENCY_STOP, controller.raise_emergency_stop),
                             (model.CLEAR_EMERGENCY_STOP, controller.clear_emergency_stop),
                             (model.RAISE_PROTECTIVE_STOP, controller.raise_protective_stop),
                             (model.CLEAR_PROTECTIVE_STOP, controller.clear_protective_stop)):
            async def run(action=action):
                await safety(action)
            await self._method(interface, base, name, (), run)

        async def set_mode(index: int):
            if not 0 <= index < len(OPERATIONAL_MODES):
                return f"mode {index} is not an OperationalModeEnumeration value (0-" \
                       f"{len(OPERATIONAL_MODES) - 1})"
            await safety(lambda: controller.set_operational_mode(OPERATIONAL_MODES[index]))
            return None
        await self._method(interface, base, model.SET_OPERATIONAL_MODE,
                           (("mode", ua.VariantType.Int32),), set_mode)

    async def _method(self, interface, base: str, name, inputs, run) -> None:
        """Add method ``name`` whose arguments are checked against ``inputs`` before ``run``.

        asyncua passes whatever a client sends on to the callable (a wrong count ends in a
        TypeError and a logged traceback). Here a wrong count or type is answered with the
        status OPC 10000-4 (5.11.2) names and one line in the serve log. ``inputs`` is a tuple
        of ``(name, VariantType)``; ``run`` gets the values and may return a reason to refuse
        them (answered ``BadInvalidArgument``, the argument ``BadOutOfRange``).
        """
        method = name[1]

        # A coroutine on purpose: asyncua runs plain callables on a thread pool, which would
        # call into pybullet from a second thread.
        async def call(_parent, *arguments):
            refusal = _argument_refusal(method, inputs, arguments)
            if refusal is None:
                reason = await run(*(argument.Value for argument in arguments))
                if reason is None:
                    return []
                refusal = (reason, ua.StatusCodes.BadInvalidArgument,
                           [ua.StatusCodes.BadOutOfRange] * len(arguments))
            reason, status, argument_statuses = refusal
            _LOG.warning("refused %s call: %s", method, reason)
            return ua.CallMethodResult(
                StatusCode=ua.StatusCode(status),
                InputArgumentResults=[ua.StatusCode(code) for code in argument_statuses])

        arguments = [ua.Argument(Name=argument, DataType=ua.NodeId(vtype.value), ValueRank=-1,
                                 Description=ua.LocalizedText(argument))
                     for argument, vtype in inputs]
        await interface.add_method(self._id(f"{base}.{method}"), self._qname(name), call,
                                   arguments, [])

    # ----------------------------------------------------------------------------- helpers
    def _id(self, text: str) -> ua.NodeId:
        return ua.NodeId(text, self.ns[model.CELLTWIN_NS])

    def _qname(self, name) -> ua.QualifiedName:
        uri, text = name
        return ua.QualifiedName(text, self.ns[uri] if uri else 0)

    async def _folder(self, parent, name, node_id: str):
        return await parent.add_folder(self._id(node_id), self._qname(name))

    async def _object(self, parent, name, node_id: str):
        return await parent.add_object(self._id(node_id), self._qname(name))

    async def _property(self, parent, name, node_id: str, value, vtype):
        return await parent.add_property(self._id(node_id), self._qname(name),
                                         ua.Variant(value, vtype))

    async def _nameplate(self, parent, node_id: str, model_name: str, serial: str) -> None:
        for name, value, vtype in (
                (model.MANUFACTURER, ua.LocalizedText("celltwin"), ua.VariantType.LocalizedText),
                (model.MODEL, ua.LocalizedText(model_name), ua.VariantType.LocalizedText),
                ((model.DI_NS, "ProductCode"), model_name, ua.VariantType.String),
                (model.SERIAL_NUMBER, serial, ua.VariantType.String)):
            await self._property(parent, name, f"{node_id}.{name[1]}", value, vtype)

    async def _variable(self, parent, name, node_id: str, value, vtype, *, dims=None, unit=None,
                        setter=None) -> ua.NodeId:
        node = await parent.add_variable(self._id(node_id), self._qname(name),
                                         ua.Variant(value, vtype, Dimensions=dims))
        if unit is not None:
            unit_id, symbol, description = unit
            information = ua.EUInformation(NamespaceUri=model.UNITS_NAMESPACE, UnitId=unit_id,
                                           DisplayName=ua.LocalizedText(symbol),
                                           Description=ua.LocalizedText(description))
            await node.add_property(self._id(f"{node_id}.EngineeringUnits"),
                                    self._qname(model.ENGINEERING_UNITS),
                                    ua.Variant(information, ua.VariantType.ExtensionObject),
                                    datatype=ua.NodeId(ua.ObjectIds.EUInformation))
        if setter is not None:
            await node.set_writable()
            self.server.set_attribute_value_setter(node.nodeid, setter)
        return node.nodeid


def _argument_refusal(method: str, inputs, arguments) -> tuple | None:
    """Why ``arguments`` do not fit ``inputs``: (reason, status, per-argument statuses)."""
    wanted = ", ".join(f"{vtype.name} {name}" for name, vtype in inputs) or "none"
    if len(arguments) != len(inputs):
        status = (ua.StatusCodes.BadArgumentsMissing if len(arguments) < len(inputs)
                  else ua.StatusCodes.BadTooManyArguments)
        return (f"{len(arguments)} argument(s) given, expected {len(inputs)} ({wanted})", status,
                [ua.StatusCodes.Good] * min(len(arguments), len(inputs))
                + [ua.StatusCodes.BadTooManyArguments] * max(len(arguments) - len(inputs), 0))
    statuses = [ua.StatusCodes.Good if isinstance(argument, ua.Variant)
                and argument.VariantType == vtype and not argument.is_array
                else ua.StatusCodes.BadTypeMismatch
                for argument, (_, vtype) in zip(arguments, inputs)]
    if any(status != ua.StatusCodes.Good for status in statuses):
        given = ", ".join(argument.VariantType.name if isinstance(argument, ua.Variant)
                          else type(argument).__name__ for argument in arguments)
        return (f"arguments of type {given}, expected {wanted}",
                ua.StatusCodes.BadInvalidArgument, statuses)
    return None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)

"""The OPC UA information model that celltwin's controller client expects, by browse name.

This is the contract between :mod:`celltwin.policies.deploy.opcua_client` and any server that wants
to be driven by a celltwin policy (``celltwin serve`` implements it; so could a PLC gateway in a
real cell). It is names only, no asyncua, so both sides import it cheaply.

Monitoring follows OPC 40010-1 (Robotics): a MotionDeviceSystem with the folders MotionDevices,
Controllers and SafetyStates; each axis publishes ``ParameterSet/ActualPosition`` and
``ActualSpeed``; a SafetyState publishes ``ParameterSet/OperationalMode``, ``EmergencyStop`` and
``ProtectiveStop``. The companion specification has no way to command motion, so celltwin adds
``MotionDeviceSystem/CommandInterface`` beside it (see ``docs/serve.md``).

Browse names are qualified by the namespace that defines them, as the companion specification
does: the DI namespace for ``DeviceSet``, ``ParameterSet`` and the nameplate properties, the
Robotics namespace for the robotics names, celltwin's namespace for the command interface and
for instance names (the MotionDeviceSystem object, robots, axes). Clients resolve the namespace
URIs to indexes at connect time; indexes differ between servers.
"""

from __future__ import annotations

# Namespace URIs.
DI_NS = "http://opcfoundation.org/UA/DI/"
ROBOTICS_NS = "http://opcfoundation.org/UA/Robotics/"
CELLTWIN_NS = "urn:celltwin:opcua"

# OPC UA application URIs; a certificate's subjectAltName must carry its application's URI.
SERVER_APPLICATION_URI = "urn:celltwin:virtual-controller"
CLIENT_APPLICATION_URI = "urn:celltwin:deploy-client"

# (namespace URI, name) pairs; a browse path is a tuple of them, starting at the Objects folder.
DEVICE_SET = (DI_NS, "DeviceSet")
MOTION_DEVICE_SYSTEM = (CELLTWIN_NS, "MotionDeviceSystem")
SYSTEM_PATH = (DEVICE_SET, MOTION_DEVICE_SYSTEM)

MOTION_DEVICES = (ROBOTICS_NS, "MotionDevices")
CONTROLLERS = (ROBOTICS_NS, "Controllers")
SAFETY_STATES = (ROBOTICS_NS, "SafetyStates")
AXES = (ROBOTICS_NS, "Axes")
POWER_TRAINS = (ROBOTICS_NS, "PowerTrains")
PARAMETER_SET = (DI_NS, "ParameterSet")
MANUFACTURER = (DI_NS, "Manufacturer")
MODEL = (DI_NS, "Model")
SERIAL_NUMBER = (DI_NS, "SerialNumber")
MOTION_DEVICE_CATEGORY = (ROBOTICS_NS, "MotionDeviceCategory")
MOTION_PROFILE = (ROBOTICS_NS, "MotionProfile")
ACTUAL_POSITION = (ROBOTICS_NS, "ActualPosition")
ACTUAL_SPEED = (ROBOTICS_NS, "ActualSpeed")
OPERATIONAL_MODE = (ROBOTICS_NS, "OperationalMode")
EMERGENCY_STOP = (ROBOTICS_NS, "EmergencyStop")
PROTECTIVE_STOP = (ROBOTICS_NS, "ProtectiveStop")
ENGINEERING_UNITS = (None, "EngineeringUnits")  # namespace 0, the OPC UA base model

# celltwin's command interface, beside the companion-spec folders.
COMMAND_INTERFACE = (CELLTWIN_NS, "CommandInterface")
JOINT_NAMES = (CELLTWIN_NS, "JointNames")
JOINT_SETPOINTS = (CELLTWIN_NS, "JointSetpoints")
GRIPPER_SETPOINT = (CELLTWIN_NS, "GripperSetpoint")
SEQUENCE = (CELLTWIN_NS, "Sequence")
ACCEPTED_SEQUENCE = (CELLTWIN_NS, "AcceptedSequence")
STATE_STAMP = (CELLTWIN_NS, "StateStamp")
GRIPPER_WIDTH = (CELLTWIN_NS, "GripperWidth")
CONTROL_PERIOD = (CELLTWIN_NS, "ControlPeriod")
TRACKED_OBJECTS = (CELLTWIN_NS, "TrackedObjects")
RAISE_EMERGENCY_STOP = (CELLTWIN_NS, "RaiseEmergencyStop")
CLEAR_EMERGENCY_STOP = (CELLTWIN_NS, "ClearEmergencyStop")
RAISE_PROTECTIVE_STOP = (CELLTWIN_NS, "RaiseProtectiveStop")
CLEAR_PROTECTIVE_STOP = (CELLTWIN_NS, "ClearProtectiveStop")
SET_OPERATIONAL_MODE = (CELLTWIN_NS, "SetOperationalMode")

# OPC 40010-1 MotionDeviceCategoryEnumeration and AxisMotionProfileEnumeration values used here.
ARTICULATED_ROBOT = 1
ROTARY = 1

# UNECE codes as OPC UA EUInformation UnitIds (OPC 10000-8: the code's ASCII bytes, big-endian).
UNITS_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"
UNIT_RADIAN = 4405297             # "C81"
UNIT_RADIAN_PER_SECOND = 12865    # "2A"
UNIT_DEGREE = 17476               # "DD"
UNIT_DEGREE_PER_SECOND = 4536630  # "E96"
UNIT_METRE = 5067858              # "MTR"
UNIT_SECOND = 5457219             # "SEC"


def path_text(path) -> str:
    """A browse path written for people: ``DeviceSet/MotionDeviceSystem/...``."""
    return "/".join(name for _, name in path)


def application_uri(certificate) -> str | None:
    """The application URI in a certificate's subjectAltName, if any (asyncua checks that it
    matches the application's own URI). ``certificate``: a ``cryptography`` x509 certificate."""
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None

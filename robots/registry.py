"""The robot models celltwin knows, by name, and the one way to ask for a model.

Three arms ship (``panda``, ``kuka_iiwa``, ``xarm6``), and so does every robot file in
``assets/robots``; :func:`register` adds your own from Python. :func:`get_robot_model` answers
a registered name or a path to a robot file (:mod:`celltwin.robots.description`), which is
what a cell's ``robots[].model`` may be.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from celltwin.core.documents import shipped_names
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.core.resources import asset_path
from celltwin.robots.description import load_robot_file
from celltwin.robots.errors import RobotError
from celltwin.robots.kinematics import Kinematics
from celltwin.robots.model import (PARALLEL_JAW_JOINTS, PARALLEL_JAW_URDF, RobotModel,
                                   simulated_inertials)
from celltwin.robots.urdf import GripperMount

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_FILE_SUFFIXES = (".yaml", ".yml")


def _parallel_jaw_on(flange_link: str, xyz: tuple[float, float, float]) -> GripperMount:
    return GripperMount(gripper_urdf=asset_path(PARALLEL_JAW_URDF), flange_link=flange_link,
                        xyz=xyz)


# Home poses solved for "TCP ahead of the base, pointing straight down" with the arm kept in
# its vertical plane (redundant joints at 0), then rounded so that joints 2, 4 and 6 still sum
# to a vertical tool axis. iiwa: TCP at (0.50, 0, 0.30) m, joint 4 0.32 rad inside its limit;
# xArm 6: TCP at (0.45, 0, 0.27) m.
_IIWA_HOME = (0.0, 0.44, 0.0, -1.77, 0.0, 0.932, 0.0)
_XARM6_HOME = (0.0, -0.04, -0.98, 0.0, 1.02, 0.0)


def _build_registry() -> dict[str, RobotModel]:
    models = [
        RobotModel(
            name="panda",
            description="Franka Emika Panda, 7 DOF, with its own two-finger hand",
            arm_urdf="franka_panda/panda.urdf",
            arm_joint_names=tuple(f"panda_joint{i}" for i in range(1, 8)),
            # panda-gym's neutral pose: hand pointing straight down over the table.
            home=(0.0, 0.41, 0.0, -1.85, 0.0, 2.26, 0.79),
            ee_link="panda_grasptarget",
            gripper_joint_names=("panda_finger_joint1", "panda_finger_joint2"),
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=20.0,
        ),
        RobotModel(
            name="kuka_iiwa",
            description="KUKA LBR iiwa 7 R800, 7 DOF, with celltwin's parallel-jaw gripper",
            arm_urdf="kuka_iiwa/model.urdf",
            arm_joint_names=tuple(f"lbr_iiwa_joint_{i}" for i in range(1, 8)),
            home=_IIWA_HOME,
            ee_link="tcp",
            gripper_joint_names=PARALLEL_JAW_JOINTS,
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=40.0,
            # The media flange is 45 mm beyond the link_7 frame along its z axis.
            gripper_mount=_parallel_jaw_on("lbr_iiwa_link_7", (0.0, 0.0, 0.045)),
        ),
        RobotModel(
            name="xarm6",
            description="UFACTORY xArm 6, 6 DOF, with celltwin's parallel-jaw gripper",
            arm_urdf="xarm/xarm6_robot.urdf",
            arm_joint_names=tuple(f"joint{i}" for i in range(1, 7)),
            home=_XARM6_HOME,
            ee_link="tcp",
            # The xArm gripper in pybullet_data is a six-bar linkage: mimic joints and closed
            # kinematic chains that pybullet neither enforces nor actuates, so its fingers
            # would flop. A parallel jaw grips the same way and simulates faithfully.
            gripper_joint_names=PARALLEL_JAW_JOINTS,
            gripper_width_range_m=(0.0, 0.08),
            gripper_force_n=40.0,
            # The tool flange face is the link6 frame itself.
            gripper_mount=_parallel_jaw_on("link6", (0.0, 0.0, 0.0)),
        ),
    ]
    return {model.name: model for model in models}


_SHIPPED = _build_registry()
# Models added by register(), by name; the shipped names cannot be taken.
_REGISTERED: dict[str, RobotModel] = {}


def robot_model_names() -> list[str]:
    """Return the names of every registered robot model, sorted: the shipped arms, the shipped
    robot files (``assets/robots/*.yaml``) and those added with :func:`register`."""
    return sorted({*_SHIPPED, *shipped_names("robots"), *_REGISTERED})


def is_robot_file(model: str | os.PathLike) -> bool:
    """Whether ``model`` names a robot file rather than a registered model: a path object, or
    text with a folder separator or a ``.yaml``/``.yml`` suffix."""
    if isinstance(model, os.PathLike):
        return True
    return "/" in model or "\\" in model or model.lower().endswith(_FILE_SUFFIXES)


def get_robot_model(model: str | os.PathLike) -> RobotModel:
    """Return the model ``model`` names: a registered name, or a path to a robot file.

    A relative path is relative to the working directory.

    Raises:
        RobotError: no model has that name (the message suggests the closest one), or the
            robot file has problems (each with its file, line and dotted path).
    """
    if isinstance(model, (str, os.PathLike)) and is_robot_file(model):
        return load_robot_file(Path(model).expanduser())
    for models in (_SHIPPED, _REGISTERED):
        if isinstance(model, str) and model in models:
            return models[model]
    if isinstance(model, str) and model in shipped_names("robots"):
        return replace(load_robot_file(model), name=model)
    known = robot_model_names()
    raise RobotError(Problem(f"unknown robot model '{model}'" + did_you_mean(model, known),
                             value=model,
                             expected=one_of(known)))


def register(name: str, model_or_file: RobotModel | str | os.PathLike, *,
             replace_existing: bool = False) -> RobotModel:
    """Add a robot model under ``name``, so that cells and envs can name it.

    The registry lives in this process: worker processes (``vec_env: subproc``) and other
    commands do not see it; name the robot file by its path there.

    Args:
        name: the registry name (letters, digits, ``_`` and ``-``).
        model_or_file: a :class:`RobotModel`, or the path of a robot file.
        replace_existing: replace a model registered under ``name`` before (the shipped ones
            are never replaced).

    Returns:
        the registered model (named ``name``).

    Raises:
        RobotError: the name is invalid or taken, or the model or robot file does not load.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise RobotError(Problem("invalid robot model name", value=name,
                                 expected="letters, digits, '_' and '-' (no folder, no suffix)"))
    if name in _SHIPPED or name in shipped_names("robots"):
        raise RobotError(Problem(f"'{name}' is a shipped robot model", value=name,
                                 expected="a name no shipped model has"))
    if name in _REGISTERED and not replace_existing:
        raise RobotError(Problem(f"a robot model '{name}' is registered already", value=name,
                                 expected="a new name, or replace_existing=True"))
    if isinstance(model_or_file, RobotModel):
        model = replace(model_or_file, name=name)
        _check_loads(model)
    elif isinstance(model_or_file, (str, os.PathLike)):
        model = replace(load_robot_file(Path(model_or_file).expanduser()), name=name)
    else:
        raise RobotError(Problem("cannot register this as a robot model",
                                 value=type(model_or_file).__name__,
                                 expected="a RobotModel or the path of a robot file"))
    _REGISTERED[name] = model
    return model


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (a shipped one cannot be removed)."""
    if name not in _REGISTERED:
        raise RobotError(Problem(f"no robot model '{name}' was registered",
                                 value=name, expected=one_of(_REGISTERED) if _REGISTERED
                                 else "a name given to register() (none is)"))
    del _REGISTERED[name]


def _check_loads(model: RobotModel) -> None:
    """Load ``model`` once, so that a broken one fails when registered, not in a world."""
    with Kinematics(model):
        pass


__all__ = ["RobotModel", "get_robot_model", "is_robot_file", "register", "robot_model_names",
           "simulated_inertials", "unregister"]

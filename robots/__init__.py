"""Robot models, their runtime handles in a world, kinematics and action controllers.

``registry`` names the models a cell can use and ``register`` adds your own; a robot file
(``load_robot_file``, ``docs/robots.md``) describes an arm from its URDF; ``Robot`` is a model
loaded into a world's physics client; ``Kinematics`` answers FK/IK questions on a private
client; controllers turn policy actions into motor commands.
"""

from celltwin.robots.controllers import Controller, controller_modes, make_controller
from celltwin.robots.description import load_robot_file
from celltwin.robots.errors import RobotError
from celltwin.robots.kinematics import IKResult, Kinematics
from celltwin.robots.model import RobotModel
from celltwin.robots.registry import get_robot_model, register, robot_model_names, unregister
from celltwin.robots.robot import Robot

__all__ = ["Controller", "IKResult", "Kinematics", "Robot", "RobotError", "RobotModel",
           "controller_modes", "get_robot_model", "load_robot_file", "make_controller",
           "register", "robot_model_names", "unregister"]

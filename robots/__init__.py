"""Robot models, their runtime handles in a world, kinematics and action controllers.

``registry`` names the models a cell can use; ``Robot`` is one of them loaded into a world's
physics client; ``Kinematics`` answers FK/IK questions on a private client; controllers turn
policy actions into motor commands.
"""

from celltwin.robots.controllers import Controller, controller_modes, make_controller
from celltwin.robots.errors import RobotError
from celltwin.robots.kinematics import IKResult, Kinematics
from celltwin.robots.registry import RobotModel, get_robot_model, robot_model_names
from celltwin.robots.robot import Robot

__all__ = ["Controller", "IKResult", "Kinematics", "Robot", "RobotError", "RobotModel",
           "controller_modes", "get_robot_model", "make_controller", "robot_model_names"]

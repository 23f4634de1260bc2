"""Controller state to policy input, through the one observation builder.

The env fills :class:`celltwin.observation.ObservationLayout`'s state mapping from pybullet; this
fills the same mapping from a :class:`~celltwin.controller.interface.ControllerState` and calls the
same ``build``, so the adapter's observation cannot drift from the training one:

- ``ee_position`` / ``ee_velocity``: numpy FK of the measured joints, and the Jacobian times
  the measured joint velocities (pybullet computes the same from the same chain).
- ``gripper_width``: the controller's measured opening.
- ``object_*``: from ``ControllerState.objects[name]`` (a vision system's estimate, robot
  base frame): 3 values (position) or 6 (position, then XYZ Euler angles [rad]). A controller
  reports no object velocities, so linear and angular velocities are finite differences of
  consecutive samples over their controller stamps (zero on the first sample; held when the
  stamp did not advance); the "angular velocity" is the rate of the Euler angles, which equals
  it only for small rotations. Orientation is zero when only positions are tracked. A policy
  trained on exact object velocities may need sensor-noise randomization of these terms to
  cope with the differenced ones.

The policy input is then ``[achieved_goal, desired_goal, observation]`` as the manifest's
input layout says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltwin.controller.interface import ControllerState
from celltwin.controller.errors import ControllerError
from celltwin.policies.kinematics import KinematicChain
from celltwin.core.errors import Problem
from celltwin.observation import ObservationLayout


@dataclass(frozen=True)
class Observation:
    """One observation and what it was built from.

    Attributes:
        vector: the policy input (float32, manifest input layout).
        achieved_goal: the achieved goal in the base frame [m].
        tcp_position: measured TCP in the base frame [m].
        tcp_rotation: measured TCP orientation (3x3) in the base frame.
    """

    vector: np.ndarray
    achieved_goal: np.ndarray
    tcp_position: np.ndarray
    tcp_rotation: np.ndarray


class Observer:
    """Builds policy inputs from controller state for one bundle.

    Args:
        manifest: the bundle's (validated) manifest.
        chain: the robot's kinematic chain.
        object_name: name of the tracked object in ``ControllerState.objects`` (default: the
            manifest's ``observation.object_name``).
    """

    def __init__(self, manifest: dict, chain: KinematicChain, object_name: str | None = None):
        observation = manifest["observation"]
        self.layout = ObservationLayout([term["name"] for term in observation["terms"]])
        self.chain = chain
        self.achieved_term = observation["achieved_goal_term"]
        self.object_name = object_name or observation.get("object_name")
        names = self.layout.names
        self._needs_object = any(name.startswith("object_") for name in names)
        self._needs_gripper = "gripper_width" in names
        if self._needs_object and not self.object_name:
            raise ControllerError(Problem("the policy observes an object but none is named",
                                          path="observation.object_name",
                                          expected="the tracked object's name (--object)"))
        self._goal_size = int(observation["goal_size"])
        size = manifest["policy"]["input"]["size"]
        self._vector = np.zeros(size, dtype=np.float32)
        self._obs_slice = slice(2 * self._goal_size, size)
        self._previous: tuple[float, np.ndarray] | None = None
        self._object_velocity = np.zeros(3)
        self._object_angular_velocity = np.zeros(3)

    def reset(self) -> None:
        """Forget the previous sample (finite differences restart from zero)."""
        self._previous = None
        self._object_velocity = np.zeros(3)
        self._object_angular_velocity = np.zeros(3)

    def observe(self, state: ControllerState, goal: np.ndarray) -> Observation:
        """Build the policy input for ``state`` and the desired ``goal`` (base frame [m])."""
        q = np.asarray(state.joint_positions, dtype=float)
        position, rotation, jacobian = self.chain.fk_and_jacobian(q)
        terms = {"ee_position": position,
                 "ee_velocity": jacobian[:3] @ np.asarray(state.joint_velocities, dtype=float)}
        if self._needs_gripper:
            if state.gripper_width_m is None:
                raise ControllerError(Problem("the policy observes the gripper opening but the "
                                              "controller reports none",
                                              path="gripper_width_m", expected="an opening [m]"))
            terms["gripper_width"] = np.array([state.gripper_width_m])
        if self._needs_object:
            terms.update(self._object_terms(state))
        vector = self._vector
        achieved = np.asarray(terms[self.achieved_term], dtype=float)
        vector[:self._goal_size] = achieved
        vector[self._goal_size:2 * self._goal_size] = goal
        self.layout.build(terms, out=vector[self._obs_slice])
        return Observation(vector.copy(), achieved, position, rotation)

    def _object_terms(self, state: ControllerState) -> dict:
        tracked = state.objects.get(self.object_name)
        if tracked is None:
            raise ControllerError(Problem(f"object '{self.object_name}' is not tracked by the "
                                          "controller", path="objects",
                                          value=sorted(state.objects),
                                          expected=f"an entry '{self.object_name}'"))
        tracked = np.asarray(tracked, dtype=float).reshape(-1)
        if tracked.shape not in ((3,), (6,)):
            raise ControllerError(Problem(f"object '{self.object_name}' has {tracked.size} values",
                                          path=f"objects.{self.object_name}",
                                          expected="3 (position [m]) or 6 (and XYZ Euler [rad])"))
        position = tracked[:3]
        euler = tracked[3:] if tracked.size == 6 else np.zeros(3)
        if self._previous is not None:
            stamp, previous = self._previous
            dt = state.stamp_s - stamp
            if dt > 0:
                self._object_velocity = (position - previous[:3]) / dt
                turn = (euler - previous[3:] + np.pi) % (2 * np.pi) - np.pi  # unwrap
                self._object_angular_velocity = turn / dt
        if self._previous is None or state.stamp_s > self._previous[0]:
            self._previous = (state.stamp_s, np.concatenate([position, euler]))
        return {"object_position": position, "object_orientation": euler,
                "object_velocity": self._object_velocity,
                "object_angular_velocity": self._object_angular_velocity}

"""The position servo of a robot in the MuJoCo twin: pybullet's motor law over MuJoCo's dynamics.

pybullet drives a joint with a velocity constraint in its solver. Each timestep ``dt`` it asks
for the joint velocity

    v* = position_gain (q_target - q) / dt + (1 - velocity_gain) qd

after the step and spends at most ``force_limit`` on reaching it, every motor of a robot solved
together with the others. MuJoCo's position actuator is a PD force instead, whose limit is
judged on the force before its implicit step: with gains that give the same response, the
Panda's joints 1 and 3 (nearly parallel at home) then fight each other at their limits and
never settle (measured: 0.03 rad off after 0.6 s of a 0.2 rad step; ``docs/mujoco.md``).

So the twin computes the motor torques itself, once per physics step between ``mj_step1`` and
``mj_step2``: the torques of the driven joints that bring their velocities to ``v*`` after
the step under MuJoCo's mass matrix, gravity and Coriolis forces, each within its force limit
(the box-constrained problem pybullet's solver solves for its motor rows, solved exactly).
MuJoCo's motors apply them; contacts, joint limits, joint friction and the finger gear act
through MuJoCo's own constraint solver, after.

Joint damping is applied here too, as pybullet applies it: an explicit torque ``-damping qd``
from the velocity at the start of the step (``qfrc_applied``), which the motors then work
against. MuJoCo's own joint damping is integrated implicitly and would act differently (on
the xArm's wrist, damping 1 N m s/rad against 0.0015 kg m^2, it more than doubles the
inertia one step sees), so the model's is left at zero.
"""

from __future__ import annotations

import numpy as np

from celltwin.mujoco.engine import load_mujoco

mujoco = load_mujoco()


class Servo:
    """The motors of one robot, driven by pybullet's motor law.

    Args:
        joints: the driven joints (arm joints, then driven fingers), as MuJoCo names.
        motors: the motor of each, as MuJoCo actuator names.
        damped: every joint of the robot, driven or not, as MuJoCo names.

    Attributes:
        position_gain: pybullet's position gain [-].
        velocity_gain: pybullet's velocity gain [-].
        target: the position targets the motors hold [rad] or [m], one per driven joint.
        damping: viscous damping of each of ``damped`` [N m s/rad] or [N s/m].
    """

    def __init__(self, joints: tuple[str, ...], motors: tuple[str, ...],
                 damped: tuple[str, ...]):
        self.joints = joints
        self.motors = motors
        self.damped = damped
        self.position_gain = 0.1
        self.velocity_gain = 1.0
        self.target = np.zeros(len(joints))
        self.damping = np.zeros(len(damped))

    def bind(self, model) -> None:
        """Address ``model`` (after the twin compiled its model again)."""
        ids = [model.joint(joint).id for joint in self.joints]
        self._dofs = model.jnt_dofadr[ids].copy()
        self._qpos = model.jnt_qposadr[ids].copy()
        self._ctrl = np.array([model.actuator(motor).id for motor in self.motors], dtype=int)
        self._low, self._high = model.actuator_forcerange[self._ctrl].T.copy()
        self._damped = model.jnt_dofadr[[model.joint(joint).id for joint in self.damped]].copy()
        count = len(ids)
        # Right-hand sides of one batched solve with the mass matrix: the free forces, then a
        # unit force on each driven joint (its column of M^-1).
        self._rhs = np.zeros((count + 1, model.nv))
        self._rhs[np.arange(1, count + 1), self._dofs] = 1.0
        self._solution = np.zeros_like(self._rhs)

    def apply(self, model, data) -> None:
        """Set the motor torques of this physics step (call between mj_step1 and mj_step2)."""
        data.qfrc_applied[self._damped] = -self.damping * data.qvel[self._damped]
        if not len(self._dofs):
            return
        dt = model.opt.timestep
        q, v = data.qpos[self._qpos], data.qvel[self._dofs]
        self._rhs[0] = data.qfrc_passive + data.qfrc_applied - data.qfrc_bias
        mujoco.mj_solveM(model, data, self._solution, self._rhs)
        coupling = self._solution[1:, self._dofs]                  # M^-1 restricted [1/kg]
        drift = v + dt * self._solution[0, self._dofs]             # velocity without motors
        wanted = self.position_gain * (self.target - q) / dt + (1.0 - self.velocity_gain) * v
        data.ctrl[self._ctrl] = box_solve(coupling, (wanted - drift) / dt, self._low,
                                          self._high)


def box_solve(matrix: np.ndarray, rhs: np.ndarray, low: np.ndarray, high: np.ndarray,
              ) -> np.ndarray:
    """Solve ``matrix x = rhs`` with ``low <= x <= high`` (``matrix`` symmetric positive
    definite): each row is met unless its ``x`` is at a bound, where the row's residual points
    beyond it. Active-set iterations from the unbounded solution; at most a few in practice.
    """
    x = np.linalg.solve(matrix, rhs)
    if np.all(x >= low) and np.all(x <= high):
        return x
    at_low, at_high = x < low, x > high
    for _ in range(4 * len(rhs)):
        fixed = at_low | at_high
        x = np.where(at_low, low, np.where(at_high, high, 0.0))
        free = ~fixed
        if free.any():
            x[free] = np.linalg.solve(matrix[np.ix_(free, free)],
                                      rhs[free] - matrix[np.ix_(free, fixed)] @ x[fixed])
        residual = matrix @ x - rhs  # > 0: this x gives more than asked for
        new_low = (at_low & (residual >= 0)) | (free & (x < low))
        new_high = (at_high & (residual <= 0)) | (free & (x > high))
        if np.array_equal(new_low, at_low) and np.array_equal(new_high, at_high):
            return x
        at_low, at_high = new_low, new_high
    return np.clip(x, low, high)

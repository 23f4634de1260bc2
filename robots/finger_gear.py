"""Two fingers of a parallel gripper geared together, so a grasp stays centred.

Two independently position-controlled fingers that both press at their force limit leave the
grasped part free to slide sideways with them; real parallel grippers are mechanically
coupled. A gear constraint (ratio -1, as in pybullet's own Panda example) keeps both fingers
at the same opening, and one motor drives both through it, as in the Franka hand and most
parallel grippers: one constraint row fewer for the solver on every substep, and no two
motors fighting through the gear.
"""

from __future__ import annotations

import pybullet
from pybullet_utils.bullet_client import BulletClient


class FingerGear:
    """The gear between a robot's two fingers; the first finger's motor drives both.

    Args:
        client: the world's physics client.
        body_id: the robot's body.
        driven: pybullet index of the finger whose motor drives the gear.
        follower: pybullet index of the other finger.
        model_force_n: the gripper model's nominal force per finger [N]; the gear keeps its
            margin over it even when a weaker grip is set.
    """

    def __init__(self, client: BulletClient, body_id: int, driven: int, follower: int,
                 model_force_n: float):
        self._model_force_n = float(model_force_n)
        self._change = client.changeConstraint  # BulletClient makes a partial per lookup
        self.constraint_id = client.createConstraint(
            body_id, driven, body_id, follower, jointType=pybullet.JOINT_GEAR,
            jointAxis=[1, 0, 0], parentFramePosition=[0, 0, 0], childFramePosition=[0, 0, 0])
        self._max_force = self._force_for(self._model_force_n)
        client.changeConstraint(self.constraint_id, gearRatio=-1, erp=0.1,
                                maxForce=self._max_force)
        # The driven finger's motor moves the other one through the gear; pybullet's default
        # velocity motor on it would brake it, so it gets none.
        client.setJointMotorControl2(body_id, follower, pybullet.VELOCITY_CONTROL, force=0.0)

    def follow_grip(self, force_n: float) -> None:
        """Keep the gear strong enough for a grip of ``force_n`` per finger [N]."""
        force = self._force_for(force_n)
        if force != self._max_force:
            # Only this method changes it and restoreState leaves it alone, so a randomized
            # reset that draws a grip weaker than the model's (the gear keeps its margin over
            # the model's force) skips the call: about 1 us of a 115 us reset.
            self._max_force = force
            self._change(self.constraint_id, maxForce=force)

    def _force_for(self, force_n: float) -> float:
        # Well above the half of the motor's force that the gear passes on while gripping.
        return 4.0 * max(float(force_n), self._model_force_n)

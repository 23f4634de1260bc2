"""Conveyor belts: a fixed box whose top surface carries parts at a set speed.

pybullet has no moving-surface contact, so the belt is modelled the way conveyor twins commonly
are: the belt body has no friction along its running axis (anisotropic friction), and once per
control step every free body touching it gets its velocity along that axis set to the belt
speed. Across the belt, ordinary friction still acts, so a part dropped on it settles sideways.
Because there is no friction along the axis, the set speed persists through the substeps.

Which parts lie on the belt is asked of the current state (closest points within
``CONTACT_DISTANCE_M``), not of the contact list the previous step left behind: that list is not
part of a snapshot, and a restored world must carry exactly what the original carried.
"""

from __future__ import annotations

import numpy as np

CONTACT_DISTANCE_M = 0.002  # a part resting on the belt sits within a solver margin of it


class Conveyor:
    """Runtime state of one belt in a world.

    Args:
        client: the world's pybullet client.
        name: conveyor name in the cell.
        body_id: pybullet body of the belt.
        direction: unit vector of the running direction in the world frame [-].
        speed_mps: belt speed [m/s]; negative runs backwards.
        carried: ids of bodies the belt may carry (free parts; never robots).
    """

    def __init__(self, client, name: str, body_id: int, direction: np.ndarray,
                 speed_mps: float, carried: frozenset[int]):
        self.name = name
        self.body_id = body_id
        self.direction = np.asarray(direction, dtype=float)
        self.speed_mps = float(speed_mps)
        self.carried = carried
        self._closest = client.getClosestPoints
        self._velocity = client.getBaseVelocity
        self._set_velocity = client.resetBaseVelocity
        # Zero friction along the running axis (belt local x) so the speed we set persists.
        client.changeDynamics(body_id, -1, anisotropicFriction=[0.0, 1.0, 1.0])

    def bodies_on_belt(self) -> list[int]:
        """Return the carried bodies touching the belt now, in ascending id order."""
        return [body for body in sorted(self.carried)
                if self._closest(self.body_id, body, CONTACT_DISTANCE_M)]

    def carry(self) -> None:
        """Set the along-belt velocity of every part on the belt to the belt speed."""
        if self.speed_mps == 0.0:
            return
        for body in self.bodies_on_belt():
            linear, angular = self._velocity(body)
            linear = np.asarray(linear)
            along = float(linear @ self.direction)
            linear = linear + (self.speed_mps - along) * self.direction
            self._set_velocity(body, linear.tolist(), angular)

"""A suction cup in the MuJoCo twin: the seal and force semantics of celltwin's cup, in MuJoCo.

The same cup as :mod:`celltwin.robots.suction` (pybullet), from the same
:class:`celltwin.robots.suction.SuctionSpec` and PhysicsParams (``robots.<name>.
suction_force_n``, ``suction_seal_tolerance_m``), once per control step:

* **Seal.** With the vacuum on and nothing held, the cup seals on a part (a free body) whose
  closest point to the cup's collision geoms lies on the cup's face (within the lip's slack
  along its axis, within its radius across), within ``seal_tolerance_m`` of it, and whose
  surface there faces the cup (normal within :data:`SEAL_TILT_DEG` of the axis): MuJoCo's
  ``mj_geomDistance`` gives the closest points pybullet's ``getClosestPoints`` gives. The part
  is then held by a weld equality (one per part, built inactive) at the pose it has, or, pressed
  into the cup, where it just touches it. Cup and part still collide.
* **Release.** Vacuum off deactivates the weld at once. pybullet caps its fixed constraint's
  force at the rated force and the part, pulled harder, slides off until it is
  ``seal_tolerance_m`` away; a MuJoCo equality has no force cap, so the twin reads the weld's
  force after each control step and lets go when the pull away from the cup's face, or the
  shear along it, exceeds the rated force. A part pushed into the cup stays held.

What has no counterpart: the weld holds the part's orientation too (as pybullet's fixed
constraint does) with no torque cap, and pybullet's give (the part creeping off before the seal
breaks) is not simulated: here a part is held rigidly until the force says it is lost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from celltwin.mujoco.engine import load_mujoco
from celltwin.robots.suction import (SEAL_TILT_DEG, SuctionSpec, checked_force_n,
                                     checked_seal_tolerance_m)

mujoco = load_mujoco()

# How far the closest point may lie off the plane of the cup's face (the rubber lip), as in
# celltwin.robots.suction.
FACE_SLACK_M = 0.002
_COS_TILT = math.cos(math.radians(SEAL_TILT_DEG))


@dataclass(frozen=True)
class SuctionHandles:
    """Where a robot's suction cup is in the model.

    Attributes:
        spec: the cup (radius, face, rated force, tolerance) of the robot model.
        cup_body: the body the cup's link is (or was merged into).
        face_site: a site at the centre of the cup's face, z along its axis.
        welds: the weld equality (inactive until it seals) of each part, by part name.
        parts: the MuJoCo body of each part, by part name.
    """

    spec: SuctionSpec
    cup_body: str
    face_site: str
    welds: dict[str, str]
    parts: dict[str, str]


class MujocoSuctionState(NamedTuple):
    """What a twin snapshot keeps of a cup: its vacuum, the part it holds and how."""

    vacuum: bool
    held: str | None
    relpose: tuple[float, ...] | None


class MujocoSuctionCup:
    """The vacuum and the grip of one robot's suction cup in a MuJoCo twin.

    Attributes:
        vacuum: whether the vacuum is on (set by the robot's gripper command, after latency).
        held: the name of the part held, or None.
        force_n: rated holding force [N] (checked as pybullet's cup checks it).
        seal_tolerance_m: largest gap that seals [m].
    """

    def __init__(self, handles: SuctionHandles, name: str, model, data):
        self.handles = handles
        self.name = name
        self.radius_m = handles.spec.radius_m
        self.vacuum = False
        self.held: str | None = None
        self._relpose: np.ndarray | None = None
        self.force_n = handles.spec.force_n
        self.seal_tolerance_m = handles.spec.seal_tolerance_m
        self.bind(model, data)

    @property
    def force_n(self) -> float:
        """Rated holding force [N]."""
        return self._force

    @force_n.setter
    def force_n(self, value: float) -> None:
        self._force = checked_force_n(self.name, value)

    @property
    def seal_tolerance_m(self) -> float:
        """Largest gap that seals [m]."""
        return self._tolerance

    @seal_tolerance_m.setter
    def seal_tolerance_m(self, value: float) -> None:
        self._tolerance = checked_seal_tolerance_m(self.name, value)

    def bind(self, model, data) -> None:
        """Address ``model`` and ``data`` (after the twin compiled its model again); a part
        held stays held."""
        self._model, self._data = model, data
        handles = self.handles
        cup = model.body(handles.cup_body).id
        self._cup_geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == cup]
        self._site = model.site(handles.face_site).id
        self._parts = {}
        for part, body in handles.parts.items():
            body_id = model.body(body).id
            geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == body_id]
            self._parts[part] = (body_id, geoms, model.equality(handles.welds[part]).id)
        if self.held is not None:
            self._attach(self.held, self._relpose)

    # --- the vacuum and the grip ----------------------------------------------------------

    def set_vacuum(self, on: bool) -> None:
        """Switch the vacuum; off lets go of a held part at once."""
        self.vacuum = bool(on)
        if not self.vacuum:
            self.release()

    def update(self) -> None:
        """At the start of a control step: seal on a part, with the vacuum on and none held."""
        if self.held is None and self.vacuum:
            # mj_step leaves positions at the start of its last step; the seal is judged where
            # the cup and the parts are now, as pybullet judges it.
            mujoco.mj_kinematics(self._model, self._data)
            seal = self._seal()
            if seal is not None:
                self._grip(*seal)

    def check_pull(self) -> None:
        """At the end of a control step: lose the held part when the weld pulled it harder than
        the rated force (away from the face, or along it)."""
        if self.held is None:
            return
        force = self._force_on_part()
        if force is None:
            return
        axis = self._data.site_xmat[self._site].reshape(3, 3)[:, 2]
        along = float(force @ axis)          # < 0: the weld pulls the part onto the cup
        shear = float(np.linalg.norm(force - along * axis))
        if -along > self.force_n or shear > self.force_n:
            self.release()

    def release(self) -> None:
        """Let go of the held part."""
        if self.held is not None:
            self._data.eq_active[self._parts[self.held][2]] = 0
        self.held = self._relpose = None

    # --- state ----------------------------------------------------------------------------

    def width(self, closed: float, opened: float) -> float:
        """The cup's state as a gripper opening [m], as the pybullet cup reports it."""
        if self.held is not None:
            return closed
        return 0.5 * (closed + opened) if self.vacuum else opened

    def state(self) -> MujocoSuctionState:
        relpose = None if self._relpose is None else tuple(float(v) for v in self._relpose)
        return MujocoSuctionState(self.vacuum, self.held, relpose)

    def restore(self, state: MujocoSuctionState) -> None:
        """Return to ``state``: the same vacuum, holding the same part the same way."""
        self.release()
        self.vacuum = state.vacuum
        if state.held is not None:
            self._attach(state.held, np.array(state.relpose))

    # --- internals ------------------------------------------------------------------------

    def _face(self) -> tuple[np.ndarray, np.ndarray]:
        data = self._data
        return data.site_xpos[self._site].copy(), \
            data.site_xmat[self._site].reshape(3, 3)[:, 2].copy()

    def _seal(self) -> tuple[str, float] | None:
        """The part the cup seals on now and the gap to it [m] (< 0: pressed into it)."""
        model, data = self._model, self._data
        face, axis = self._face()
        tolerance = self.seal_tolerance_m
        reach = self.radius_m + tolerance + 0.01
        fromto = np.zeros(6)
        best = None
        for part, (body, geoms, _) in self._parts.items():
            for geom in geoms:
                if np.linalg.norm(data.geom_xpos[geom] - face) > reach + model.geom_rbound[geom]:
                    continue
                for cup in self._cup_geoms:
                    # Beyond distmax MuJoCo returns distmax and leaves fromto as it was: a
                    # distmax just past the tolerance keeps a gap of exactly it.
                    fromto[:] = 0.0
                    gap = mujoco.mj_geomDistance(model, data, cup, geom, tolerance + 1e-6,
                                                 fromto)
                    if gap > tolerance:
                        continue
                    on_cup, on_part = fromto[:3].copy(), fromto[3:].copy()
                    between = on_cup - on_part
                    length = float(np.linalg.norm(between))
                    if length < 1e-9:
                        continue  # touching at a point: no normal to judge this step
                    # The part's surface normal there, pointing to the cup.
                    normal = between / length if gap > 0 else -between / length
                    if float(normal @ axis) > -_COS_TILT:
                        continue  # the surface there does not face the cup
                    offset = on_cup - face
                    along = float(offset @ axis)
                    across = math.sqrt(max(float(offset @ offset) - along * along, 0.0))
                    if abs(along) <= FACE_SLACK_M and across <= self.radius_m + FACE_SLACK_M \
                            and (best is None or gap < best[1]):
                        best = (part, float(gap))
        return best

    def _grip(self, part: str, gap: float) -> None:
        """Hold ``part`` where it is, or, pressed into the cup, where it just touches it."""
        data = self._data
        _, axis = self._face()
        body = self._parts[part][0]
        cup = self._model.body(self.handles.cup_body).id
        position = data.xpos[body].copy()
        if gap < 0.0:
            position = position - gap * axis
        cup_rotation = data.xmat[cup].reshape(3, 3)
        relative_xyz = cup_rotation.T @ (position - data.xpos[cup])
        inverse = np.zeros(4)
        mujoco.mju_negQuat(inverse, data.xquat[cup])
        relative_quat = np.zeros(4)
        mujoco.mju_mulQuat(relative_quat, inverse, data.xquat[body])
        self._attach(part, np.concatenate([relative_xyz, relative_quat]))

    def _attach(self, part: str, relpose: np.ndarray) -> None:
        # A weld's data: anchor on the part (its origin), then the part's pose in the cup's
        # frame (position, quaternion w x y z), then the torque scale (1: as pybullet's fixed
        # constraint holds orientation).
        equality = self._parts[part][2]
        self._model.eq_data[equality, 0:3] = 0.0
        self._model.eq_data[equality, 3:10] = relpose
        self._model.eq_data[equality, 10] = 1.0
        self._data.eq_active[equality] = 1
        self.held, self._relpose = part, np.array(relpose, dtype=float)

    def _force_on_part(self) -> np.ndarray | None:
        """The force the weld put on the held part in the last physics step [N, world]."""
        data = self._data
        equality = self._parts[self.held][2]
        rows = np.flatnonzero((data.efc_type[:data.nefc] == mujoco.mjtConstraint.mjCNSTR_EQUALITY)
                              & (data.efc_id[:data.nefc] == equality))
        if rows.size < 3:
            return None  # not solved yet (just sealed, or restored)
        # The weld's residual is cup point - part point; its force acts +f on the cup, -f on
        # the part.
        return -data.efc_force[rows[:3]].copy()


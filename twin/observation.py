"""The one observation builder: named, ordered terms with sizes and units.

An observation is built from a *state*: a mapping from term name to a numpy array, every
position and velocity expressed in the robot's base frame. The env fills the state from
pybullet (:mod:`celltwin.envs.state`); the deployment adapter fills it from a controller. Both call
:meth:`ObservationLayout.build`, so the two cannot drift apart. This module imports only numpy:
it runs on a controller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class Term:
    """One observation term."""

    name: str
    size: int
    unit: str
    description: str


TERMS: dict[str, Term] = {term.name: term for term in (
    Term("ee_position", 3, "m", "TCP position in the robot base frame"),
    Term("ee_velocity", 3, "m/s", "TCP linear velocity in the robot base frame"),
    Term("gripper_width", 1, "m", "opening between the finger pads"),
    Term("object_position", 3, "m", "object centre in the robot base frame"),
    Term("object_orientation", 3, "rad", "object orientation as XYZ Euler angles in the base frame"),
    Term("object_velocity", 3, "m/s", "object linear velocity in the robot base frame"),
    Term("object_angular_velocity", 3, "rad/s", "object angular velocity in the robot base frame"),
)}


class ObservationLayout:
    """An ordered selection of :data:`TERMS`, with each term's slice in the flat vector.

    Args:
        names: term names, in order.
    """

    def __init__(self, names: Sequence[str]):
        unknown = [name for name in names if name not in TERMS]
        if unknown:
            raise ValueError(f"unknown observation terms {unknown}; known: {sorted(TERMS)}")
        self.terms = tuple(TERMS[name] for name in names)
        self.slices: dict[str, slice] = {}
        start = 0
        for term in self.terms:
            self.slices[term.name] = slice(start, start + term.size)
            start += term.size
        self.size = start

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(term.name for term in self.terms)

    def build(self, state: Mapping[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Concatenate the terms of ``state`` into a float32 vector (into ``out`` if given)."""
        vector = np.empty(self.size, dtype=np.float32) if out is None else out
        for term in self.terms:
            vector[self.slices[term.name]] = state[term.name]
        return vector

    def get(self, vector: np.ndarray, name: str) -> np.ndarray:
        """Return term ``name`` out of a built vector (or a batch of them, last axis)."""
        return vector[..., self.slices[name]]

    def describe(self) -> list[dict]:
        """Name, size, unit and meaning of every term, in order (for bundle manifests)."""
        return [{"name": t.name, "size": t.size, "unit": t.unit, "description": t.description}
                for t in self.terms]

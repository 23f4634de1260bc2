"""What a free part body is made of: its shape, size and centre of mass, and their variants.

A cell spec gives each part type one nominal geometry. Domain randomization may ask for
another size, another shape or an offset centre of mass. pybullet cannot change a created
body's collision shape or inertial frame, so a variant is a new body (built by
:func:`celltwin.scene.build_part`, swapped in by :meth:`celltwin.world.World.rebuild_part`), never a
URDF reload. This module only computes geometries; it makes no pybullet calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("box", "cylinder", "sphere")


@dataclass(frozen=True)
class PartGeometry:
    """The shape of one part body, in the part's own frame (z up when spawned upright).

    Attributes:
        shape: ``box``, ``cylinder`` (axis along z) or ``sphere``.
        half_extents_m: half sizes of the shape's bounding box along x, y, z [m]; a cylinder
            has radius ``x`` and half height ``z``, a sphere radius ``x`` (= ``y`` = ``z``).
        com_m: centre of mass in the part frame [m]; the part frame's origin is the shape's
            centre, which is what the env observes and where tasks place a part.
    """

    shape: str
    half_extents_m: tuple[float, float, float]
    com_m: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def of(cls, part) -> "PartGeometry":
        """The nominal geometry of a part spec (:class:`celltwin.spec.BoxPart` and siblings)."""
        if part.shape == "box":
            return cls("box", tuple(float(v) for v in np.asarray(part.size_m, dtype=float) / 2))
        if part.shape == "cylinder":
            return cls("cylinder", (part.radius_m, part.radius_m, part.height_m / 2))
        return cls("sphere", (part.radius_m,) * 3)

    @property
    def radius_m(self) -> float:
        """Radius of a cylinder or sphere [m]."""
        return self.half_extents_m[0]

    @property
    def height_m(self) -> float:
        """Full height along the part's z axis [m]."""
        return 2 * self.half_extents_m[2]

    @property
    def half_height_m(self) -> float:
        """Distance from the centre to the bottom of an upright part [m]."""
        return self.half_extents_m[2]

    @property
    def com_offset(self) -> bool:
        """Whether the centre of mass is away from the shape's centre."""
        return any(self.com_m)

    def variant(self, shape: str | None = None, size_scale: float = 1.0,
                com_m=(0.0, 0.0, 0.0)) -> "PartGeometry":
        """This (nominal) geometry with another shape, size and centre of mass.

        Args:
            shape: the new shape, the largest upright one that fits this geometry's bounding
                box (a 4 cm cube becomes a cylinder 4 cm across and 4 cm high, or a 4 cm ball),
                so a part stays the size a gripper was built for; ``None`` keeps the shape.
            size_scale: uniform factor on every dimension [-], > 0.
            com_m: centre of mass in the part frame [m], clamped into the new bounding box.
        """
        shape = shape or self.shape
        if shape not in SHAPES:
            raise ValueError(f"unknown part shape '{shape}' (expected one of {', '.join(SHAPES)})")
        if not size_scale > 0:
            raise ValueError(f"size_scale must be > 0, got {size_scale}")
        x, y, z = self.half_extents_m
        if shape == "box":
            half = (x, y, z)
        elif shape == "cylinder":
            half = (min(x, y), min(x, y), z)
        else:
            half = (min(x, y, z),) * 3
        half = tuple(float(v * size_scale) for v in half)
        com = tuple(float(min(max(c, -h), h)) for c, h in zip(com_m, half))
        return PartGeometry(shape, half, com)

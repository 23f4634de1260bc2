"""Mesh equipment: CAD files (STL/OBJ/GLB/PLY) brought into a twin through trimesh.

A mesh is loaded once, scaled from its file units to metres, checked, and written to the cache
as a visual OBJ plus a convex decomposition for collision (pybullet's bundled V-HACD). Files are
keyed by the source's content hash and the scale, so an edited CAD file is decomposed again and
an unchanged one never is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from celltwin.core.resources import cache_dir
from celltwin.core.atomic import atomic_write_bytes
from celltwin.core.client import quiet_c_output
from celltwin.core.errors import Problem, WorldError

UNIT_TO_M = {"m": 1.0, "cm": 0.01, "mm": 0.001, "in": 0.0254}


@dataclass(frozen=True)
class PreparedMesh:
    """A mesh ready for pybullet: file paths in the cache and what the checks found."""

    visual_obj: Path
    collision_obj: Path
    extents_m: tuple[float, float, float]
    watertight: bool
    hulls: int


def load_trimesh(path: Path, scale_to_m: float) -> trimesh.Trimesh:
    """Load ``path`` as one triangle mesh in metres (scenes are concatenated)."""
    try:
        loaded = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types for unreadable files
        raise WorldError(Problem(f"cannot read mesh: {exc}", file=str(path))) from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise WorldError(Problem("mesh has no triangles", file=str(path)))
    loaded.apply_scale(scale_to_m)
    return loaded


def prepare_mesh(path: Path, units: str = "m", scale: float = 1.0) -> PreparedMesh:
    """Convert ``path`` to cached OBJ files for pybullet, decomposing it for collision.

    Args:
        path: the CAD mesh.
        units: unit the file's coordinates are in (``m``, ``cm``, ``mm``, ``in``).
        scale: extra factor applied after the unit conversion [-].
    """
    import pybullet  # V-HACD is bundled with pybullet; imported here to keep this module light

    scale_to_m = UNIT_TO_M[units] * scale
    digest = hashlib.sha256(path.read_bytes() + f"|{scale_to_m!r}".encode()).hexdigest()[:20]
    folder = cache_dir("meshes")
    visual = folder / f"{path.stem}-{digest}.obj"
    collision = folder / f"{path.stem}-{digest}-vhacd.obj"
    mesh = load_trimesh(path, scale_to_m)
    if not visual.exists():
        atomic_write_bytes(visual, trimesh.exchange.obj.export_obj(mesh).encode())
    if not collision.exists():
        partial = collision.with_suffix(".partial.obj")
        log = folder / f"{path.stem}-{digest}-vhacd.log"
        with quiet_c_output():  # V-HACD prints its progress to stdout; the log file keeps it
            pybullet.vhacd(str(visual), str(partial), str(log), resolution=100000,
                           maxNumVerticesPerCH=64)
        partial.replace(collision)  # V-HACD writes in place; publish only a finished file
    hulls = sum(1 for line in collision.read_text().splitlines() if line.startswith("o "))
    extents = tuple(float(e) for e in np.asarray(mesh.extents))
    return PreparedMesh(visual, collision, extents, bool(mesh.is_watertight), max(hulls, 1))

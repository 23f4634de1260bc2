"""Mesh files a URDF names, as pybullet can read them: ASCII STL becomes binary STL.

pybullet's STL reader takes binary STL only; an ASCII one loads as nothing (a warning on
stderr and a link without geometry). CAD tools and hand-made test meshes often write ASCII,
so a copy in binary is written to the cache (named by the source's content) and the URDF
celltwin writes points at it.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

from celltwin.core.atomic import atomic_write_bytes
from celltwin.core.errors import Problem
from celltwin.core.resources import cache_dir
from celltwin.robots.errors import RobotError

_VERTEX = re.compile(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)")


def loadable_mesh(path: Path) -> Path:
    """Return ``path``, or for an ASCII STL a cached binary copy of it."""
    if path.suffix.lower() != ".stl" or not is_ascii_stl(path):
        return path
    data = path.read_bytes()
    target = cache_dir("robot_meshes") / f"{hashlib.sha256(data).hexdigest()[:16]}.stl"
    if not target.exists():
        atomic_write_bytes(target, binary_stl(data, path))
    return target


def is_ascii_stl(path: Path) -> bool:
    """Whether ``path`` is an ASCII STL: it starts with ``solid`` and its size is not the one
    a binary STL with the triangle count of its header would have (binary headers may start
    with ``solid`` too)."""
    with path.open("rb") as stream:
        head = stream.read(84)
    if not head.lstrip().startswith(b"solid"):
        return False
    if len(head) == 84 and path.stat().st_size == 84 + 50 * struct.unpack("<I", head[80:])[0]:
        return False
    return True


def binary_stl(ascii_data: bytes, path: Path) -> bytes:
    """The binary STL of an ASCII STL's triangles (normals left for pybullet to compute)."""
    try:
        numbers = [float(value) for match in _VERTEX.finditer(ascii_data)
                   for value in match.groups()]
    except ValueError:
        numbers = []
    if not numbers or len(numbers) % 9:
        raise RobotError(Problem("not a readable ASCII STL", file=str(path),
                                 expected="facets of three 'vertex x y z' lines each"))
    triangles = len(numbers) // 9
    out = bytearray(b"binary STL written by celltwin".ljust(80, b" "))
    out += struct.pack("<I", triangles)
    for index in range(triangles):
        out += struct.pack("<12fH", 0.0, 0.0, 0.0, *numbers[9 * index:9 * index + 9], 0)
    return bytes(out)

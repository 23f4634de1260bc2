"""The MuJoCo twin of a cell: a second physics engine built from the same cell and PhysicsParams.

``MujocoTwin("pick_station")`` builds the pybullet world of the cell, reads what it was built
from (:class:`TwinSource`: the spec, every PhysicsParams field, the start state) and builds the
MuJoCo model from that with one builder (:mod:`celltwin.mujoco.builder`, values by
:mod:`celltwin.mujoco.mapping`). :mod:`celltwin.mujoco.compare` measures how far the two
engines agree. MuJoCo is an extra: ``pip install "celltwin[mujoco]"``; without it, each name
below raises :class:`MujocoError` saying so. See docs/mujoco.md.

Names load on first use (PEP 562), so importing this package needs no MuJoCo.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "MujocoTwin": "celltwin.mujoco.twin",
    "TwinSnapshot": "celltwin.mujoco.twin",
    "MujocoRobot": "celltwin.mujoco.robot",
    "TwinSource": "celltwin.mujoco.source",
    "build_cell": "celltwin.mujoco.builder",
    "MujocoError": "celltwin.mujoco.errors",
    "load_mujoco": "celltwin.mujoco.engine",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celltwin.mujoco' has no attribute '{name}'")

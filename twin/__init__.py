"""celltwin's twin: cell layouts as code, the pybullet world built from them, and its physics.

Heavy pieces load on first use (PEP 562) so that light modules such as ``celltwin.core.errors`` can
be imported on a controller without pybullet.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "CellSpec": "celltwin.spec",
    "load_cell": "celltwin.spec",
    "World": "celltwin.world",
    "PhysicsParams": "celltwin.physics",
    "CelltwinError": "celltwin.core.errors",
    "CellSpecError": "celltwin.core.errors",
    "PhysicsParamsError": "celltwin.core.errors",
    "WorldError": "celltwin.core.errors",
    "Problem": "celltwin.core.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celltwin' has no attribute '{name}'")

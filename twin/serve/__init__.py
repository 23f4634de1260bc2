"""The twin as a virtual robot controller: in process, and served over OPC UA (OPC 40010).

Names load on first use (PEP 562): importing the package costs nothing, and each piece pulls in
pybullet or asyncua only when asked for. See docs/serve.md.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "VirtualController": "celltwin.serve.virtual_controller",
    "InProcessController": "celltwin.serve.in_process",
    "VirtualControllerServer": "celltwin.serve.opcua_server",
    "ServerThread": "celltwin.serve.opcua_server",
    "ServerSecurity": "celltwin.serve.opcua_security",
    "ensure_certificate": "celltwin.serve.opcua_security",
    "ServeError": "celltwin.serve.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celltwin.serve' has no attribute '{name}'")

"""The twin as a virtual robot controller: in process, and served over OPC UA (OPC 40010).

Names load on first use (PEP 562): importing the package costs nothing, and each piece pulls in
pybullet or asyncua only when asked for. See docs/serve.md.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "VirtualController": "twin.serve.virtual_controller",
    "InProcessController": "twin.serve.in_process",
    "VirtualControllerServer": "twin.serve.opcua_server",
    "ServerThread": "twin.serve.opcua_server",
    "ServerSecurity": "twin.serve.opcua_security",
    "ensure_certificate": "twin.serve.opcua_security",
    "ServeError": "twin.serve.errors",
    "opcua_round_trip": "twin.serve.bench",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'twin.serve' has no attribute '{name}'")

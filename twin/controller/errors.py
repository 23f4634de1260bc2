"""The error of the controller interface: a controller that cannot be reached or says no.

Light on purpose (no torch, pybullet or SB3): the deployment adapter raises it on a controller
PC, and every controller behind the interface (in-process twin, served twin, OPC UA client)
raises the same class.
"""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class ControllerError(CelltwinError):
    """A controller that cannot be reached, answers out of contract, or refuses a command."""

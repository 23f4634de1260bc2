"""The error every robots-package failure raises: unknown models, names, bad commands."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class RobotError(CelltwinError):
    """A robot model, joint, link, controller or command that does not exist or is invalid."""

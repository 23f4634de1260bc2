"""Errors of calibration: a log, a parameter list or a fit the user can fix."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class CalibrationError(CelltwinError):
    """A log that cannot be fitted (missing columns, NaN, another robot, too short...), an
    unknown parameter name, or an excitation that cannot be designed."""

"""The error every training failure a user can cause raises: bad configs, runs, checkpoints."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class TrainingError(CelltwinError):
    """A training config, run directory or checkpoint that is invalid, missing or corrupt."""

"""Errors of the policies package: bundles and the deployment adapter
(a controller's own errors are :class:`celltwin.controller.errors.ControllerError`).

Light on purpose (no torch, pybullet or SB3): the deployment adapter raises these on a
controller PC.
"""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class BundleError(CelltwinError):
    """A policy bundle that is missing, tampered with, truncated, or made for another robot."""


class ExportError(CelltwinError):
    """A training run that cannot be exported, or an export whose ONNX disagrees with the policy."""


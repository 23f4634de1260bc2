"""Errors of serving a twin as a controller: bad ports, certificates, users and options."""

from __future__ import annotations

from celltwin.core.errors import CelltwinError


class ServeError(CelltwinError):
    """A virtual controller or its OPC UA server cannot start as asked."""

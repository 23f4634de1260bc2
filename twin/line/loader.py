"""The one place line files are read: YAML text to a validated :class:`LineSpec`, or every problem.

YAML parsing and the conversion of pydantic errors into located problems are shared with the
other documents (:mod:`celltwin.core.documents`); this module adds the line checks and raises
:class:`LineSpecError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celltwin.core.documents import (LineIndex, open_document, parse_yaml_document,
                                     shipped_names, validate_document)
from celltwin.line.checks import line_findings
from celltwin.line.spec import LineSpec, LineSpecError


def validate_line_data(data: Any, *, file: str | None = None,
                       lines: LineIndex | None = None) -> LineSpec:
    """Validate a raw line document (as YAML gives it) and return the spec.

    Raises:
        LineSpecError: with every schema and cross-section problem found, in file order.
    """
    return validate_document(data, LineSpec, error=LineSpecError, file=file,
                             lines=lines or LineIndex(), what="line",
                             context={"references_checked": True}, checks=line_findings)


def shipped_line_names() -> list[str]:
    """Names of the example lines celltwin ships (``two_station``, ...)."""
    return shipped_names("lines")


def parse_line(text: str, *, file: str | None = None) -> LineSpec:
    """Parse a line from YAML text; ``file`` names it in problem reports."""
    data, lines = parse_yaml_document(text, file=file, error=LineSpecError)
    return validate_line_data(data, file=file, lines=lines)


def load_line(source: str | Path) -> LineSpec:
    """Load a line from a YAML file, or a shipped example by its bare name (``"two_station"``).

    Raises:
        LineSpecError: unknown name, unreadable file, bad YAML, or an invalid line.
    """
    path, text = open_document(source, "lines", error=LineSpecError, what="line")
    return parse_line(text, file=str(path))

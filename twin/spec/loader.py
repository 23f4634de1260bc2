"""The one place cells are read: YAML text to a validated :class:`CellSpec`, or every problem.

YAML reading and the located problems it reports are shared with the other documents
(:mod:`celltwin.core.documents`); the schema and its cross-reference checks are
:mod:`celltwin.spec.schema` (:func:`~celltwin.spec.schema.validate_cell_data`).
"""

from __future__ import annotations

from pathlib import Path

from celltwin.core.documents import open_document, parse_yaml_document, shipped_names
from celltwin.core.errors import CellSpecError
from celltwin.spec.schema import CellSpec, validate_cell_data


def parse_cell(text: str, *, file: str | None = None, base_dir: Path | None = None) -> CellSpec:
    """Parse a cell from YAML text.

    Args:
        text: the YAML document.
        file: the file name used in problem reports.
        base_dir: the folder relative mesh paths start from; default: the working directory.
    """
    data, lines = parse_yaml_document(text, file=file)
    return validate_cell_data(data, file=file, base_dir=base_dir, lines=lines)


def shipped_cell_names() -> list[str]:
    """Names of the example cells celltwin ships (``pick_station``, ...)."""
    return shipped_names("cells")


def load_cell(source: str | Path) -> CellSpec:
    """Load a cell from a YAML file, or a shipped example by its bare name (``"pick_station"``).

    Raises:
        CellSpecError: unknown name, unreadable file, bad YAML, or an invalid cell.
    """
    path, text = open_document(source, "cells", error=CellSpecError, what="cell")
    return parse_cell(text, file=str(path), base_dir=path.parent.resolve())

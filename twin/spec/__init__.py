"""Cell layouts as code: the typed :class:`CellSpec` and the one loader that builds it.

``load_cell("pick_station")`` loads a shipped example; ``load_cell(path)`` a file of your own.
Every problem in a file is reported at once, each with its dotted path and line
(:class:`celltwin.core.errors.CellSpecError`). The format is documented in ``docs/cells.md``.
"""

from celltwin.spec.loader import load_cell, parse_cell, shipped_cell_names
from celltwin.spec.schema import (CONTROL_MODES, MESH_SUFFIXES, BinSpec, BoxEquipment, BoxPart,
                                  CellSpec, ControlMode, ConveyorSpec, CylinderEquipment,
                                  CylinderPart, Equipment, MeshEquipment, Part, PhysicsSection, Pose,
                                  RobotSpec, SpawnRegionSpec, SpherePart, TargetSpec,
                                  validate_cell_data)

__all__ = [
    "CONTROL_MODES", "MESH_SUFFIXES", "BinSpec", "BoxEquipment", "BoxPart", "CellSpec",
    "ControlMode", "ConveyorSpec", "CylinderEquipment", "CylinderPart", "Equipment",
    "MeshEquipment", "Part",
    "PhysicsSection", "Pose", "RobotSpec", "SpawnRegionSpec", "SpherePart", "TargetSpec",
    "load_cell", "parse_cell", "shipped_cell_names", "validate_cell_data",
]

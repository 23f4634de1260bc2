"""Randomization centred on a calibrated twin: the preset's ranges go around a fit's values.

``{preset: standard, center: fit/physics.yaml}`` (a training config's ``randomization``, or
``--dr-center FILE``) reads the preset and sets its ``center``. The randomizer then:

- sets every value the physics file gives, once per env (a startup term of its own), so the
  randomized twin's nominal is the calibrated twin;
- draws ``scale`` and ``add`` terms around the centre's value instead of the cell's;
- reads a ``set`` term on a value the file gives as a range that starts at the centre: the
  standard preset's latency ``choice [0, 1]`` becomes the calibrated latency plus 0 or 1
  steps, a ``uniform [a, b]`` becomes ``centre + [0, b - a]`` (a Gaussian keeps its spread
  around the centre).
"""

from __future__ import annotations

from pathlib import Path

from celltwin.core.documents import model_from_mapping
from celltwin.physics import CenteredRandomization, PhysicsParams
from celltwin.randomization.terms import (Choice, Gaussian, RandomizationError, Term)

def is_centered(source) -> bool:
    """Whether ``source`` is the ``{preset, center}`` form (a mapping with a ``center``)."""
    return isinstance(source, dict) and "center" in source and "terms" not in source


def parse_centered(source: dict, *, where: str = "randomization") -> CenteredRandomization:
    """The ``{preset, center}`` mapping, checked as a document (every problem, located), with
    the centre file read and checked too."""
    centered = model_from_mapping(source, CenteredRandomization, source=where,
                                  error=RandomizationError, what="randomization")
    load_center(centered.center)
    return centered


def load_center(path: str | Path) -> PhysicsParams:
    """The centre's physics file (a PhysicsParamsError names its file, line and field)."""
    return PhysicsParams.load(path)


def center_entries(center: PhysicsParams) -> dict[tuple[str, str, str], float]:
    """``(section, key, field) -> value`` of every value the centre sets."""
    entries = {}
    for section in ("bodies", "joints", "robots"):
        for key, entry in getattr(center, section).items():
            for field, value in entry.__dict__.items():
                if value is not None:
                    entries[(section, key, field)] = float(value)
    return entries


def set_reference(term: Term) -> float:
    """Where a ``set`` term's range starts: the value that lands on the centre."""
    distribution = term.distribution
    if isinstance(distribution, Gaussian):
        return float(distribution.mean)
    if isinstance(distribution, Choice):
        return float(min(distribution.values))
    return float(distribution.low)


def constant_terms(entries: dict, covered: set) -> list[Term]:
    """Startup terms that set the centre's values no term of the preset randomizes."""
    return [Term(name=f"center {key}.{field}", target=key, parameter=field,
                 distribution=Choice(values=[value]), operation="set", when="startup")
            for (section, key, field), value in entries.items()
            if (section, key, field) not in covered]

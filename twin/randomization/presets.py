"""Named randomization presets (``none``, ``light``, ``standard``, ``aggressive``) and loading.

Presets are YAML files in ``assets/randomization/`` with their sources in their descriptions.
A preset and a user's file are found and read by the shared document reader
(:func:`celltwin.core.documents.open_document`), like cells and lines.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from celltwin.core.documents import (open_document, parse_model, read_document, shipped_names,
                                     validation_problems)
from celltwin.core.resources import assets_root
from celltwin.randomization.center import is_centered, parse_centered
from celltwin.randomization.terms import RandomizationConfig, RandomizationError

_FOLDER = "randomization"


def preset_names() -> list[str]:
    """The shipped presets, mildest first."""
    order = ["none", "light", "standard", "aggressive"]
    found = set(shipped_names(_FOLDER))
    return [name for name in order if name in found] + sorted(found - set(order))


def is_preset(path: Path, text: str) -> bool:
    """Whether the file at ``path`` holding ``text`` is a shipped preset: the installed file
    or a copy of it (``assets/randomization/standard.yaml`` of a source checkout)."""
    if path.suffix != ".yaml" or path.stem not in shipped_names(_FOLDER):
        return False
    shipped = assets_root() / _FOLDER / path.name
    return read_document(shipped, error=RandomizationError, what="randomization") == text


def load_randomization(source) -> tuple[RandomizationConfig, bool]:
    """Resolve ``source`` to terms; also say whether unmatched targets are errors.

    Args:
        source: a preset name, a YAML file, a RandomizationConfig, a mapping/list of terms, or
            ``{preset: NAME|FILE, center: PHYSICS_FILE}`` (:mod:`celltwin.randomization.center`).

    Returns:
        ``(config, strict)``: presets are not strict (a conveyor term on a cell without
        conveyors does nothing), whether named or given by their path; a user's own terms are.
    """
    if source is None:
        return RandomizationConfig(name="none"), True
    if isinstance(source, RandomizationConfig):
        return source, True
    if is_centered(source):   # {preset: ..., center: physics.yaml}
        centered = parse_centered(source)
        config, strict = load_randomization(centered.preset)
        center = str(Path(centered.center).resolve())
        return config.model_copy(update={"center": center,
                                         "name": f"{config.name} centred on {center}"}), strict
    if isinstance(source, (list, dict)):
        data = {"terms": source} if isinstance(source, list) else source
        try:
            return RandomizationConfig.model_validate(data), True
        except ValidationError as exc:
            raise RandomizationError(validation_problems(exc, RandomizationConfig)) from None
    path, text = open_document(source, _FOLDER, error=RandomizationError, what="randomization")
    config = parse_model(text, RandomizationConfig, file=str(path), error=RandomizationError,
                         what="randomization")
    return config, not is_preset(path, text)

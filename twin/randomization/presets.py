"""Named randomization presets (``none``, ``light``, ``standard``, ``aggressive``) and loading.

Presets are YAML files in ``assets/randomization/`` with their sources in their descriptions.
"""

from __future__ import annotations

from pathlib import Path

from celltwin.core.resources import assets_root
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.randomization.terms import RandomizationConfig, RandomizationError


def preset_names() -> list[str]:
    """The shipped presets, mildest first."""
    order = ["none", "light", "standard", "aggressive"]
    found = {p.stem for p in (assets_root() / "randomization").glob("*.yaml")}
    return [name for name in order if name in found] + sorted(found - set(order))


def load_randomization(source) -> tuple[RandomizationConfig, bool]:
    """Resolve ``source`` to terms; also say whether unmatched targets are errors.

    Args:
        source: a preset name, a YAML file, a RandomizationConfig, or a mapping/list of terms.

    Returns:
        ``(config, strict)``: presets are not strict (a conveyor term on a cell without
        conveyors does nothing); a user's own terms are.
    """
    if source is None:
        return RandomizationConfig(name="none"), True
    if isinstance(source, RandomizationConfig):
        return source, True
    if isinstance(source, (list, dict)):
        data = {"terms": source} if isinstance(source, list) else source
        try:
            return RandomizationConfig.model_validate(data), True
        except Exception as exc:  # pydantic's ValidationError, reported as one problem
            raise RandomizationError(Problem(f"invalid randomization terms: {exc}")) from None
    text = str(source)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return RandomizationConfig.load(Path(text)), True
    names = preset_names()
    if text not in names:
        raise RandomizationError(Problem(f"unknown randomization preset '{text}'"
                                         + did_you_mean(text, names), value=text,
                                         expected=one_of(names) + ", or a YAML file"))
    return RandomizationConfig.load(assets_root() / "randomization" / f"{text}.yaml"), False

"""The one place cells are read: YAML text to a validated :class:`CellSpec`, or every problem.

Reading keeps the YAML node tree beside the data so that each problem carries the line it is
on. Schema errors (pydantic) and cross-reference errors (:mod:`celltwin.spec.references`) are
collected in one pass and raised together as a single :class:`CellSpecError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from celltwin.core.resources import assets_root
from celltwin.core.errors import CelltwinError, CellSpecError, Problem, did_you_mean, one_of
from celltwin.core.problems import Finding, Loc, format_loc, kind_of, validation_findings
from celltwin.spec.references import reference_findings
from celltwin.spec.schema import CellSpec

_YAML_SUFFIXES = (".yaml", ".yml")


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps mapping keys as written and reads ``1e-3`` as a number.

    YAML 1.1 reads the key ``on`` (used by spawn regions) as ``True``, and reads exponents
    without a dot (``2e-3``) as strings; both surprise people writing a cell by hand.
    """

    def construct_mapping(self, node, deep=False):
        self.flatten_mapping(node)
        mapping = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    "found a key that is not a plain name", key_node.start_mark)
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


class LineIndex:
    """Lines of every node of a YAML document, by location (``("robots", 0, "model")``)."""

    def __init__(self, root: Node | None = None):
        self._value_lines: dict[Loc, int] = {}
        self._key_lines: dict[Loc, int] = {}
        self.duplicate_keys: list[Finding] = []
        if root is not None:
            self._index(root, (), set())

    def _index(self, node: Node, loc: Loc, open_nodes: set[int]) -> None:
        if id(node) in open_nodes:  # an alias that contains itself
            return
        self._value_lines[loc] = node.start_mark.line + 1
        open_nodes = open_nodes | {id(node)}
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    continue
                child = loc + (key_node.value,)
                if child in self._key_lines:
                    self.duplicate_keys.append(Finding(
                        child, f"key '{key_node.value}' appears twice; the first is on line "
                        f"{self._key_lines[child]} and this later one wins",
                        value=key_node.value, expected="each key once in a mapping",
                        line=key_node.start_mark.line + 1))
                    continue  # lines stay those of the first; its value is overwritten
                self._key_lines[child] = key_node.start_mark.line + 1
                self._index(value_node, child, open_nodes)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._index(item, loc + (index,), open_nodes)

    def line(self, loc: Loc, *, at_key: bool = False) -> int | None:
        """Return the 1-based line of ``loc``, or of its nearest existing parent."""
        loc = tuple(loc)
        if at_key and loc in self._key_lines:
            return self._key_lines[loc]
        while loc not in self._value_lines and loc:
            loc = loc[:-1]
        return self._value_lines.get(loc)


def parse_yaml_document(text: str, *, file: str | None = None,
                        error: type[CelltwinError] = CellSpecError) -> tuple[Any, LineIndex]:
    """Parse one YAML document; return its data (``None`` when empty) and its line index.

    Raises:
        error: the text is not one well-formed YAML document (with file and line).
    """
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        # Index before constructing: construction flattens `<<` merges into the node tree,
        # which would make an overridden merged key look like a repeated one.
        lines = LineIndex(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise error(Problem(f"not valid YAML: {message}", file=file,
                            line=mark.line + 1 if mark else None,
                            expected="one well-formed YAML document")) from None
    except yaml.YAMLError as exc:
        raise error(Problem(f"not valid YAML: {exc}", file=file)) from None
    finally:
        loader.dispose()
    return data, lines


def findings_to_problems(findings: list[Finding], *, file: str | None = None,
                         lines: LineIndex | None = None) -> list[Problem]:
    """Tie findings to ``file`` and their lines."""
    lines = lines or LineIndex()
    problems = []
    for finding in findings:
        message = finding.message
        if finding.first is not None:
            first_line = lines.line(finding.first, at_key=finding.at_key)
            where = format_loc(finding.first) + (f" (line {first_line})" if first_line else "")
            message = message.replace("{first}", where)
        problems.append(Problem(message, path=format_loc(finding.loc), file=file,
                                line=finding.line or lines.line(finding.loc, at_key=finding.at_key),
                                value=finding.value, expected=finding.expected))
    return problems


def validation_problems(exc: ValidationError, model: type[BaseModel], *, file: str | None = None,
                        lines: LineIndex | None = None) -> list[Problem]:
    """Convert a pydantic error raised validating ``model`` into located problems."""
    return findings_to_problems(validation_findings(exc, model), file=file, lines=lines)


def require_mapping(data: Any, model: type[BaseModel], *, error: type[CelltwinError],
                    file: str | None, lines: LineIndex, what: str) -> None:
    """Refuse an empty document or one whose top level is not a mapping, naming the keys."""
    top_keys = ", ".join(model.model_fields)
    if data is None:
        raise error(Problem(f"the {what} file is empty", file=file, line=1,
                            expected=f"a mapping with keys {top_keys}"))
    if not isinstance(data, dict):
        raise error(Problem(f"the top level must be a mapping, got {kind_of(data)}",
                            file=file, line=lines.line(()), value=data,
                            expected=f"a mapping with keys {top_keys}"))


def validate_cell_data(data: Any, *, file: str | None = None, base_dir: Path | None = None,
                       lines: LineIndex | None = None) -> CellSpec:
    """Validate a raw cell document (as YAML gives it) and return the spec.

    Raises:
        CellSpecError: with every schema and reference problem found.
    """
    lines = lines or LineIndex()
    require_mapping(data, CellSpec, error=CellSpecError, file=file, lines=lines, what="cell")
    findings = list(lines.duplicate_keys)
    spec = None
    try:
        spec = CellSpec.model_validate(
            data, context={"base_dir": base_dir, "references_checked": True})
    except ValidationError as exc:
        findings += validation_findings(exc, CellSpec)
    findings += reference_findings(data)
    problems = unique_problems(findings_to_problems(findings, file=file, lines=lines))
    if problems or spec is None:
        raise CellSpecError(problems)
    return spec


def raise_reference_problems(data: Any) -> None:
    """Raise :class:`CellSpecError` if a cell built in Python has broken cross-references."""
    problems = unique_problems(findings_to_problems(reference_findings(data)))
    if problems:
        raise CellSpecError(problems)


def parse_cell(text: str, *, file: str | None = None, base_dir: Path | None = None) -> CellSpec:
    """Parse a cell from YAML text.

    Args:
        text: the YAML document.
        file: the file name used in problem reports.
        base_dir: the folder relative mesh paths start from; default: the working directory.
    """
    data, lines = parse_yaml_document(text, file=file)
    return validate_cell_data(data, file=file, base_dir=base_dir, lines=lines)


def shipped_names(folder: str) -> list[str]:
    """Names of the shipped YAML documents in ``assets/<folder>`` (``cells``, ``lines``, ...)."""
    path = assets_root() / folder
    return sorted(p.stem for p in path.glob("*.yaml")) if path.is_dir() else []


def shipped_cell_names() -> list[str]:
    """Names of the example cells celltwin ships (``pick_station``, ...)."""
    return shipped_names("cells")


def resolve_document(source: str | Path, folder: str, *, error: type[CelltwinError],
                     what: str) -> Path:
    """A path, or the shipped document ``assets/<folder>/<source>.yaml`` for a bare name.

    A ``str`` without a folder separator or ``.yaml``/``.yml`` suffix is a shipped name.
    """
    if isinstance(source, Path):
        return source
    text = str(source)
    if "/" in text or "\\" in text or text.lower().endswith(_YAML_SUFFIXES):
        return Path(text).expanduser()
    names = shipped_names(folder)
    if text not in names:
        expected = one_of(names) if names else f"a path to a .yaml file (no {what}s are shipped)"
        raise error(Problem(
            f"no shipped {what} named '{text}'{did_you_mean(text, names)}", value=text,
            expected=expected + (", or a path to a .yaml file" if names else "")))
    return assets_root() / folder / f"{text}.yaml"


def read_document(path: Path, *, error: type[CelltwinError], what: str) -> str:
    """Read a YAML file a user wrote; a missing or unreadable file is one clear problem."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(Problem(f"{what} file not found", file=str(path), value=str(path),
                            expected="an existing .yaml file")) from None
    except IsADirectoryError:
        raise error(Problem(f"is a folder, not a {what} file", file=str(path),
                            value=str(path), expected="a .yaml file")) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise error(Problem(f"cannot read {what} file: {reason}", file=str(path),
                            expected="a readable UTF-8 text file")) from None


def parse_model(text: str, model: type[BaseModel], *, file: str | None,
                error: type[CelltwinError]):
    """Validate a YAML document into ``model``, reporting every problem at once."""
    data, lines = parse_yaml_document(text, file=file, error=error)
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise error(validation_problems(exc, model, file=file, lines=lines)) from None


def load_model(path: str | Path, model: type[BaseModel], *, error: type[CelltwinError],
               what: str):
    """Read a YAML file and validate it into ``model`` (physics overrides, randomization...)."""
    path = Path(path)
    return parse_model(read_document(path, error=error, what=what), model, file=str(path),
                       error=error)


def load_cell(source: str | Path) -> CellSpec:
    """Load a cell from a YAML file, or a shipped example by its bare name (``"pick_station"``).

    Raises:
        CellSpecError: unknown name, unreadable file, bad YAML, or an invalid cell.
    """
    path = resolve_document(source, "cells", error=CellSpecError, what="cell")
    text = read_document(path, error=CellSpecError, what="cell")
    return parse_cell(text, file=str(path), base_dir=path.parent.resolve())


def dump_yaml(data: dict) -> str:
    """Write a cell document as YAML: ``name`` and ``shape`` first, vectors on one line."""
    return yaml.safe_dump(_names_first(data), sort_keys=False, default_flow_style=None,
                          allow_unicode=True)


def _names_first(value: Any) -> Any:
    if isinstance(value, dict):
        front = [key for key in ("name", "shape") if key in value]
        ordered = {key: value[key] for key in front}
        ordered.update((key, value[key]) for key in value if key not in front)
        return {key: _names_first(item) for key, item in ordered.items()}
    if isinstance(value, (list, tuple)):
        return [_names_first(item) for item in value]
    return value


def unique_problems(problems: list[Problem]) -> list[Problem]:
    """Drop repeated problems (same path and message) and sort them into file order."""
    seen, unique = set(), []
    for problem in problems:
        key = (problem.path, problem.message)
        if key not in seen:
            seen.add(key)
            unique.append(problem)
    # File order reads best; problems without a line keep their place at the end.
    return sorted(unique, key=lambda problem: problem.line if problem.line is not None else 1 << 30)


"""Reading the YAML documents a user writes: cells, lines, physics overrides, randomization,
training configs.

Reading keeps the YAML node tree beside the data so that each problem carries the line it is
on (:class:`LineIndex`); pydantic's errors become located problems (:func:`validation_problems`)
and every problem of a document is raised at once, as the caller's :class:`CelltwinError`.
Each kind of document has its own loader (:mod:`celltwin.spec.loader` for cells,
:mod:`celltwin.line.loader` for lines, ...); this module is what they share.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from celltwin.core.errors import CelltwinError, CellSpecError, Problem, did_you_mean, one_of
from celltwin.core.problems import Finding, Loc, format_loc, kind_of, validation_findings
from celltwin.core.resources import assets_root

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


def shipped_names(folder: str) -> list[str]:
    """Names of the shipped YAML documents in ``assets/<folder>`` (``cells``, ``lines``, ...)."""
    path = assets_root() / folder
    return sorted(p.stem for p in path.glob("*.yaml")) if path.is_dir() else []


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


def open_document(source: str | Path, folder: str, *, error: type[CelltwinError],
                  what: str) -> tuple[Path, str]:
    """The path and text of a user's file or of a shipped document named by ``source``
    (:func:`resolve_document`); every failure is one located problem raised as ``error``."""
    path = resolve_document(source, folder, error=error, what=what)
    return path, read_document(path, error=error, what=what)


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



def dump_yaml(data: dict) -> str:
    """Write a document as YAML: ``name`` and ``shape`` first in each mapping, vectors on one
    line (how cells are written by hand)."""
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

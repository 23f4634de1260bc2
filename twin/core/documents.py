"""Reading the YAML documents a user writes: cells, lines, physics overrides, randomization,
training configs.

Reading keeps the YAML node tree beside the data so that each problem carries the line it is
on (:class:`LineIndex`); pydantic's errors become located problems (:func:`validation_problems`)
and every problem of a document is raised at once, as the caller's :class:`CelltwinError`.
Each kind of document has its own loader (:mod:`celltwin.spec.loader` for cells,
:mod:`celltwin.line.loader` for lines, ...); this module is what they share.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Strict, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from celltwin.core.errors import CelltwinError, CellSpecError, Problem, did_you_mean, one_of
from celltwin.core.problems import Finding, Loc, format_loc, kind_of, validation_findings
from celltwin.core.resources import assets_root
from celltwin.core.yaml_loader import (MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES, DocumentLoader,
                                       LimitError, TextProblem, check_text)

_YAML_SUFFIXES = (".yaml", ".yml")
_REFUSED = object()  # validate_document: no meaning given to an empty document
MAX_PROBLEMS = 100
"""Most problems reported for one document; past them, one line says how many more there are
(a few aliases can repeat one mistake thousands of times, and each costs time to locate)."""

DOCUMENT_CONFIG = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
"""The one strictness of every document model (cells, lines, physics, randomization, training
configs): unknown keys refused; a number, flag or name taken only as itself (YAML reads `yes`
as true, and a lax model would then read true as 1.0 and "0.3" as 0.3); no NaN or infinity.
Models add ``frozen`` or docstring settings on top; never loosen these."""

FROM_YAML = Strict(False)
"""Mark on a tuple or path field of a document model: takes the list or string YAML gives (a
strict tuple takes only a tuple, a strict path only a Path). Items stay strict."""


class LineIndex:
    """Lines of every node of a YAML document, by location (``("robots", 0, "model")``).

    An alias is indexed where it is used, as often as it is used, up to :data:`MAX_VALUES`
    nodes in all (the loader refuses documents that hold more; the bound also holds for a
    node tree built elsewhere). Past it, a location falls back to its nearest indexed parent.
    """

    def __init__(self, root: Node | None = None):
        self._value_lines: dict[Loc, int] = {}
        self._key_lines: dict[Loc, int] = {}
        self.duplicate_keys: list[Finding] = []
        self._budget = MAX_VALUES
        if root is not None:
            self._index(root, (), set())

    def _index(self, node: Node, loc: Loc, open_nodes: set[int]) -> None:
        if id(node) in open_nodes or self._budget <= 0 or len(loc) > MAX_DEPTH:
            return  # an alias that contains itself, or past the bound
        self._budget -= 1
        self._value_lines[loc] = node.start_mark.line + 1
        if isinstance(node, ScalarNode):
            return
        open_nodes.add(id(node))
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
        open_nodes.discard(id(node))

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

    Every document celltwin reads comes through here, within the limits of
    :mod:`celltwin.core.yaml_loader` (size, characters, nesting, alias expansion).

    Raises:
        error: the text is not one well-formed YAML document, or is past a limit (with file
            and line).
    """
    try:
        check_text(text)
    except TextProblem as exc:
        raise error(Problem(exc.message, file=file, line=exc.line,
                            expected=exc.expected)) from None
    loader = DocumentLoader(text)
    try:
        root = loader.get_single_node()
        # Index before constructing: construction flattens `<<` merges into the node tree,
        # which would make an overridden merged key look like a repeated one.
        lines = LineIndex(root)
        data = loader.construct_document(root) if root is not None else None
    except LimitError as exc:
        raise error(Problem(exc.problem, file=file, line=exc.problem_mark.line + 1,
                            expected=exc.expected)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(part for part in (exc.context, exc.problem) if part)
        raise error(Problem(f"not valid YAML: {message}", file=file,
                            line=mark.line + 1 if mark else None,
                            expected="one well-formed YAML document")) from None
    except yaml.YAMLError as exc:
        raise error(Problem(f"not valid YAML: {exc}", file=file,
                            expected="one well-formed YAML document")) from None
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
    """Read a YAML file a user wrote; a missing, unreadable, oversized or non-UTF-8 file is one
    clear problem. At most :data:`MAX_DOCUMENT_BYTES` are read (a device or a huge file too)."""
    try:
        # O_NONBLOCK: opening a named pipe nobody writes to would wait forever; the type check
        # below then refuses it (and devices and sockets) before anything is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise error(Problem(f"not a regular file, so not a {what} file", file=str(path),
                                    value=str(path), expected="a .yaml file"))
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except FileNotFoundError:
        raise error(Problem(f"{what} file not found", file=str(path), value=str(path),
                            expected="an existing .yaml file")) from None
    except IsADirectoryError:
        raise error(Problem(f"is a folder, not a {what} file", file=str(path),
                            value=str(path), expected="a .yaml file")) from None
    except OSError as exc:
        raise error(Problem(f"cannot read {what} file: {exc.strerror or exc}", file=str(path),
                            expected="a readable UTF-8 text file")) from None
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise error(Problem(f"the {what} file is larger than {MAX_DOCUMENT_BYTES // 1024} KiB",
                            file=str(path), line=raw.count(b"\n", 0, MAX_DOCUMENT_BYTES) + 1,
                            expected=f"a file of at most {MAX_DOCUMENT_BYTES // 1024} KiB"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = exc.start - raw.rfind(b"\n", 0, exc.start)
        raise error(Problem(f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at column {column}",
                            file=str(path), line=raw.count(b"\n", 0, exc.start) + 1,
                            expected="a UTF-8 text file")) from None
    # What Path.read_text gave before: universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def open_document(source: str | Path, folder: str, *, error: type[CelltwinError],
                  what: str) -> tuple[Path, str]:
    """The path and text of a user's file or of a shipped document named by ``source``
    (:func:`resolve_document`); every failure is one located problem raised as ``error``."""
    path = resolve_document(source, folder, error=error, what=what)
    return path, read_document(path, error=error, what=what)


def validate_document(data: Any, model: type[BaseModel], *, error: type[CelltwinError],
                      file: str | None, lines: LineIndex, what: str, context: dict | None = None,
                      checks: Callable[[Any], list[Finding]] | None = None,
                      empty: Any = _REFUSED):
    """The one validation path of every document: validate ``data`` into ``model``.

    Repeated keys, schema problems and the document's own ``checks`` (cross-references) are
    reported together, each with its file and line, in file order.

    Args:
        empty: what an empty document means (``{}``: every default); refused when not given.
        context: pydantic validation context (e.g. the folder relative paths start from).

    Raises:
        error: with every problem found (past :data:`MAX_PROBLEMS`, one more says how many).
    """
    if data is None and empty is not _REFUSED:
        data = empty
    require_mapping(data, model, error=error, file=file, lines=lines, what=what)
    sources = [lines.duplicate_keys]
    document = None
    unconverted = 0
    try:
        document = model.model_validate(data, context=context)
    except ValidationError as exc:
        sources.append(validation_findings(exc, model, limit=MAX_PROBLEMS))
        unconverted = max(exc.error_count() - MAX_PROBLEMS, 0)
    if checks is not None:
        sources.append(checks(data))
    findings = [finding for source in sources for finding in source[:MAX_PROBLEMS]]
    unconverted += sum(max(len(source) - MAX_PROBLEMS, 0) for source in sources)
    problems = unique_problems(findings_to_problems(findings, file=file, lines=lines))
    hidden = unconverted + max(len(problems) - MAX_PROBLEMS, 0)
    if hidden:
        problems = problems[:MAX_PROBLEMS] + [Problem(
            f"{hidden} more problems not shown", file=file,
            expected=f"the first {MAX_PROBLEMS} fixed before the rest are listed")]
    if problems or document is None:
        raise error(problems)
    return document


def parse_model(text: str, model: type[BaseModel], *, file: str | None,
                error: type[CelltwinError], what: str = "YAML"):
    """Validate a YAML document into ``model``, reporting every problem at once; an empty
    document means every default (a physics overrides file that overrides nothing)."""
    data, lines = parse_yaml_document(text, file=file, error=error)
    return validate_document(data, model, error=error, file=file, lines=lines, what=what,
                             empty={})


def model_from_mapping(data: Any, model: type[BaseModel], *, source: str,
                       error: type[CelltwinError], what: str):
    """Validate a mapping given in Python (not read from a file) into ``model``, with the same
    strictness and error reports as a file. NumPy numbers and arrays count as the Python
    numbers and lists they hold (a fitted parameter is often a ``numpy.float64``)."""
    return validate_document(_plain(data), model, error=error, file=source, lines=LineIndex(),
                             what=what, empty={})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return value.tolist()   # a NumPy scalar or array: Python numbers and lists
    return value


def load_model(path: str | Path, model: type[BaseModel], *, error: type[CelltwinError],
               what: str):
    """Read a YAML file and validate it into ``model`` (physics overrides, randomization...)."""
    path = Path(path)
    return parse_model(read_document(path, error=error, what=what), model, file=str(path),
                       error=error, what=what)


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

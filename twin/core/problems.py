"""Turns pydantic validation errors into celltwin findings a person can act on.

A :class:`Finding` is a problem located by its path in the document (a tuple of keys and list
indices); the loader later adds the file and the line. Pydantic's own locations name the tag of
a discriminated union (``equipment.0.box.size_m``), which means nothing to the person who wrote
the file, so paths are rebuilt by walking the model's annotations alongside pydantic's location.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from celltwin.core.errors import did_you_mean, one_of

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Finding:
    """A problem found at ``loc`` in a document, before it is tied to a file and line.

    Attributes:
        loc: keys and list indices from the document root, e.g. ``("robots", 0, "model")``.
        message: what is wrong; may contain ``{first}``, filled with the location of ``first``.
        value: the offending value.
        expected: what would have been accepted, in words.
        at_key: locate the line of the key itself (an unknown or repeated key).
        first: another location the message refers to (the first use of a duplicate name).
        line: the line, where the finder knows it better than the location does.
    """

    loc: Loc
    message: str
    value: Any = None
    expected: str | None = None
    at_key: bool = False
    first: Loc | None = None
    line: int | None = None


def format_loc(loc: Loc) -> str:
    """Format a location as a dotted path with list indices: ``parts[2].size_m[1]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# ----------------------------------------------------------------------------- annotation walk
def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``X | None``; return the bare type and the metadata found."""
    metadata: list[Any] = []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            args = get_args(annotation)
            annotation, metadata = args[0], metadata + list(args[1:])
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation, metadata
            annotation = members[0]
        else:
            return annotation, metadata


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation)
                if isinstance(arg, type) and issubclass(arg, BaseModel)]
    return []


def _tagged_members(annotation: Any) -> dict[str, Any]:
    """``{tag: member}`` of a union whose members carry pydantic ``Tag``s (a union chosen by a
    callable ``Discriminator``)."""
    if get_origin(annotation) not in (Union, types.UnionType):
        return {}
    tagged = {}
    for arg in get_args(annotation):
        if get_origin(arg) is Annotated:
            for item in get_args(arg)[1:]:
                if isinstance(item, Tag):
                    tagged[item.tag] = get_args(arg)[0]
    return tagged


def _tag_of(model: type[BaseModel], discriminator: str) -> str | None:
    field = model.model_fields.get(discriminator)
    return field.default if field is not None else None


def walk(root: type[BaseModel], loc: Loc) -> tuple[Loc, Any, list[Any]]:
    """Follow pydantic's ``loc`` through ``root``'s annotations.

    Returns:
        The location as the document spells it (union tags removed), the annotation found
        there (``None`` where the walk left the schema) and the constraints attached to it.
    """
    annotation: Any = root
    metadata: list[Any] = []
    clean: list[str | int] = []
    for part in loc:
        bare, extra = _unwrap(annotation)
        metadata = metadata + extra
        tagged = _tagged_members(bare)
        if part in tagged:  # a callable discriminator's Tag: not part of the document either
            annotation, metadata = tagged[part], []
            continue
        members = _union_members(bare)
        if members:
            discriminator = _discriminator(metadata) or "shape"
            chosen = [m for m in members if _tag_of(m, discriminator) == part]
            if chosen:  # pydantic's union tag: not part of the document
                annotation, metadata = chosen[0], []
                continue
            annotation, metadata = None, []
        clean.append(part)
        bare, _ = _unwrap(annotation)
        if isinstance(bare, type) and issubclass(bare, BaseModel) and isinstance(part, str):
            field = bare.model_fields.get(part)
            annotation = field.annotation if field else None
            metadata = list(field.metadata) if field else []
            if field is not None and field.discriminator is not None:
                metadata.append(field)  # pydantic moves Field(discriminator=) out of metadata
        elif get_origin(bare) is dict and isinstance(part, str):
            annotation, metadata = get_args(bare)[1], []
        elif get_origin(bare) in (tuple, list) and isinstance(part, int):
            args = get_args(bare)
            if len(args) == 2 and args[1] is Ellipsis or get_origin(bare) is list:
                annotation = args[0]
            else:
                annotation = args[part] if part < len(args) else None
            metadata = []
        else:
            annotation, metadata = None, []
    bare, extra = _unwrap(annotation)
    return tuple(clean), bare, metadata + extra


def _discriminator(metadata: list[Any]) -> str | None:
    for item in metadata:
        value = getattr(item, "discriminator", None)
        if isinstance(value, str):
            return value
    return None


def _bounds(metadata: list[Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in metadata:
        for name in ("gt", "ge", "lt", "le"):
            value = getattr(item, name, None)
            if isinstance(value, (int, float)):
                found[name] = value
        if hasattr(item, "metadata"):  # a Field() nested in Annotated keeps its own list
            found.update(_bounds(list(item.metadata)))
    return found


def _number(value: float) -> str:
    return f"{value:g}"


def describe(annotation: Any, metadata: list[Any] = ()) -> str:
    """Say in words what a value of ``annotation`` looks like."""
    bare, extra = _unwrap(annotation)
    metadata = list(metadata) + extra
    if bare is bool:
        return "true or false"
    if bare in (int, float):
        noun = "an integer" if bare is int else "a number"
        bounds = _bounds(metadata)
        limits = [f"{op} {_number(bounds[key])}" for key, op in
                  (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if key in bounds]
        return noun + (" " + " and ".join(limits) if limits else "")
    if bare is str:
        return "a string"
    if bare is Path:
        return "a file path"
    if get_origin(bare) is Literal:
        return one_of(str(arg) for arg in get_args(bare))
    if get_origin(bare) is tuple:
        args = get_args(bare)
        if len(args) == 2 and args[1] is Ellipsis:
            return "a list"
        return f"a list of {len(args)} numbers"
    members = _union_members(bare)
    if members:
        key = _discriminator(metadata) or "shape"
        return f"a mapping with '{key}' {one_of(str(_tag_of(m, key)) for m in members)}"
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return "a mapping with keys " + ", ".join(bare.model_fields)
    return "a valid value"


def kind_of(value: Any) -> str:
    """Name what arrived, for messages: ``the string 'abc'``, ``a mapping``, ``true``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"the string '{value if len(value) <= 60 else value[:57] + '...'}'"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


# ----------------------------------------------------------------------------- conversion
_TYPE_ERRORS = {
    "float_type", "float_parsing", "int_type", "int_parsing", "int_from_float", "string_type",
    "bool_type", "bool_parsing", "model_type", "model_attributes_type", "dict_type",
    "tuple_type", "list_type", "path_type", "literal_error_type", "is_instance_of",
}
_RANGE_ERRORS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
                 "less_than_equal": "<="}


def validation_findings(exc: ValidationError, root: type[BaseModel],
                        limit: int | None = None) -> list[Finding]:
    """Convert the errors of ``exc`` (raised validating ``root``) to :class:`Finding` s: every
    one, or the first ``limit``."""
    findings = []
    for error in exc.errors(include_url=False)[:limit]:
        finding = _finding(error, root)
        if finding is not None:
            findings.append(finding)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            findings += _unknown_union_keys(error, root)
    return findings


def _unknown_union_keys(error: dict, root: type[BaseModel]) -> list[Finding]:
    """Keys no member of a discriminated union has, in a mapping whose tag is missing or
    unknown: pydantic stops at the tag, so a typo beside it (``sahpe: box``) would go unsaid."""
    value = error.get("input")
    if not isinstance(value, dict):
        return []
    loc, annotation, _ = walk(root, tuple(error["loc"]))
    allowed: list[str] = []
    for member in _union_members(annotation):
        allowed += [name for name in member.model_fields if name not in allowed]
    return [Finding(loc + (key,), f"unknown key '{key}'{did_you_mean(key, allowed)}",
                    value=value[key], expected=one_of(allowed), at_key=True)
            for key in value if isinstance(key, str) and key not in allowed]


def _finding(error: dict, root: type[BaseModel]) -> Finding | None:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    loc, annotation, metadata = walk(root, tuple(error["loc"]))
    key = loc[-1] if loc else "document"

    if kind == "missing" and isinstance(key, int):  # a fixed-length vector came up short
        parent, vector, _ = walk(root, tuple(error["loc"])[:-1])
        size = len(get_args(vector))
        return Finding(parent, f"has {_length(value)} values, needs {size}", value=value,
                       expected=f"a list of {size} numbers")
    if kind == "missing":
        return Finding(loc, f"missing required key '{key}'",
                       expected=describe(annotation, metadata))
    if kind == "extra_forbidden":
        _, parent, _ = walk(root, tuple(error["loc"])[:-1])
        is_model = isinstance(parent, type) and issubclass(parent, BaseModel)
        allowed = list(parent.model_fields) if is_model else []
        return Finding(loc, f"unknown key '{key}'{did_you_mean(key, allowed)}", value=value,
                       expected=one_of(allowed), at_key=True)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = str(ctx.get("discriminator", "'shape'")).strip("'\"")
        tags = [_tag_of(m, discriminator) for m in _union_members(annotation)]
        if kind == "union_tag_not_found":
            return Finding(loc + (discriminator,), f"missing required key '{discriminator}'",
                           expected=one_of(tags))
        tag = value.get(discriminator) if isinstance(value, dict) else ctx.get("tag")
        return Finding(loc + (discriminator,),
                       f"unknown {discriminator} {_quoted(tag)}{did_you_mean(str(tag), tags)}",
                       value=tag, expected=one_of(tags))
    if kind == "literal_error":
        is_literal = get_origin(annotation) is Literal
        choices = [str(arg) for arg in get_args(annotation)] if is_literal else []
        return Finding(loc, f"unknown {key} {_quoted(value)}{did_you_mean(str(value), choices)}",
                       value=value, expected=one_of(choices) if choices else ctx.get("expected"))
    if kind in ("too_short", "too_long"):
        return _length_finding(kind, loc, annotation, ctx, value)
    if kind in _TYPE_ERRORS:
        return Finding(loc, f"{kind_of(value)} is not {describe(annotation, metadata)}",
                       value=value, expected=describe(annotation, metadata))
    if kind == "finite_number":
        return Finding(loc, f"must be a finite number, got {value}", value=value,
                       expected=describe(annotation, metadata))
    if kind in _RANGE_ERRORS:
        bound = next(iter(ctx.values()))
        return Finding(loc, f"must be {_RANGE_ERRORS[kind]} {_number(bound)}, got {value}",
                       value=value, expected=describe(annotation, metadata))
    if kind == "string_too_short":
        return Finding(loc, "must not be empty", value=value, expected="a non-empty string")
    message = re.sub(r"^(Value|Assertion) error, ", "", error["msg"])
    return Finding(loc, message, value=value, expected=ctx.get("expected"))


def _length_finding(kind: str, loc: Loc, annotation: Any, ctx: dict, value: Any) -> Finding | None:
    args = get_args(annotation) if get_origin(annotation) is tuple else ()
    actual = _length(value)
    if args and not (len(args) == 2 and args[1] is Ellipsis):
        return Finding(loc, f"has {actual} values, needs {len(args)}", value=value,
                       expected=f"a list of {len(args)} numbers")
    if kind == "too_short":
        minimum = ctx.get("min_length", 1)
        if isinstance(actual, int) and actual >= minimum:
            return None  # pydantic counts only the items that validated; those got their own errors
        return Finding(loc, f"needs at least {minimum} item(s), got {actual}", value=value,
                       expected=f"a list of at least {minimum} item(s)")
    maximum = ctx.get("max_length")
    return Finding(loc, f"takes at most {maximum} item(s), got {actual}", value=value,
                   expected=f"a list of at most {maximum} item(s)")


def _length(value: Any) -> Any:
    return len(value) if isinstance(value, (list, tuple, str, dict)) else kind_of(value)


def _quoted(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else f"({kind_of(value)})"

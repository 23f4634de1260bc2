"""Write docs/cell-reference.md, every key of a cell file, from the schema itself.

    python scripts/gen_cell_docs.py           # rewrite docs/cell-reference.md
    python scripts/gen_cell_docs.py --check   # exit 1 when it is out of date

The schema is celltwin.spec's pydantic models (their field docstrings are the descriptions),
read through their JSON schema: types, defaults, bounds and which keys are required come from
the same place that validates a cell. tests/test_docs.py fails when the file differs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generated_page import write_or_check  # noqa: E402  (a sibling script)

OUT = Path(__file__).resolve().parents[1] / "docs" / "cell-reference.md"


def _text(text: str | None) -> str:
    """A docstring as one Markdown line: RST's ``code`` as `code`."""
    text = re.sub(r"``([^`]+)``", r"`\1`", " ".join((text or "").split()))
    return text.replace("|", "\\|")


def _ref(schema: dict) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _type(schema: dict) -> str:
    """A property's type in words, with links to the sections of nested models."""
    if _ref(schema):
        return f"[{_ref(schema)}](#{_ref(schema).lower()})"
    if "const" in schema:
        return f"`{schema['const']}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            kinds = [_type(option) for option in schema[key] if option.get("type") != "null"]
            optional = any(option.get("type") == "null" for option in schema[key])
            return " or ".join(kinds) + (" or null" if optional else "")
    kind = schema.get("type")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(_type(item) for item in schema["prefixItems"]) + "]"
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "string" and schema.get("format") == "path":
        return "path"
    return kind or "any"


def _bounds(schema: dict) -> str:
    parts = []
    for key, word in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
                      ("exclusiveMaximum", "<")):
        if key in schema:
            parts.append(f"{word} {schema[key]:g}")
    if "minItems" in schema and "prefixItems" not in schema:
        parts.append(f"at least {schema['minItems']}")
    if schema.get("minLength"):
        parts.append("not empty")
    items = schema.get("prefixItems") or []
    if items and all(_bounds(item) for item in items) and len({_bounds(i) for i in items}) == 1:
        parts.append(f"each {_bounds(items[0])}")
    return ", ".join(parts)


def _default(schema: dict, required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in schema:
        return ""
    value = schema["default"]
    if isinstance(value, dict):
        return "its keys' defaults"
    if value is None:
        return "none"
    if isinstance(value, list):
        value = "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return f"`{value}`" if value != "" else "`\"\"`"


def _section(name: str, model: dict) -> list[str]:
    required = set(model.get("required", ()))
    lines = [f"## {name}", "", _text(model.get("description")), "",
             "| key | type | default | bounds | what |", "| --- | --- | --- | --- | --- |"]
    for key, schema in model["properties"].items():
        lines.append(f"| `{key}` | {_type(schema)} | {_default(schema, key in required)} | "
                     f"{_bounds(schema)} | {_text(schema.get('description'))} |")
    return lines + [""]


def _order(schema: dict) -> list[str]:
    """Nested models in the order a reader meets them, walking the top level's keys."""
    seen: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            name = _ref(node)
            if name and name not in seen:
                seen.append(name)
                walk(schema["$defs"][name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema["properties"])
    return seen


def render() -> str:
    """The text of docs/cell-reference.md."""
    from celltwin.spec.schema import CellSpec

    schema = CellSpec.model_json_schema()
    lines = ["# Cell file reference", "",
             "Every key of a cell file, generated from the schema that validates it "
             "(`celltwin.spec`) by `python scripts/gen_cell_docs.py`; do not edit by hand "
             "(`tests/test_docs.py` fails when it is out of date). How cells are written, with "
             "examples, and the checks across sections (names, references, reach): "
             "[cells.md](cells.md). Units are SI; angles in degrees where a key ends in `_deg`. "
             "An unknown key is an error with a suggestion.", ""]
    lines += _section("Cell (top level)", schema)
    for name in _order(schema):
        lines += _section(name, schema["$defs"][name])
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(OUT, render, "gen_cell_docs.py",
                          argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

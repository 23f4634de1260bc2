"""The YAML loader every celltwin document goes through, and the limits that keep it safe.

A document comes from a user, a colleague or a download, so reading it must end quickly with
either data or a located problem: no hang, no traceback. PyYAML alone fails three ways on
hostile text: an alias bomb (a few anchors used many times each) is a few hundred bytes that
expand to billions of values; nesting a few hundred levels deep overflows Python's stack in
the recursive composer; and control characters end in an unlocated ``ReaderError``.
:class:`DocumentLoader` bounds the first two while it composes (:data:`MAX_DEPTH`,
:data:`MAX_VALUES`); :func:`check_text` refuses the size and the characters before parsing.
"""

from __future__ import annotations

import re
import unicodedata

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DOCUMENT_BYTES = 128 * 1024
"""Largest document read [bytes of a file, characters of a text]: thirty times the largest
shipped document (4 KB). PyYAML in pure Python (the limits hook into its composer) reads 100 to
150 KB/s, so the worst document this size still reads in about a second."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings; the shipped documents nest at most 5 levels."""
MAX_VALUES = 50_000
"""Most values (scalars, lists and mappings) a document may hold, each use of an alias counted
in full: what the line index and validation walk."""

# YAML 1.1 accepts only these characters (PyYAML's Reader.NON_PRINTABLE, inverted).
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")


class LimitError(yaml.MarkedYAMLError):
    """A document exceeds one of the limits above (located at ``problem_mark``)."""

    def __init__(self, problem: str, mark, expected: str):
        super().__init__(problem=problem, problem_mark=mark)
        self.expected = expected


class TextProblem(ValueError):
    """Text that is refused before parsing: ``message`` at 1-based ``line``."""

    def __init__(self, message: str, line: int, expected: str):
        super().__init__(message)
        self.message, self.line, self.expected = message, line, expected


def check_text(text: str) -> None:
    """Refuse text that is too long or holds characters YAML does not allow.

    Raises:
        TextProblem: the first such problem, with its line.
    """
    if len(text) > MAX_DOCUMENT_BYTES:
        line = text.count("\n", 0, MAX_DOCUMENT_BYTES) + 1
        raise TextProblem(f"the document is longer than {MAX_DOCUMENT_BYTES // 1024} KiB "
                          f"({len(text)} characters)", line,
                          f"a document of at most {MAX_DOCUMENT_BYTES // 1024} KiB")
    found = _NOT_PRINTABLE.search(text)
    if found:
        position = found.start()
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        raise TextProblem(f"{describe_character(found.group())} at column {column}", line,
                          "printable text: no control characters except tab and line breaks")


def describe_character(char: str) -> str:
    """``control character U+0000 (NUL)``: a refused character, named."""
    code = ord(char)
    names = {0: "NUL", 7: "BEL", 8: "BS", 0x1B: "ESC", 0x7F: "DEL"}
    name = names.get(code) or unicodedata.name(char, "")
    kind = "control character" if unicodedata.category(char) == "Cc" else "character"
    return f"{kind} U+{code:04X}" + (f" ({name})" if name else "")


class DocumentLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping keys as written, reads ``1e-3`` as a number, and refuses
    documents past :data:`MAX_DEPTH` or :data:`MAX_VALUES` while composing them.

    YAML 1.1 reads the key ``on`` (used by spawn regions) as ``True``, and reads exponents
    without a dot (``2e-3``) as strings; both surprise people writing a cell by hand.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        # Values under each completed node, aliases expanded; a node still being composed has
        # none yet, which is how an alias to its own anchor is recognised.
        self._sizes: dict[Node, int] = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                if node not in self._sizes:
                    raise LimitError(f"alias *{event.anchor} is used inside its own anchor",
                                     event.start_mark, "an alias after the value it names ends")
                self._count(self._sizes[node], event.start_mark)
            return super().compose_node(parent, index)  # an undefined alias is PyYAML's error
        nests = isinstance(event, CollectionStartEvent)
        self._depth += nests
        if self._depth > MAX_DEPTH:
            raise LimitError(f"lists and mappings nest more than {MAX_DEPTH} levels deep",
                             event.start_mark, f"at most {MAX_DEPTH} levels of nesting")
        self._count(1, event.start_mark)
        node = super().compose_node(parent, index)
        self._depth -= nests
        self._sizes[node] = 1 + sum(self._sizes[child] for child in _children(node))
        return node

    def _count(self, values: int, mark) -> None:
        self._values += values
        if self._values > MAX_VALUES:
            raise LimitError(
                f"the document holds more than {MAX_VALUES} values, each use of an alias "
                "counted in full", mark,
                f"at most {MAX_VALUES} values; an alias (*name) repeats everything under its "
                "anchor")

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # a tag's constructor on a bad value (`!!int x`, `!!float`)
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {node.tag} value: {exc}", node.start_mark) from None

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


DocumentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    if isinstance(node, SequenceNode):
        return node.value
    return []

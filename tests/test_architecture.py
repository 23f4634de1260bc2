"""The layering of docs/architecture.md, held: the order of homes is read from that page's table
(its one source), every module of the source tree is parsed (never imported) and its imports
are checked against it.

It fails on (a) an import against the order, at module level or inside a function; (b) an import
cycle among modules through module-level imports; (c) a module reading another module's private
(``_name``) attribute, celltwin's or a third party's; (d) an import inside a function that keeps
no library off the import path or would close a cycle at the top. Each failure lists every
violation at once, with file and line.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "celltwin"


@dataclass(frozen=True)
class Home:
    """One row of the table in docs/architecture.md.

    Attributes:
        name: the home's name in the table and in messages.
        rank: its place in the order.
        modules: dotted names it owns (each with its submodules); the longest match wins.
        above: it may import every home of a lower rank ("the above").
        names: the homes it may import by name (of a lower rank, or its own where named).
    """

    name: str
    rank: int
    modules: tuple[str, ...]
    above: bool
    names: frozenset[str]


def read_homes(text: str) -> tuple[Home, ...]:
    """The homes of docs/architecture.md's ``| rank | home | owns | may import |`` table.

    A home cell is ``name: `module`, `.sibling`, ...`` or one ``module`` whose name without
    ``celltwin.`` names the home; a ``.sibling`` continues the package of the module before it.
    A "may import" cell is "nothing of celltwin", or homes and "the above" joined by commas and
    "and". Anything else fails, so the table cannot say what this test does not hold.
    """
    lines = text.splitlines()
    header = "| rank | home | owns | may import |"
    assert header in lines, f"docs/architecture.md has no table headed {header}"
    rows = []
    for line in lines[lines.index(header) + 2:]:
        if not line.startswith("|"):
            break
        rank, home, _owns, allowed = (cell.strip() for cell in line.strip("|").split("|"))
        name, _, listed = home.rpartition(":") if ":" in home else ("", "", home)
        modules: list[str] = []
        for module in re.findall(r"`([^`]+)`", listed):
            modules.append(modules[-1].rsplit(".", 1)[0] + module if module.startswith(".")
                           else module)
        assert modules, f"docs/architecture.md: no module in the home cell {home!r}"
        name = name.strip() or modules[0].removeprefix(PACKAGE + ".")
        words = [] if allowed == "nothing of celltwin" else re.split(r",\s*(?:and\s+)?|\s+and\s+",
                                                                     allowed)
        rows.append(Home(name, int(rank), tuple(modules), "the above" in words,
                         frozenset(word for word in words if word != "the above")))
    known = {home.name: home for home in rows}
    assert len(known) == len(rows), f"docs/architecture.md: a home is named twice: {known}"
    for home in rows:
        for other in home.names:
            assert other in known, (f"docs/architecture.md: {home.name} may import {other!r}: "
                                    "no such home")
            assert known[other].rank <= home.rank, (f"docs/architecture.md: {home.name} may "
                                                    f"import {other}, of a higher rank")
    return tuple(rows)


@cache
def homes() -> tuple[Home, ...]:
    return read_homes((REPO / "docs" / "architecture.md").read_text())


def may_import(importer: Home, imported: Home) -> bool:
    return (importer == imported or imported.name in importer.names
            or (importer.above and imported.rank < importer.rank))


# Third-party private names that celltwin has to touch. Each entry: (module, name) -> why.
PRIVATE_ALLOWLIST: dict[tuple[str, str], str] = {
    ("celltwin.serve.opcua_guard", "_setup_server_nodes"):
        "GuardedServer.start repeats asyncua's Server.start, which builds its transport with no "
        "hook for another class (pinned by tests/test_opcua_hostile.py)",
    ("celltwin.serve.opcua_guard", "_policies"):
        "the security policies Server.start hands its transport (same method, same pin)",
}


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool

    @property
    def where(self) -> str:
        return str(self.path.relative_to(REPO))


@dataclass(frozen=True)
class Import:
    """One imported module; ``target`` is the submodule where ``from pkg import sub`` names one."""

    source: str
    target: str
    line: int
    module_level: bool
    lazy: bool = False  # named by a string: importlib.import_module, a gym entry point

    def describe(self, modules: dict[str, Module]) -> str:
        how = "lazily " if self.lazy else "" if self.module_level else "in a function "
        return f"{modules[self.source].where}:{self.line}: {self.source} {how}imports {self.target}"


@cache
def source_modules() -> dict[str, Module]:
    """Every module of the tree, named as installed through pyproject.toml's package-dir."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package, folder in setuptools["package-dir"].items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join((package, *(parts[:-1] if is_package else parts)))
            modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)), is_package)
    return modules


def home_of(module: str) -> Home:
    """The home owning ``module``: the longest name of the table that is it or, but for the
    package root, a package above it (a new top-level module needs a row of its own)."""
    best, length = None, -1
    for home in homes():
        for prefix in home.modules:
            covers = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if covers and len(prefix) > length:
                best, length = home, len(prefix)
    if best is None:
        raise AssertionError(f"{module} has no home in docs/architecture.md's table")
    return best


def _known(name: str, modules: dict[str, Module]) -> str:
    """``name`` or its longest prefix that is a module of the tree (``celltwin.x.attr`` -> x)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.name if module.is_package else module.name.rsplit(".", 1)[0]
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _called_name(func: ast.expr) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


class _ImportFinder(ast.NodeVisitor):
    """Imports of one module; class bodies run at import time, function bodies do not."""

    def __init__(self, module: Module, modules: dict[str, Module]):
        self.module, self.modules = module, modules
        self.imports: list[Import] = []
        self.depth = 0
        self.calls_import_module = any(
            isinstance(node, ast.Call) and _called_name(node.func) == "import_module"
            for node in ast.walk(module.tree))

    def _add(self, target: str, node: ast.AST, lazy: bool = False) -> None:
        self.imports.append(Import(self.module.name, target, node.lineno,
                                   self.depth == 0 and not lazy, lazy))

    def _function(self, node: ast.AST) -> None:
        for decorator in getattr(node, "decorator_list", ()):
            self.visit(decorator)
        self.depth += 1
        for child in ast.iter_child_nodes(node):
            if child not in getattr(node, "decorator_list", ()):
                self.visit(child)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _absolute(self.module, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.modules else base, node)

    def visit_keyword(self, node: ast.keyword) -> None:
        # gym.register(entry_point="celltwin.envs.cell_env:CellEnv")
        if node.arg == "entry_point":
            self._lazy(node.value)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        # A module that calls import_module: every module named in it may be imported that way
        # (a PEP 562 map of names to modules, a list of subcommand modules).
        if self.calls_import_module:
            self._lazy(node)

    def _lazy(self, node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.split(":", 1)[0]
            if name in self.modules and name.startswith(PACKAGE + "."):
                self._add(name, node, lazy=True)


@cache
def raw_imports() -> tuple[Import, ...]:
    """Every import statement of every module, celltwin's and third parties' alike."""
    modules = source_modules()
    found = []
    for module in modules.values():
        finder = _ImportFinder(module, modules)
        finder.visit(module.tree)
        found += finder.imports
    return tuple(found)


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a celltwin module by a celltwin module, targets resolved to modules."""
    modules = source_modules()
    found = []
    for edge in raw_imports():
        if edge.target == PACKAGE or edge.target.startswith(PACKAGE + "."):
            target = _known(edge.target, modules)
            if target != edge.source:
                found.append(Import(edge.source, target, edge.line, edge.module_level, edge.lazy))
    return tuple(dict.fromkeys(found))


def cycles(edges: tuple[Import, ...]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        graph[edge.source].append(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_names(tree: ast.Module) -> set[str]:
    """Names a module defines: its functions, classes, variables, parameters, ``__slots__`` and
    the attributes it sets on ``self`` or ``cls``. Import aliases are not definitions."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
              and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            names.add(node.attr)
        elif (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__slots__"
                                                   for t in node.targets)):
            names.update(c.value for c in ast.walk(node.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return names


def _module_aliases(module: Module, modules: dict[str, Module]) -> dict[str, str]:
    """Local names bound to a module: ``import m``, ``import m as a``, ``from pkg import sub``."""
    aliases = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    aliases[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return aliases


def _module_of(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The dotted module ``node`` names (``np``, ``os.path``, ``celltwin.core``), if it does."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute) and not _is_private(node.attr):
        parent = _module_of(node.value, aliases)
        return f"{parent}.{node.attr}" if parent else None
    return None


@dataclass(frozen=True)
class PrivateRead:
    module: str
    line: int
    owner: str  # the module read from, or "?" for an object of unknown type
    name: str
    how: str


def private_reads(module: Module, modules: dict[str, Module]) -> list[PrivateRead]:
    defined = _defined_names(module.tree)
    aliases = _module_aliases(module, modules)
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(PrivateRead(module.name, node.lineno, base, alias.name,
                                             f"from {base} import {alias.name}"))
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = _module_of(node.value, aliases)
            if owner is not None:
                found.append(PrivateRead(module.name, node.lineno, owner, node.attr,
                                         f"{ast.unparse(node)}"))
            elif node.attr not in defined:
                found.append(PrivateRead(module.name, node.lineno, "?", node.attr,
                                         f"{ast.unparse(node)} ({node.attr} is not defined here)"))
        elif (isinstance(node, ast.Call) and _called_name(node.func) in GETATTR_LIKE
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _is_private(node.args[1].value)
              and node.args[1].value not in defined):
            found.append(PrivateRead(module.name, node.lineno, "?", node.args[1].value,
                                     ast.unparse(node)))
    return found


GETATTR_LIKE = frozenset({"getattr", "setattr", "hasattr", "delattr"})



# ------------------------------------------------------------------------- imports in functions
# What a function-level import may keep off a module's import path: any library but these.
ALWAYS_LOADED = frozenset({"numpy", "typing_extensions"})
STDLIB = frozenset(sys.stdlib_module_names)


def _libraries(module: str) -> set[str]:
    """The libraries ``module`` imports at module level itself."""
    return {edge.target.split(".")[0] for edge in raw_imports()
            if edge.source == module and edge.module_level
            and edge.target.split(".")[0] not in STDLIB | {PACKAGE, "__future__"}}


@cache
def loaded_libraries(module: str) -> frozenset[str]:
    """Every library importing ``module`` loads: through its module-level imports, those of
    the celltwin modules they import, and of the packages they sit in."""
    modules = source_modules()
    graph = defaultdict(set)
    for edge in imports():
        if edge.module_level:
            graph[edge.source].add(edge.target)
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += graph[name]
        todo += [parent for parent in _parents(name) if parent in modules]
    return frozenset().union(*(_libraries(name) for name in seen))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


# ------------------------------------------------------------------------- the tests
def test_the_tree_is_parsed_whole():
    """Sanity, so that the checks below cannot pass on an empty or half-read tree."""
    modules, edges = source_modules(), imports()
    assert len(modules) > 100, sorted(modules)
    assert len({(edge.source, edge.target) for edge in edges}) > 300
    assert sum(not edge.module_level and not edge.lazy for edge in edges) > 20
    assert {"celltwin", "celltwin.core.errors", "celltwin.world", "celltwin.cli.main",
            "celltwin.policies.deploy.adapter", "celltwin.training.trainer",
            "celltwin.assets"} <= set(modules)
    assert Import("celltwin.world", "celltwin.physics_io", _line_of("celltwin.world",
                  "from celltwin.physics_io import"), True) in edges
    assert any(edge.source == "celltwin.envs" and edge.target == "celltwin.envs.cell_env"
               and edge.lazy for edge in edges)   # gym.register's entry point
    owned = defaultdict(list)
    for name in modules:
        owned[home_of(name).name].append(name)
    names = {home.name for home in homes()}
    assert set(owned) == names, f"homes that own no module: {names - set(owned)}"
    for home in homes():
        for prefix in home.modules:
            assert prefix in modules, f"docs/architecture.md's table names {prefix}: no such module"


def test_the_table_of_homes_is_read_as_written():
    """Sanity for read_homes: docs/architecture.md's table as this test reads it."""
    by_name = {home.name: home for home in homes()}
    assert len(by_name) >= 17 and [home.rank for home in homes()] == sorted(by_name[name].rank
                                                                              for name in by_name)
    assert by_name["core"] == Home("core", 0, ("celltwin.core",), False, frozenset())
    assert by_name["spec"] == Home("spec", 2, ("celltwin.spec",), False,
                                   frozenset({"core", "robots"}))
    assert {"celltwin", "celltwin.world", "celltwin.physics_io"} <= set(by_name["world"].modules)
    assert by_name["policies"].above and by_name["policies"].names == {"controller side"}
    side = by_name["controller side"]
    assert "celltwin.policies.deploy" in side.modules and not side.above
    assert by_name["cli"].above and by_name["cli"].rank == max(by_name[n].rank for n in by_name)


@pytest.mark.parametrize("row, message", [
    ("| 1 | `celltwin.a` | x | core, nowhere |", "may import 'nowhere': no such home"),
    ("| 0 | `celltwin.a` | x | b |", "may import b, of a higher rank"),
    ("| 1 | `celltwin.b` | x | core |", "a home is named twice"),
    ("| 1 | a and b | x | core |", "no module in the home cell"),
])
def test_a_table_that_says_what_the_test_cannot_hold_fails(row, message):
    table = ("| rank | home | owns | may import |\n| --- | --- | --- | --- |\n"
             "| 0 | `celltwin.core` | x | nothing of celltwin |\n"
             f"| 1 | `celltwin.b` | x | the above |\n{row}\n")
    with pytest.raises(AssertionError, match=message):
        read_homes(table)


def _line_of(module: str, text: str) -> int:
    lines = source_modules()[module].path.read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(text))


def test_imports_follow_the_order_of_homes():
    modules = source_modules()
    wrong = []
    for edge in imports():
        importer, imported = home_of(edge.source), home_of(edge.target)
        if not may_import(importer, imported):
            wrong.append(f"{edge.describe(modules)}  [{importer.name} (rank {importer.rank}) "
                         f"may not import {imported.name} (rank {imported.rank})]")
    assert not wrong, ("imports against docs/architecture.md's order:\n  "
                       + "\n  ".join(sorted(set(wrong))))


def test_no_import_cycles_between_modules():
    modules = source_modules()
    module_level = tuple(edge for edge in imports() if edge.module_level)
    found = cycles(module_level)
    report = []
    for component in found:
        members = set(component)
        report.append(" <-> ".join(component) + "\n" + "\n".join(
            f"    {edge.describe(modules)}" for edge in module_level
            if edge.source in members and edge.target in members))
    assert not found, "module-level import cycles:\n  " + "\n  ".join(report)


def test_no_module_reads_another_modules_privates():
    modules = source_modules()
    reads = [read for module in modules.values() for read in private_reads(module, modules)]
    wrong = sorted({f"{modules[read.module].where}:{read.line}: {read.how}" for read in reads
                    if (read.module, read.name) not in PRIVATE_ALLOWLIST})
    assert not wrong, "reads of another module's private names:\n  " + "\n  ".join(wrong)
    used = {(read.module, read.name) for read in reads}
    assert not set(PRIVATE_ALLOWLIST) - used, "allowlist entries no longer needed"


def test_imports_in_functions_keep_a_library_off_the_import_path():
    """A function-level import is there to keep a heavy library off a light path; one that
    keeps nothing off only hides a cycle (or nothing at all) and belongs at the top."""
    modules = source_modules()
    pointless = []
    for edge in imports():
        if edge.module_level or edge.lazy:
            continue
        if not loaded_libraries(edge.target) - loaded_libraries(edge.source) - ALWAYS_LOADED:
            pointless.append(f"{edge.describe(modules)}: loads no library {edge.source} "
                             "does not load already; import it at the top")
    assert not pointless, ("function-level imports that keep nothing off the import path:\n  "
                           + "\n  ".join(sorted(set(pointless))))


def test_no_import_in_a_function_hides_a_cycle():
    """Each function-level import could stand at the top without closing a cycle."""
    modules = source_modules()
    module_level = tuple(edge for edge in imports() if edge.module_level)
    hiding = []
    for edge in imports():
        if edge.module_level or edge.lazy:
            continue
        for component in cycles(module_level + (replace(edge, module_level=True),)):
            if edge.source in component and edge.target in component:
                hiding.append(f"{edge.describe(modules)}: at the top it would close the cycle "
                              + " <-> ".join(component))
    assert not hiding, "function-level imports that hide a cycle:\n  " + "\n  ".join(hiding)


CONTROLLER_LIBRARIES = frozenset({"numpy", "onnxruntime", "asyncua", "cryptography"})


def test_the_controller_side_loads_no_training_or_physics_library():
    """docs/architecture.md: the controller side runs with numpy, onnxruntime and asyncua."""
    wrong = []
    for name in source_modules():
        if home_of(name).name in ("controller side", "controller", "observation") \
                or name == "celltwin.core.errors":
            extra = loaded_libraries(name) - CONTROLLER_LIBRARIES
            if extra:
                wrong.append(f"{name} loads {sorted(extra)}")
    assert not wrong, "\n".join(wrong)

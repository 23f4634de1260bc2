"""Checks across sections of a cell: one namespace for names, and every reference resolves.

These run on the raw document (plain dicts and lists, as YAML gave them), so a cell with schema
errors still gets its broken references reported in the same pass. Anything malformed is
skipped here: the schema reports it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from celltwin.core.errors import did_you_mean, one_of
from celltwin.core.problems import Finding, Loc

# Every named thing shares one namespace: robots and bodies become pybullet bodies looked up
# by name, and targets and regions are addressed by name from tasks and randomization terms.
NAMED_SECTIONS = ("robots", "equipment", "conveyors", "bins", "parts", "spawn_regions", "targets")
STATIC_BODY_SECTIONS = ("equipment", "conveyors", "bins")
MAX_PART_COUNT = 1000
RESERVED_NAMES = {"floor": "the ground plane every world adds"}


def reference_findings(data: Any, base_dir: Path | None = None) -> list[Finding]:
    """Return every cross-section problem of a raw cell document (whose relative robot file
    paths start from ``base_dir``; default: the working directory)."""
    if not isinstance(data, Mapping):
        return []
    findings = _name_findings(data)
    findings += _robot_model_findings(data, base_dir)
    regions = _names(data, "spawn_regions")
    static_bodies = [name for section in STATIC_BODY_SECTIONS for name in _names(data, section)]
    part_bodies = [body for _, _, bodies in _part_bodies(data) for body in bodies]
    robots = _names(data, "robots")
    bodies = static_bodies + part_bodies
    for index, part in entries(data, "parts"):
        findings += _must_name(part, "spawn", ("parts", index), regions,
                               "spawn region", "spawn_regions")
    for index, region in entries(data, "spawn_regions"):
        findings += _must_name(region, "on", ("spawn_regions", index), static_bodies,
                               "body", "equipment, conveyors or bins")
    for index, target in entries(data, "targets"):
        findings += _must_name(target, "relative_to", ("targets", index), bodies,
                               "body", "equipment, conveyors, bins or parts")
        findings += _must_name(target, "robot", ("targets", index), robots, "robot", "robots")
    return findings


def entries(data: Mapping, section: str) -> Iterator[tuple[int, Mapping]]:
    items = data.get(section)
    if isinstance(items, Sequence) and not isinstance(items, str):
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                yield index, item


def _name(item: Mapping) -> str | None:
    name = item.get("name")
    return name if isinstance(name, str) and name else None


def _names(data: Mapping, section: str) -> list[str]:
    return [name for _, item in entries(data, section) if (name := _name(item))]


def _part_bodies(data: Mapping) -> Iterator[tuple[int, str, list[str]]]:
    for index, part in entries(data, "parts"):
        name = _name(part)
        if name is None:
            continue
        count = part.get("count", 1)
        valid = type(count) is int and 1 <= count <= MAX_PART_COUNT
        count = count if valid else 1  # the schema reports a bad count (bools included)
        yield index, name, [name] if count == 1 else [f"{name}_{i}" for i in range(count)]


def _name_findings(data: Mapping) -> list[Finding]:
    first_use: dict[str, tuple[Loc, str | None]] = {}  # name -> (where, the part type it expands)
    findings: list[Finding] = []
    expected = "a name used nowhere else in the cell"

    def claim(name: str, loc: Loc, part: str | None = None) -> None:
        if name in RESERVED_NAMES:
            reason = f"the name '{name}' is reserved for {RESERVED_NAMES[name]}"
            findings.append(Finding(loc, reason, value=name, expected=expected))
        elif name in first_use:
            first, first_part = first_use[name]
            made = f" (a body of part '{part}')" if part else ""
            by = f" by part '{first_part}'" if first_part else ""
            message = f"duplicate name '{name}'{made}; already used{by} at {{first}}"
            findings.append(Finding(loc, message, value=name, expected=expected, first=first))
        else:
            first_use[name] = (loc, part)

    part_types: dict[str, Loc] = {}
    for section in NAMED_SECTIONS:
        if section != "parts":
            for index, item in entries(data, section):
                if (name := _name(item)) is not None:
                    claim(name, (section, index, "name"))
            continue
        for index, name, bodies in _part_bodies(data):
            loc = ("parts", index, "name")
            if name in part_types:  # the same part type twice, even where the bodies differ
                message = f"duplicate part name '{name}'; first used at {{first}}"
                findings.append(Finding(loc, message, value=name, expected=expected,
                                        first=part_types[name]))
                continue
            part_types[name] = loc
            for body in bodies:
                claim(body, loc, None if body == name else name)
    return findings


def _robot_model_findings(data: Mapping, base_dir: Path | None) -> list[Finding]:
    robots = list(entries(data, "robots"))
    if not robots:
        return []
    # Imported here: the registry pulls in pybullet_data and URDF handling, which
    # validating a cell without robots (or building docs) does not need.
    from celltwin.robots.errors import RobotError
    from celltwin.robots.registry import get_robot_model, is_robot_file, robot_model_names

    known = list(robot_model_names())
    findings = []
    for index, robot in robots:
        model = robot.get("model")
        if not isinstance(model, str):
            continue
        loc = ("robots", index, "model")
        robot_file = is_robot_file(model)
        if not robot_file and model not in known:
            findings.append(Finding(loc, f"unknown robot model '{model}'"
                                    f"{did_you_mean(model, known)}", value=model,
                                    expected=one_of(known)))
            continue
        try:
            resolved = get_robot_model(Path(base_dir or Path.cwd()) / Path(model).expanduser()
                                       if robot_file else model)
        except RobotError as error:  # each problem keeps its own file, line and path
            findings += [Finding(loc, f"robot file: {problem}", value=model)
                         for problem in error.problems]
            continue
        home, joints = robot.get("home_deg"), resolved.dof
        if isinstance(home, Sequence) and not isinstance(home, str):
            if len(home) != joints:
                message = f"{len(home)} angles given, but a {resolved.name} has {joints} arm joints"
                findings.append(Finding(("robots", index, "home_deg"), message, value=list(home),
                                        expected=f"a list of {joints} angles [deg]"))
    return findings


def _must_name(item: Mapping, key: str, loc: Loc, names: list[str], noun: str,
               where: str) -> list[Finding]:
    value = item.get(key)
    if not isinstance(value, str) or not value or value in names:
        return []
    expected = (one_of(set(names)) if names
                else f"the name of one of the cell's {where} (it has none)")
    return [Finding(loc + (key,), f"no {noun} named '{value}'{did_you_mean(value, names)}",
                    value=value, expected=expected)]

"""The bundle manifest: what a deployed policy needs to know, and its schema check.

``manifest.json`` travels with ``policy.onnx``: the robot it was trained for (model, joint
names, limits, the kinematic chain for numpy FK), how it is driven (control mode and period),
what goes in (ordered observation terms with sizes and units, the goal), what comes out
(action semantics and units, already post-processed), the safety limits the adapter enforces,
a summary of training, and the SHA-256 and size of every other file. The schema check below
reports every problem at once, each with its dotted path, so a hand-edited manifest gets one
clear list instead of a crash deep inside the adapter.

Light on purpose (numpy-free even): it runs on a controller PC.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any, Mapping

from celltwin.core.errors import Problem
from celltwin.policies.errors import BundleError

SCHEMA_VERSION = 1
FORMAT = "celltwin.policy-bundle"
MANIFEST_FILE = "manifest.json"
CONTROL_MODES = ("ee_delta", "joint_delta", "joint_position")

# Leaf codes: "str", "int", "bool", "num" (finite), "num+" (finite > 0), "num?" (num or null),
# "nums:N" (N finite numbers; N may be "dof"), "strs" (list of str), "names" (list of str,
# maybe empty), "dict" (free mapping), "str?" (str or null). A nested dict is a section; a one-item list is a list of that section.
_SCHEMA: dict[str, Any] = {
    "schema_version": "int",
    "format": "str",
    "created_utc": "str",
    "celltwin_version": "str",
    "robot": {
        "model": "str",
        "joint_names": "strs",
        "home_rad": "nums:dof",
        "joint_limits": {"position_lower_rad": "nums:dof", "position_upper_rad": "nums:dof",
                         "velocity_rad_s": "nums:dof", "effort_nm": "nums:dof"},
        # A suction cup has no finger joints (its opening is its vacuum state).
        "gripper": {"joint_names": "names", "width_range_m": "nums:2"},
        "kinematics": {
            "base_link": "str",
            "tcp_link": "str",
            "joints": [{"name": "str", "type": "str", "origin_xyz": "nums:3",
                        "origin_rpy": "nums:3", "axis": "nums:3"}],
            "tcp_offset": {"xyz": "nums:3", "quat_xyzw": "nums:4"},
            "base_pose_in_cell": {"xyz": "nums:3", "quat_xyzw": "nums:4"},
        },
    },
    "control": {"mode": "str", "period_s": "num+", "scale": "num?", "uses_gripper": "bool",
                "tcp_orientation_quat_xyzw": "nums?:4", "ik_damping": "num+"},
    "observation": {
        "frame": "str",
        "terms": [{"name": "str", "size": "int", "unit": "str", "description": "str"}],
        "size": "int",
        "achieved_goal_term": "str",
        "goal_size": "int",
        "success_threshold_m": "num+",
        "object_name": "str?",
        "goal_low_m": "nums:3",
        "goal_high_m": "nums:3",
    },
    "policy": {
        "onnx_file": "str",
        "torchscript_file": "str?",
        "input": {"name": "str", "dtype": "str", "size": "int",
                  "layout": [{"key": "str", "size": "int"}]},
        "output": {"name": "str", "dtype": "str", "size": "int"},
        "exporter": "str",
        "opset": "int",
        "normalization": {"baked": "bool", "clip_obs": "num?", "epsilon": "num?"},
        "parity": {"max_abs_diff": "num", "tolerance": "num+", "samples": "int"},
    },
    "action": {"semantics": "str", "arm_size": "int",
               "elements": [{"name": "str", "unit": "str"}]},
    "safety": {
        "joint_position_lower_rad": "nums:dof",
        "joint_position_upper_rad": "nums:dof",
        "joint_velocity_rad_s": "nums:dof",
        "joint_acceleration_rad_s2": "nums:dof",
        "max_joint_step_rad": "nums:dof",
        "tcp_workspace_low_m": "nums:3",
        "tcp_workspace_high_m": "nums:3",
        "reduced_mode_tcp_speed_mps": "num+",
        "stale_state_periods": "int",
    },
    "training": {"task": "str", "algo": "str", "seed": "int?", "randomization": "any",
                 "env_kwargs": "dict", "max_episode_steps": "int?", "summary": "dict"},
    "files": "dict",
    "manifest_sha256": "str",
}

# Fields a manifest may leave out: bundles written before celltwin recorded them.
# The goal box (robot base frame [m]) is where training drew its goals.
OPTIONAL_FIELDS = frozenset({"observation.goal_low_m", "observation.goal_high_m"})

# Bounds of what a manifest may be: an exported one is about 10 KB and 8 levels deep.
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_MANIFEST_DEPTH = 64

# The order the policy's single input vector is concatenated in: SB3's MultiInputPolicy and
# gymnasium's FlattenObservation both walk a Dict space in sorted key order.
INPUT_KEYS = ("achieved_goal", "desired_goal", "observation")


# Episode length of a bundle exported before the manifest recorded it: every task's then.
DEFAULT_EPISODE_STEPS = 50


def episode_steps(manifest: Mapping) -> int:
    """The episode length the bundle's policy was trained with [control steps]."""
    return int(manifest["training"].get("max_episode_steps") or DEFAULT_EPISODE_STEPS)


def manifest_digest(manifest: Mapping) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own ``manifest_sha256`` field.

    Canonical: sorted keys, no whitespace. Python's float repr round-trips, so a manifest
    loaded and dumped again hashes the same; any edited value does not.
    """
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Refused(ValueError):
    """A value strict JSON does not have, met while parsing (see :func:`parse_manifest`).

    Attributes:
        token: the offending text, to find its line.
    """

    def __init__(self, message: str, token: str):
        super().__init__(message)
        self.token = token


MAX_INTEGER_DIGITS = 30   # far beyond any count or size a manifest holds


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text[:40]} is beyond a 64-bit float", text)
    return value


def _integer(text: str) -> int:
    if len(text) > MAX_INTEGER_DIGITS:
        raise _Refused(f"an integer of {len(text)} digits", text[:40])
    return int(text)


def _constant(text: str):
    raise _Refused(f"{text} is not a JSON number", text)


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict:
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise _Refused(f"key '{key[:40]}' appears twice in one object",
                           json.dumps(key)[:40])
        seen[key] = value
    return seen


def _line_of(text: str, token: str) -> int | None:
    """Line of the first place ``token`` stands in ``text`` outside a string, if any."""
    match = re.search(r'(?<![\w"])' + re.escape(token), text)
    return text.count("\n", 0, match.start()) + 1 if match else None


_TOKEN = re.compile(r'["\\\[\]{}]')


def _depth(text: str) -> tuple[int, int]:
    """Deepest nesting of ``[`` and ``{`` in JSON ``text`` and its line; brackets inside
    strings do not count. One pass over the quotes, backslashes and brackets: linear in the
    length, whatever the text holds."""
    depth = deepest = where = 0
    in_string, skip_to = False, 0
    for match in _TOKEN.finditer(text):
        at, token = match.start(), match.group()
        if at < skip_to:
            continue   # the character after a backslash
        if in_string:
            if token == "\\":
                skip_to = at + 2
            elif token == '"':
                in_string = False
        elif token == '"':
            in_string = True
        elif token in "[{":
            depth += 1
            if depth > deepest:
                deepest, where = depth, at
        elif token in "]}":
            depth -= 1
    return deepest, text.count("\n", 0, where) + 1


def parse_manifest(text: str, file: str | None = None) -> Any:
    """Parse manifest JSON strictly and within bounds; raise a typed error otherwise.

    Strict: NaN, Infinity, numbers beyond a float and repeated keys are refused (the digest
    could not be computed, or two readers could see two values). Bounded: at most
    :data:`MAX_MANIFEST_BYTES` characters and :data:`MAX_MANIFEST_DEPTH` levels of nesting,
    checked before parsing, so that a hostile file costs neither memory nor the recursion
    limit.

    Raises:
        BundleError: one problem, with the file and, where known, the line.
    """
    if len(text) > MAX_MANIFEST_BYTES:
        raise BundleError(Problem(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes",
                                  file=file, expected="an exported manifest (about 10 KB)"))
    depth, line = _depth(text)
    if depth > MAX_MANIFEST_DEPTH:
        raise BundleError(Problem(f"manifest nests {depth} levels deep", file=file, line=line,
                                  expected=f"at most {MAX_MANIFEST_DEPTH} levels"))
    try:
        return json.loads(text, parse_float=_finite, parse_int=_integer,
                          parse_constant=_constant, object_pairs_hook=_no_repeats)
    except json.JSONDecodeError as exc:
        raise BundleError(Problem(f"manifest is not valid JSON ({exc.msg}); truncated or "
                                  "edited?", file=file, line=exc.lineno)) from None
    except _Refused as exc:
        raise BundleError(Problem(f"manifest is not strict JSON: {exc}", file=file,
                                  line=_line_of(text, exc.token),
                                  expected="finite numbers, each key once per object")) from None


def validate_manifest(data: Any, file: str | None = None) -> list[Problem]:
    """Return every problem of a manifest (an empty list when it is sound).

    Checks the schema version first: a manifest of another version is not checked further,
    since its fields may mean other things.
    """
    if not isinstance(data, dict):
        return [Problem("manifest is not a JSON object", file=file,
                        value=type(data).__name__, expected="an object")]
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        return [Problem("unknown manifest schema version", path="schema_version", file=file,
                        value=version, expected=f"{SCHEMA_VERSION} (this celltwin reads only it)")]
    problems: list[Problem] = []
    names = data.get("robot", {}).get("joint_names") if isinstance(data.get("robot"), dict) else None
    dof = len(names) if isinstance(names, list) else None
    _check(data, _SCHEMA, "", file, dof, problems)
    if not problems:
        _check_meaning(data, file, problems)
    return problems


def _check(value: Any, schema: Any, path: str, file: str | None, dof: int | None,
           problems: list[Problem]) -> None:
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            problems.append(Problem("expected a section", path=path or "<root>", file=file,
                                    value=type(value).__name__, expected="an object"))
            return
        for key, sub in schema.items():
            where = f"{path}.{key}" if path else key
            if key not in value:
                if where not in OPTIONAL_FIELDS:
                    problems.append(Problem("missing field", path=where, file=file,
                                            expected=_describe(sub)))
            else:
                _check(value[key], sub, where, file, dof, problems)
        return
    if isinstance(schema, list):
        if not isinstance(value, list) or not value:
            problems.append(Problem("expected a non-empty list", path=path, file=file,
                                    value=type(value).__name__, expected="a list"))
            return
        for index, item in enumerate(value):
            _check(item, schema[0], f"{path}[{index}]", file, dof, problems)
        return
    if not _leaf_ok(value, schema, dof):
        problems.append(Problem("wrong type or value", path=path, file=file,
                                value=_short(value), expected=_describe(schema, dof)))


def _leaf_ok(value: Any, code: str, dof: int | None) -> bool:
    optional = "?" in code
    if optional and value is None:
        return True
    code = code.replace("?", "")
    if code == "any":
        return True
    if code == "str":
        return isinstance(value, str) and bool(value)
    if code == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if code == "bool":
        return isinstance(value, bool)
    if code in ("num", "num+"):
        ok = _number(value)
        return ok and (code == "num" or value > 0)
    if code == "dict":
        return isinstance(value, dict)
    if code in ("strs", "names"):
        return (isinstance(value, list) and (bool(value) or code == "names")
                and all(isinstance(v, str) and v for v in value))
    if code.startswith("nums:"):
        size = code.split(":")[1]
        expected = dof if size == "dof" else int(size)
        return (isinstance(value, list) and (expected is None or len(value) == expected)
                and all(_number(v) for v in value))
    raise AssertionError(f"unknown schema code {code}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(schema: Any, dof: int | None = None) -> str:
    if isinstance(schema, dict):
        return "an object with " + ", ".join(schema)
    if isinstance(schema, list):
        return "a list of objects"
    code = schema.replace("?", "")
    text = {"str": "a non-empty string", "int": "an integer", "bool": "true or false",
            "num": "a finite number", "num+": "a finite number > 0", "dict": "an object",
            "strs": "a list of names", "names": "a list of names, maybe empty",
            "any": "anything"}.get(code)
    if text is None:
        size = code.split(":")[1]
        text = f"{dof if size == 'dof' else size} finite numbers"
    return text + (" or null" if "?" in schema else "")


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


def _check_meaning(data: dict, file: str | None, problems: list[Problem]) -> None:
    """Cross-field checks: values that type-check but contradict each other."""
    def bad(message: str, path: str, value: Any = None, expected: str | None = None) -> None:
        problems.append(Problem(message, path=path, file=file, value=value, expected=expected))

    if data["format"] != FORMAT:
        bad("not a celltwin policy bundle manifest", "format", data["format"], FORMAT)
    robot, control, observation = data["robot"], data["control"], data["observation"]
    policy, action, safety = data["policy"], data["action"], data["safety"]
    names = robot["joint_names"]
    if len(set(names)) != len(names):
        bad("joint names repeat", "robot.joint_names", names, "distinct names")
    moving = [j["name"] for j in robot["kinematics"]["joints"] if j["type"] != "fixed"]
    if sorted(moving) != sorted(names):
        bad("the kinematic chain's moving joints are not the arm joints",
            "robot.kinematics.joints", moving, f"exactly {names}")
    for index, joint in enumerate(robot["kinematics"]["joints"]):
        if joint["type"] not in ("revolute", "continuous", "prismatic", "fixed"):
            bad("unknown joint type", f"robot.kinematics.joints[{index}].type", joint["type"],
                "revolute, continuous, prismatic or fixed")
    for section, lower_key, upper_key in (
            ("robot.joint_limits", "position_lower_rad", "position_upper_rad"),
            ("safety", "joint_position_lower_rad", "joint_position_upper_rad"),
            ("safety", "tcp_workspace_low_m", "tcp_workspace_high_m")):
        block = robot["joint_limits"] if section == "robot.joint_limits" else safety
        lows, highs = block[lower_key], block[upper_key]
        crossed = [i for i, (lo, hi) in enumerate(zip(lows, highs)) if not lo < hi]
        if crossed:
            bad("lower bound not below upper bound", f"{section}.{lower_key}",
                [(lows[i], highs[i]) for i in crossed], "lower < upper")
    for key in ("joint_velocity_rad_s", "joint_acceleration_rad_s2", "max_joint_step_rad"):
        if not all(v > 0 for v in safety[key]):
            bad("safety limits must be positive", f"safety.{key}", safety[key], "numbers > 0")
    if safety["stale_state_periods"] < 1:
        bad("watchdog needs at least one period", "safety.stale_state_periods",
            safety["stale_state_periods"], "an integer >= 1")
    if control["mode"] not in CONTROL_MODES:
        bad("unknown control mode", "control.mode", control["mode"], ", ".join(CONTROL_MODES))
    elif control["mode"] != "joint_position" and control["scale"] is None:
        bad("a delta control mode needs its scale", "control.scale", None, "a number > 0")
    if control["mode"] == "ee_delta" and control["tcp_orientation_quat_xyzw"] is None:
        bad("ee_delta needs the TCP orientation it holds", "control.tcp_orientation_quat_xyzw",
            None, "a quaternion (x, y, z, w)")
    if ("goal_low_m" in observation) != ("goal_high_m" in observation):
        bad("the goal box needs both corners", "observation.goal_low_m", None,
            "goal_low_m and goal_high_m, or neither")
    elif "goal_low_m" in observation and not all(
            lo <= hi for lo, hi in zip(observation["goal_low_m"], observation["goal_high_m"])):
        bad("lower goal corner above the upper one", "observation.goal_low_m",
            [observation["goal_low_m"], observation["goal_high_m"]], "low <= high")
    term_names = [term["name"] for term in observation["terms"]]
    if observation["achieved_goal_term"] not in term_names:
        bad("achieved goal is not an observation term", "observation.achieved_goal_term",
            observation["achieved_goal_term"], ", ".join(term_names))
    if sum(term["size"] for term in observation["terms"]) != observation["size"]:
        bad("term sizes do not add up to the observation size", "observation.size",
            observation["size"], "the sum of the term sizes")
    layout = policy["input"]["layout"]
    if [item["key"] for item in layout] != list(INPUT_KEYS):
        bad("policy input layout is not the sorted Dict keys", "policy.input.layout",
            [item["key"] for item in layout], ", ".join(INPUT_KEYS))
    elif [item["size"] for item in layout] != [observation["goal_size"], observation["goal_size"],
                                               observation["size"]]:
        bad("policy input layout sizes disagree with the observation", "policy.input.layout",
            [item["size"] for item in layout], "goal size, goal size, observation size")
    if sum(item["size"] for item in layout) != policy["input"]["size"]:
        bad("policy input size is not the sum of its parts", "policy.input.size",
            policy["input"]["size"])
    arm_size = {"ee_delta": 3}.get(control["mode"], len(names))
    if action["arm_size"] != arm_size:
        bad("action arm size does not fit the control mode", "action.arm_size",
            action["arm_size"], str(arm_size))
    if policy["output"]["size"] != action["arm_size"] + 1 or \
            len(action["elements"]) != policy["output"]["size"]:
        bad("policy output must be the arm part plus the gripper width", "policy.output.size",
            policy["output"]["size"], f"{action['arm_size'] + 1} (with action.elements to match)")
    listed = data["files"]
    if policy["onnx_file"] not in listed:
        bad("the ONNX file is not listed with its hash", "files", sorted(listed),
            f"an entry for {policy['onnx_file']}")
    for name, entry in listed.items():
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or len(entry["sha256"]) != 64 or not isinstance(entry.get("size_bytes"), int)):
            bad("file entry is malformed", f"files.{name}", _short(entry),
                "{sha256: 64 hex digits, size_bytes: integer}")
        if "/" in name or "\\" in name or "\x00" in name or \
                name in ("", ".", "..", MANIFEST_FILE):
            bad("file entry must name a plain file beside the manifest", f"files.{name}", name)

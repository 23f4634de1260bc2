"""Hostile YAML: every document celltwin reads ends quickly, in data or in celltwin's typed,
located problems. Limits (size, characters, nesting, aliases), one strictness for every
document, and typos named beside a missing tag (issue 17, classes 1-3)."""

from __future__ import annotations

import copy
import os
import re
import time
import types
from pathlib import Path
from typing import Annotated, Any, Callable, Union, get_args, get_origin

import gymnasium as gym
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import celltwin
from celltwin.core.actuation_limits import JOINT_NOISE_STD_RAD_RANGE, LATENCY_STEPS_RANGE
from celltwin.core.documents import MAX_PROBLEMS, parse_yaml_document
from celltwin.core.errors import CelltwinError
from celltwin.core.resources import asset_path
from celltwin.core.yaml_loader import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES
from celltwin.envs.tasks import task_class
from celltwin.line import LineSpec, load_line
from celltwin.physics import PhysicsParams
from celltwin.randomization import RandomizationConfig, load_randomization
from celltwin.randomization.knobs import ROBOT_PARAMETERS
from celltwin.robots.actuation import Actuation
from celltwin.robots.errors import RobotError
from celltwin.spec import CellSpec, load_cell
from celltwin.training.config import PRESETS_DIR, TrainConfig, resolve_config

ROOT = Path(__file__).resolve().parent.parent
READ_BOUND_S = 2.0   # generous: the slowest hostile read measured takes about 0.3 s

# Every reader of a YAML document a user gives celltwin, as a function of the file's path.
READERS: dict[str, Callable[[Path], Any]] = {
    "cell": load_cell,
    "physics": PhysicsParams.load,
    "line": load_line,
    "randomization": lambda path: load_randomization(str(path)),
    "training config": lambda path: resolve_config(config_file=path),
}
PHYSICS = """\
timestep_s: 0.002
substeps: 10
gravity_mps2: [0, 0, -9.81]
bodies:
  part: {mass_kg: 0.3, lateral_friction: 0.8}
joints:
  arm/panda_joint2: {damping: 0.5}
robots:
  arm: {position_gain: 0.05, latency_steps: 2, joint_noise_std_rad: 0.001}
"""
VALID = {
    "cell": asset_path("cells/pick_station.yaml").read_text(),
    "physics": PHYSICS,
    "line": asset_path("lines/two_station.yaml").read_text(),
    "randomization": asset_path("randomization/standard.yaml").read_text(),
    "training config": (PRESETS_DIR / "pickplace.yaml").read_text(),
}
ROOT_MODELS = {"cell": CellSpec, "physics": PhysicsParams, "line": LineSpec,
               "randomization": RandomizationConfig, "training config": TrainConfig}


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """``levels`` anchors, each a list of ``width`` uses of the one before: width**levels."""
    names = [f"l{level}" for level in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["x"] * width) + "]"]
    lines += [f"{name}: &{name} [" + ", ".join([f"*{before}"] * width) + "]"
              for before, name in zip(names, names[1:])]
    return "\n".join(lines) + "\n"


def deep(levels: int, style: str) -> str:
    if style == "flow":
        return "a: " + "[" * levels + "]" * levels + "\n"
    if style == "block":
        keys = "".join("  " * level + f"k{level}:\n" for level in range(levels))
        return keys + "  " * levels + "x\n"
    return "a:\n" + "".join("  " * level + "- \n" for level in range(1, levels))


def read(kind: str, path: Path) -> float:
    """Read ``path`` as ``kind``; anything but data or a CelltwinError fails the test.
    Returns the seconds the read took."""
    start = time.perf_counter()
    try:
        READERS[kind](path)
    except CelltwinError as error:
        assert error.problems
    elapsed = time.perf_counter() - start
    assert elapsed < READ_BOUND_S, f"{kind} read took {elapsed:.2f} s"
    return elapsed


def refused(kind: str, path: Path) -> list:
    """The problems reading ``path`` as ``kind`` raises (it must raise)."""
    with pytest.raises(CelltwinError) as caught:
        READERS[kind](path)
    return caught.value.problems


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def write(folder: Path, data: str | bytes, name: str = "doc.yaml") -> Path:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", newline="")
    return path


# ------------------------------------------------------------------ limits, every reader
HOSTILE = {
    "alias bomb": (alias_bomb(), 5),   # l4 is the first anchor past MAX_VALUES
    "alias bomb under a known key": (alias_bomb(8, 8).replace("l8: &l8", "robots: &l8"), 6),
    "merge bomb": ("a: &a {x: 1, y: 2}\n" + "".join(
        f"m{i}: &m{i} {{<<: [*{'a' if i == 0 else f'm{i - 1}'}, "
        f"*{'a' if i == 0 else f'm{i - 1}'}], z{i}: 1}}\n" for i in range(30)), None),
    "recursive alias": ("name: x\nrobots: &r [*r]\n", 2),
    "NUL": ("name: x\x00\nrobots: []\n", 1),
    "BEL on line 3": ("name: x\ndescription: ok\nrobots: [\x07]\n", 3),
    "escape character": ("name: x\n\x1b[31mred\n", 2),
    "deep flow nesting": (deep(1000, "flow"), 1),
    "deep block nesting": (deep(200, "block"), MAX_DEPTH + 1),
    "deep block sequences": (deep(200, "seq"), MAX_DEPTH + 1),
    "oversized": ("name: x\n" + "# padding\n" * (MAX_DOCUMENT_BYTES // 10 + 10), None),
}


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_text_is_one_located_problem_in_bounded_time(folder, kind, case):
    text, line = HOSTILE[case]
    path = write(folder, text)
    start = time.perf_counter()
    problems = refused(kind, path)
    assert time.perf_counter() - start < READ_BOUND_S
    assert len(problems) == 1, problems
    assert problems[0].file == str(path)
    assert problems[0].line is not None
    if line is not None:
        assert problems[0].line == line, problems[0]


def test_limits_are_reported_in_words(folder):
    def message(text):
        return str(refused("cell", write(folder, text))[0])

    assert f"more than {MAX_VALUES} values" in message(alias_bomb())
    assert "alias *r is used inside its own anchor" in message(HOSTILE["recursive alias"][0])
    assert "U+0000 (NUL) at column 8" in message(HOSTILE["NUL"][0])
    assert "U+0007 (BEL)" in message(HOSTILE["BEL on line 3"][0])
    assert f"more than {MAX_DEPTH} levels deep" in message(deep(1000, "flow"))
    assert "KiB" in message(HOSTILE["oversized"][0])


@pytest.mark.parametrize("kind", READERS)
def test_bytes_that_are_not_utf8_name_their_line(folder, kind):
    path = write(folder, b"name: x\ndescription: caf\xe9\n")
    problems = refused(kind, path)
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (str(path), 2)
    assert "not UTF-8 text: byte 0xe9 at column 17" in problems[0].message


@pytest.mark.parametrize("kind", READERS)
def test_a_file_past_the_size_limit_is_refused_without_reading_it_whole(folder, kind):
    path = folder / "huge.yaml"
    with open(path, "wb") as handle:   # 64 MiB, sparse: reading it whole would take seconds
        handle.truncate(64 * 1024 * 1024)
    start = time.perf_counter()
    problems = refused(kind, path)
    assert time.perf_counter() - start < READ_BOUND_S
    assert len(problems) == 1 and "larger than" in problems[0].message


@pytest.mark.parametrize("kind", READERS)
def test_a_named_pipe_or_a_device_is_refused_without_waiting(folder, kind):
    pipe = folder / f"pipe-{kind}.yaml"
    os.mkfifo(pipe)   # nobody writes to it: opening it for reading would block
    for path in (pipe, Path("/dev/zero")):
        start = time.perf_counter()
        problems = refused(kind, path)
        assert time.perf_counter() - start < READ_BOUND_S
        assert len(problems) == 1 and "not a regular file" in problems[0].message


@pytest.mark.parametrize("tag, text", [("int", "!!int many"), ("float", "!!float x"),
                                       ("timestamp", "2024-13-45"),
                                       ("python", "!!python/object:os.system ls")])
def test_a_value_its_tag_cannot_read_is_a_located_problem(folder, tag, text):
    path = write(folder, f"name: x\nrobots:\n  - name: {text}\n")
    problems = refused("cell", path)
    assert len(problems) == 1 and problems[0].line == 3


def test_a_mistake_repeated_by_aliases_is_listed_a_hundred_times_then_counted(folder):
    item = ("{name: 1, shape: box, size_m: [a, b, c], color: [x, y, z, w], collision: 3, "
            "pose: {xyz: [q, r, s], rpy_deg: [t, u, v]}}")
    text = (f"x: &i {item}\nname: c\nrobots: [{{name: arm, model: panda}}]\n"
            "equipment: [" + ", ".join(["*i"] * 1600) + "]\n")   # 24,000 problems in 7 KB
    path = write(folder, text)
    start = time.perf_counter()
    problems = refused("cell", path)
    assert time.perf_counter() - start < READ_BOUND_S
    assert len(problems) == MAX_PROBLEMS + 1
    assert all(problem.line == 1 for problem in problems[:-1])
    assert re.fullmatch(r"\d+ more problems not shown", problems[-1].message)


def test_documents_within_the_limits_still_read(folder):
    # Anchors used a few times, nesting of a normal document: nothing refused.
    text = VALID["training config"] + "adr_settings: &s {queue_size: 10}\n"
    config = resolve_config(config_file=write(folder, text))
    assert config.adr_settings == {"queue_size": 10}
    nested = "hyperparameters:\n" + deep(MAX_DEPTH - 3, "block").replace("x\n", "1\n")
    resolve_config(config_file=write(folder, "task: Reach\n" + nested.replace("\n", "\n  ", 1)))


def test_only_the_shared_reader_parses_yaml():
    # One reader, one set of limits: no other module may hand text to PyYAML.
    package = Path(celltwin.__file__).parent
    parse = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|compose|parse|scan)\b"
                       r"|(?<!\w)(Safe|C|CSafe|Full|Unsafe)?Loader\b")
    offenders = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if path.name != "yaml_loader.py" and parse.search(path.read_text())]
    assert offenders == []


# ------------------------------------------------------------------ one strictness
def models_under(model: type[BaseModel]) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()

    def visit(annotation):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.add(annotation)
                for field in annotation.model_fields.values():
                    visit(field.annotation)
            return
        origin = get_origin(annotation)
        if origin in (Annotated, Union, types.UnionType, tuple, list, dict):
            for arg in get_args(annotation):
                visit(arg)

    visit(model)
    return found


@pytest.mark.parametrize("kind", ROOT_MODELS)
def test_every_document_model_has_the_one_strictness(kind):
    for model in models_under(ROOT_MODELS[kind]):
        config = model.model_config
        assert (config.get("strict"), config.get("extra"), config.get("allow_inf_nan")) == \
            (True, "forbid", False), model


STRICT_CASES = [
    ("physics", "bodies: {part: {mass_kg: VALUE}}\n", "bodies.part.mass_kg"),
    ("physics", "robots: {arm: {latency_steps: VALUE}}\n", "robots.arm.latency_steps"),
    ("physics", "gravity_mps2: [0, 0, VALUE]\n", "gravity_mps2[2]"),
    ("randomization", "terms: [{target: part, parameter: mass_kg, "
                      "distribution: {type: uniform, low: VALUE, high: 2}}]\n",
     "terms[0].distribution.low"),
    ("training config", "task: Reach\nsteps: VALUE\n", "steps"),
    ("training config", "task: Reach\neval: {target_success: VALUE}\n", "eval.target_success"),
    ("cell", "name: c\nrobots: [{name: arm, model: panda}]\nphysics: {timestep_s: VALUE}\n",
     "physics.timestep_s"),
    ("line", "name: l\nstations: [{name: a, cycle_time_s: 5, mtbf_h: VALUE, mttr_min: 5}]\n",
     "stations[0].mtbf_h"),
]


@pytest.mark.parametrize("value", ['"0.3"', "true", "yes", "'1'"])
@pytest.mark.parametrize("kind, template, where", STRICT_CASES)
def test_no_document_turns_a_string_or_a_flag_into_a_number(folder, kind, template, where,
                                                            value):
    problems = refused(kind, write(folder, template.replace("VALUE", value)))
    assert [problem.path for problem in problems] == [where]
    assert problems[0].line is not None


@pytest.mark.parametrize("value", ['"true"', "1", "0"])
def test_a_flag_must_be_true_or_false(folder, value):
    problems = refused("training config", write(folder, f"task: Reach\nher: {value}\n"))
    assert [problem.path for problem in problems] == ["her"]


@pytest.mark.parametrize("kind, text", [
    ("physics", "timestep_s: 0.002\ntimestep_s: 0.003\n"),
    ("physics", "bodies:\n  part: {mass_kg: 0.3, mass_kg: 0.4}\n"),
    ("randomization", "name: a\nname: b\n"),
    ("training config", "task: Reach\ntask: Push\n"),
    ("cell", "name: c\nname: d\nrobots: [{name: arm, model: panda}]\n"),
    ("line", "name: l\nname: m\nstations: [{name: a, cycle_time_s: 5}]\n"),
])
def test_a_key_written_twice_is_an_error_in_every_document(folder, kind, text):
    problems = refused(kind, write(folder, text))
    assert [problem.line for problem in problems] == [2]
    assert "appears twice" in problems[0].message


def test_latency_and_noise_limits_have_one_home(folder):
    low, high = LATENCY_STEPS_RANGE
    assert ROBOT_PARAMETERS["latency_steps"] == LATENCY_STEPS_RANGE
    assert ROBOT_PARAMETERS["joint_noise_std_rad"] == JOINT_NOISE_STD_RAD_RANGE
    PhysicsParams.from_yaml_text(f"robots: {{arm: {{latency_steps: {high}}}}}")
    for value in (low - 1, high + 1):
        with pytest.raises(CelltwinError):
            PhysicsParams.from_yaml_text(f"robots: {{arm: {{latency_steps: {value}}}}}")
    actuation = Actuation(lambda target: None, lambda target: None)
    actuation.latency_steps = high
    with pytest.raises(RobotError, match=f"from {low} to {high}"):
        actuation.latency_steps = high + 1
    with pytest.raises(CelltwinError):
        PhysicsParams.from_yaml_text("robots: {arm: {joint_noise_std_rad: -0.1}}")
    with pytest.raises(RobotError):
        actuation.joint_noise_std_rad = JOINT_NOISE_STD_RAD_RANGE[0] - 0.1


# ------------------------------------------------------------------ typos beside a tag
@pytest.mark.parametrize("kind, text, typo, suggestion, tag", [
    ("cell", "name: c\nrobots: [{name: arm, model: panda}]\n"
             "parts:\n  - {sahpe: box, name: p, size_m: [0.1, 0.1, 0.1]}\n",
     "parts[0].sahpe", "shape", "parts[0].shape"),
    ("cell", "name: c\nrobots: [{name: arm, model: panda}]\n"
             "equipment:\n  - {shape: bx, name: t, sizee_m: [1, 1, 1]}\n",
     "equipment[0].sizee_m", "size_m", "equipment[0].shape"),
    ("line", "name: l\nstations:\n  - {name: a, cycle_time_s: {dsit: normal, mean: 5, std: 1}}\n",
     "stations[0].cycle_time_s.dsit", "dist", "stations[0].cycle_time_s.dist"),
    ("randomization", "terms:\n  - target: part\n    parameter: mass_kg\n"
                      "    distribution: {tpye: uniform, low: 1, high: 2}\n",
     "terms[0].distribution.tpye", "type", "terms[0].distribution.type"),
])
def test_an_unknown_key_beside_a_missing_or_unknown_tag_is_named(folder, kind, text, typo,
                                                                 suggestion, tag):
    problems = refused(kind, write(folder, text))
    by_path = {problem.path: problem for problem in problems}
    assert set(by_path) == {typo, tag}
    assert f"did you mean '{suggestion}'?" in by_path[typo].message
    assert by_path[typo].line == text.count("\n")


def test_a_parameter_typo_suggests_only_parameters_the_target_has():
    def term(parameter):
        return [{"target": "part", "parameter": parameter, "operation": "set",
                 "distribution": {"type": "uniform", "low": 0.5, "high": 0.5}}]

    env = gym.make(task_class("PickPlace").env_id).unwrapped
    try:
        with pytest.raises(CelltwinError) as caught:
            env.set_randomization(term("frictoin"))
        message = caught.value.problems[0].message
        suggested = re.findall(r"'(\w+)'", message.partition("did you mean")[2])
        assert "lateral_friction" in suggested and "friction" not in suggested
        for parameter in suggested:   # each suggestion works where the typo did not
            env.set_randomization(term(parameter))
            env.reset(seed=0)
    finally:
        env.close()


def test_a_shipped_preset_given_by_its_path_is_the_preset(monkeypatch):
    monkeypatch.chdir(ROOT)   # the path as a user of a source checkout types it
    named, named_strict = load_randomization("standard")
    assert not named_strict
    for path in (ROOT / "assets" / "randomization" / "standard.yaml",
                 asset_path("randomization/standard.yaml"),
                 Path("assets/randomization/standard.yaml")):
        config, strict = load_randomization(str(path))
        assert (config, strict) == (named, named_strict), path


def test_a_changed_copy_of_a_preset_is_the_users_own(folder):
    text = asset_path("randomization/standard.yaml").read_text().replace("standard", "mine", 1)
    _, strict = load_randomization(str(write(folder, text, "standard.yaml")))
    assert strict


def test_a_preset_by_path_randomizes_pickplace_like_its_name(monkeypatch):
    monkeypatch.chdir(ROOT)
    draws = []
    for source in ("standard", "assets/randomization/standard.yaml"):
        env = gym.make(task_class("PickPlace").env_id, randomization=source).unwrapped
        try:
            draws.append(env.reset(seed=3)[1]["randomization"])
        finally:
            env.close()
    assert draws[0] == draws[1]


# ------------------------------------------------------------------ the CLI
@pytest.mark.parametrize("case", ["alias bomb", "NUL", "BEL on line 3", "deep flow nesting",
                                  "deep block nesting", "recursive alias"])
def test_cli_reports_a_hostile_cell_in_one_error_line(folder, cli, case):
    text, line = HOSTILE[case]
    path = write(folder, text, "cell.yaml")
    start = time.perf_counter()
    result = cli("cell", "check", path)
    assert time.perf_counter() - start < 5.0
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:{line}: "), result.stderr


def test_escaped_control_characters_in_a_value_cannot_forge_or_colour_error_lines(folder, cli):
    # YAML's escapes put any character into a key or value; a message quoting it stays one
    # printable line (no forged second `error:` line, no terminal escape sequence), and short.
    path = write(folder, 'name: c\nrobots: [{name: arm, model: "\\e[31mpanda"}]\n'
                         '"x\\nerror: forged": 1\n'
                         f'physics: {{timestep_s: "{"9" * 5000}"}}\n', "cell.yaml")
    result = cli("cell", "check", path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"error: {path}:") for line in lines)
    assert all(line.isprintable() for line in lines)
    assert "'\\x1b[31mpanda'" in lines[0] and "'x\\nerror: forged'" in lines[1]
    assert max(map(len, lines)) < 400


@pytest.mark.parametrize("command", [
    ("line", "run", "FILE", "--out", "OUT"), ("train", "FILE", "--out", "OUT"),
    ("cell", "check", "pick_station", "--physics", "FILE")])
@pytest.mark.parametrize("case", ["alias bomb", "NUL", "deep flow nesting"])
def test_cli_reports_a_hostile_file_of_any_kind_in_one_error_line(folder, cli, command, case):
    text, line = HOSTILE[case]
    path = write(folder, text, "any.yaml")
    args = [{"FILE": path, "OUT": folder / "out"}.get(arg, arg) for arg in command]
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {path}:{line}: ")
    assert not (folder / "out").exists()


# ------------------------------------------------------------------ fuzz, every reader
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
FUZZ_CHEAP = settings(FUZZ, max_examples=200)   # texts most readers refuse at once
YAMLISH = st.lists(st.sampled_from(
    ["a", "name", "robots", "terms", "task", ":", ": ", " ", "  ", "\n", "- ", "-", "[", "]",
     "{", "}", ", ", "&x ", "*x", "&y ", "*y", "<<: ", "!!int ", "!!str ", "!!float ", "? ",
     "'", '"', "#", "|", ">", "\t", "\x00", "\x07", "\x1b", "\x85", "\ufeff", "1e3", "-0",
     ".nan", ".inf", "true", "yes", "~", "null", "0x1F", "1_000", "2024-01-01", "%YAML 1.1",
     "---", "...", "\\", "é", "\U0001F600"]), max_size=80).map("".join)


def mutated_texts(kind: str):
    """A shipped (or valid) document with one to three changes: values of another type,
    renamed, dropped, added or repeated keys, lines repeated or cut."""
    base, _ = parse_yaml_document(VALID[kind])   # YAML 1.1 would turn the key `on` into true
    values = st.one_of(
        st.none(), st.booleans(), st.integers(-10**30, 10**30),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
        st.sampled_from(["0.3", "true", "1e400", "yes", "box", "inf", "", "arm/*", "{robot}"]),
        st.lists(st.integers(-3, 3), max_size=4),
        st.dictionaries(st.sampled_from(["dist", "type", "shape", "low", "x"]),
                        st.integers(-2, 2), max_size=2))

    @st.composite
    def build(draw):
        data = copy.deepcopy(base)
        for _ in range(draw(st.integers(1, 3))):
            places = list(_places(data))
            parent, key = draw(st.sampled_from(places))
            change = draw(st.sampled_from(["value", "string", "rename", "drop", "add"]))
            if parent is None:
                data = draw(values)
                continue
            if change == "value":
                parent[key] = draw(values)
            elif change == "string":
                parent[key] = str(parent[key])
            elif change == "rename" and isinstance(parent, dict):
                name = str(key)
                cut = draw(st.integers(0, max(len(name) - 1, 0)))
                parent[name[:cut] + name[cut + 1:] + draw(st.sampled_from(["", "e", "_"]))] = \
                    parent.pop(key)
            elif change == "drop":
                del parent[key]
            elif change == "add" and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        lines = text.splitlines(keepends=True)
        if lines and draw(st.booleans()):   # a line repeated (a key twice) or cut short
            at = draw(st.integers(0, len(lines) - 1))
            lines.insert(at, lines[at] if draw(st.booleans()) else lines[at][: len(lines[at]) // 2])
        return "".join(lines)

    return build()


def _places(value, parent=None, key=None):
    """(container, key) of every value, the document itself as (None, None)."""
    yield parent, key
    if isinstance(value, dict):
        for child_key in list(value):
            yield from _places(value[child_key], value, child_key)
    elif isinstance(value, list):
        for index in range(len(value)):
            yield from _places(value[index], value, index)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "doc.yaml"


@FUZZ_CHEAP
@given(text=YAMLISH)
def test_fuzz_yamlish_text(fuzz_file, text):
    fuzz_file.write_text(text, encoding="utf-8", newline="")
    for kind in READERS:
        read(kind, fuzz_file)


@FUZZ_CHEAP
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_file, data):
    fuzz_file.write_bytes(data)
    for kind in READERS:
        read(kind, fuzz_file)


@FUZZ
@given(levels=st.integers(2, 14), width=st.integers(2, 12),
       where=st.sampled_from(["top", "robots", "hyperparameters", "terms", "stations"]),
       depth=st.integers(MAX_DEPTH - 2, 3 * MAX_DEPTH), style=st.sampled_from(["flow", "block",
                                                                            "seq"]))
def test_fuzz_alias_bombs_and_deep_nesting(fuzz_file, levels, width, where, depth, style):
    bomb = alias_bomb(levels, width)
    if where != "top":
        last = f"l{levels}"
        bomb = bomb.replace(f"{last}: &{last}", f"{where}: &{last}")
    for text in (bomb, deep(depth, style)):
        fuzz_file.write_text(text, encoding="utf-8")
        for kind in READERS:
            read(kind, fuzz_file)


@pytest.mark.parametrize("kind", READERS)
def test_fuzz_mutations_of_a_valid_document(fuzz_file, kind):
    @FUZZ
    @given(text=mutated_texts(kind))
    def check(text):
        fuzz_file.write_text(text, encoding="utf-8")
        read(kind, fuzz_file)

    check()

"""Hostile command lines (issue 17): one `error:` line, exit 2, nothing else on stderr.

Every option of every command that takes a value is found by walking the parser itself, so a
new option is covered (and must use a type of ``celltwin.cli.arguments``) without a new test:
each is given the values a typo or an attacker would give (NaN, infinities, negatives, zero,
huge numbers, text, an existing file where a folder goes and the reverse, a device, a path
under a file) and must refuse each one before any work starts. Then the refusals that need the
command's own knowledge: grids too large, a policy of another task, goals outside the region
the policy was trained on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from celltwin.cli import arguments
from celltwin.cli.main import build_parser

# Commands whose options another test file walks (none: every command is checked here).
ELSEWHERE: set[tuple[str, ...]] = set()
# Options whose value is a name or a document the command itself checks (with a located
# error and a suggestion), not something argparse can judge.
CHECKED_BY_THE_COMMAND = {
    "cell", "cells", "line", "policy", "bundle", "run_dir", "robot", "--cell", "--robot", "--part",
    "--target", "--pick", "--place", "--task", "--control", "--reward", "--algo", "--dr",
    "--device", "--controller", "--object", "--username", "--password", "--address",
    "--param", "--sweep", "--resume", "--policy", "--robot-name", "--host", "--track", "--user"}

NUMBERS = ["nan", "-inf", "1e400", "-5", "0", "abc", "", "9" * 60, "2.5", "99999999999"]
PATHS = {   # placeholders, made real under tmp_path by the test
    "output_dir": ["<FILE>", "<FILE>/sub", "/dev/null", ""],
    "output_file": ["<DIR>", "<DIR>/", "<FILE>/sub", "/dev/null", ""],
    "input_file": ["<DIR>", "<MISSING>", "/dev/null", ""],
    "input_file_text": ["<DIR>", "<MISSING>", "/dev/null", ""],
}


def _walk(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, prefix + (name,))
        elif action.nargs != 0 and not isinstance(action, (argparse._HelpAction,
                                                           argparse._VersionAction)):
            yield prefix, action


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))


def _name(action) -> str:
    return action.option_strings[-1] if action.option_strings else action.dest


def _ours(command: tuple[str, ...]) -> bool:
    return not any(command[:len(other)] == other for other in ELSEWHERE)


def _refuses(kind, value: str) -> bool:
    try:
        kind(value)
    except argparse.ArgumentTypeError:
        return True
    return False


def _cases():
    cases = []
    for command, action in _walk(build_parser()):
        if not _ours(command) or action.type is None:
            continue
        kind = action.type.__name__
        values = PATHS.get(kind) or [value for value in NUMBERS if _refuses(action.type, value)]
        cases += [pytest.param(command, action, value, id=f"{' '.join(command)} "
                               f"{_name(action)}={value or 'EMPTY'}") for value in values]
    for command, action in _walk(build_parser()):
        if _ours(command) and action.choices and not isinstance(action.choices, dict):
            cases.append(pytest.param(command, action, "no-such-choice",
                                      id=f"{' '.join(command)} {_name(action)}=no-such-choice"))
    return cases


def _real(value: str, tmp_path: Path) -> str:
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_dir").mkdir(exist_ok=True)
    return (value.replace("<FILE>", str(tmp_path / "a_file"))
                 .replace("<DIR>", str(tmp_path / "a_dir"))
                 .replace("<MISSING>", str(tmp_path / "missing.yaml")))


def one_error(result, *words: str) -> str:
    """The one `error:` line of a refused command; it names every one of ``words``."""
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def test_every_option_of_our_commands_is_typed_or_checked_by_its_command():
    loose = [f"celltwin {' '.join(command)} {_name(action)}"
             for command, action in _walk(build_parser())
             if _ours(command) and not action.choices
             and _name(action) not in CHECKED_BY_THE_COMMAND
             and getattr(action.type, "__module__", None) != arguments.__name__]
    assert not loose, f"options without a type of celltwin.cli.arguments: {loose}"


@pytest.mark.parametrize("command, action, value", _cases())
def test_a_hostile_value_is_one_error_line_before_any_work(cli, tmp_path, command, action,
                                                           value):
    value = _real(value, tmp_path)
    given = [value] * (action.nargs if isinstance(action.nargs, int) else 1)
    args = [*command, *given] if not action.option_strings else \
        [*command, action.option_strings[-1], *given]
    result = cli(*args)
    one_error(result, _name(action) if action.option_strings else "")
    assert result.stdout == ""


@pytest.mark.parametrize("command", [c for c in _commands(build_parser()) if _ours(c)],
                         ids=lambda c: " ".join(c) or "celltwin")
def test_every_command_has_help(cli, command):
    result = cli(*command, "--help")
    assert result.returncode == 0 and result.stderr == "" and "usage:" in result.stdout


@pytest.mark.parametrize("command", [(), ("cell",), ("layout",), ("line",)],
                         ids=lambda c: " ".join(c) or "celltwin")
def test_a_command_group_without_its_action_is_one_error_line(cli, command):
    one_error(cli(*command), "which")


@pytest.mark.parametrize("args, words", [
    (["deploy", "b", "--controller", "twin", "--seed", "-5"], ["--seed", ">= 0"]),
    (["deploy", "b", "--controller", "twin", "--telemetry", "<DIR>"], ["--telemetry", "folder"]),
    (["line", "run", "two_station", "--out", "<FILE>"], ["--out", "not a folder"]),
    (["evaluate", "expert", "--task", "Reach", "--episodes", "0"], ["--episodes", ">= 1"]),
    (["cell", "render", "pick_station", "--width", "-3"], ["--width"]),
    (["evaluate", "expert", "--task", "Reach", "--sweep", "part.mass_kg=0.1:1:100000000"],
     ["--sweep", "100000000", "1000"]),
    (["evaluate", "expert", "--task", "Reach", "--sweep", "part.mass_kg=0.1:1:200",
      "--sweep", "part.lateral_friction=0.1:1:200"], ["--sweep", "40000 points"]),
    (["evaluate", "expert", "--task", "Reach", "--sweep", "a.b=0:1:2", "--sweep", "c.d=0:1:2",
      "--sweep", "e.f=0:1:2"], ["at most two"]),
    (["sweep", "pick_station", "--param", "robots[0].base.xyz[0]=0:1:100000000"],
     ["--param", "1000"]),
    (["no-such-command"], ["invalid choice"]),
    (["cell", "check"], ["required", "CELL"]),
])
def test_the_examples_of_the_issue_are_refused(cli, tmp_path, args, words):
    result = cli(*(_real(arg, tmp_path) for arg in args))
    one_error(result, *words)
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- a trained policy
@pytest.fixture(scope="module")
def reach(tmp_path_factory):
    """A tiny SAC policy on Reach: a bundle, the run directory it came from, a bare
    checkpoint, and a cell whose Reach goals reach 0.7 m beyond the training region."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC

    import celltwin.envs  # noqa: F401  (registers the env ids)
    from celltwin.core.resources import asset_path
    from celltwin.policies.export import ExportOptions, export_trained
    from celltwin.training.config import TrainConfig
    from celltwin.training.run_dir import Trained

    folder = tmp_path_factory.mktemp("reach")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = gym.make("celltwin/Reach-v0")
        model = SAC("MultiInputPolicy", env, learning_starts=32, buffer_size=200, seed=0,
                    policy_kwargs=dict(net_arch=[8]))
        model.learn(40)
        env.close()
        config = TrainConfig(task="Reach", algo="sac", normalize=False)
        export_trained(Trained(model=model, config=config), folder / "bundle",
                       options=ExportOptions(samples=50, torchscript=False))
    finally:
        torch.set_num_threads(threads)
    (folder / "run" / "final").mkdir(parents=True)
    model.save(folder / "run" / "final" / "model.zip")
    (folder / "run" / "config.yaml").write_text(config.to_yaml())
    model.save(folder / "model.zip")
    wide = asset_path("cells/reach_table.yaml").read_text().replace(
        "high_m: [0.75, 0.15, 1.07]", "high_m: [1.45, 0.15, 1.07]")
    assert "1.45" in wide
    (folder / "wide.yaml").write_text(wide)
    return folder


@pytest.mark.parametrize("policy, words", [
    ("bundle", ["a Reach policy", "bundle", "--task Reach"]),
    ("run/final/model.zip", ["a Reach policy", "run config", "--task Reach"]),
    ("model.zip", ["a checkpoint of Reach, not of PickPlace", "observes 6 numbers"]),
])
def test_a_policy_is_evaluated_on_its_own_task_only(cli, reach, tmp_path, policy, words):
    result = cli("evaluate", reach / policy, "--task", "PickPlace", "--episodes", "1",
                 "--out", tmp_path / "out")
    one_error(result, *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("policy", ["bundle", "run/final/model.zip"])
def test_evaluate_refuses_goals_beyond_the_training_region(cli, reach, tmp_path, policy):
    result = cli("evaluate", reach / policy, "--task", "Reach", "--cell", reach / "wide.yaml",
                 "--episodes", "1", "--dr", "none", "--out", tmp_path / "out")
    one_error(result, "0.700 m outside the region", "x 0.450..0.750", "x 0.450..1.450",
              "--allow-outside-goal-region")


def test_evaluate_outside_the_training_region_when_asked_to(cli, reach, tmp_path):
    result = cli("evaluate", reach / "bundle", "--task", "Reach", "--cell", reach / "wide.yaml",
                 "--episodes", "1", "--dr", "none", "--allow-outside-goal-region",
                 "--out", tmp_path / "out")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "nominal:" in result.stdout


@pytest.mark.parametrize("controller", ["twin", "opc.tcp://127.0.0.1:9"])
def test_deploy_refuses_a_goal_beyond_the_training_region(cli, reach, controller):
    # Refused before a twin is built or a connection tried.
    result = cli("deploy", reach / "bundle", "--controller", controller, "--goal", "3", "3", "3")
    one_error(result, "--goal", "2.850 m outside", "x 0.450..0.750",
              "--allow-outside-goal-region")

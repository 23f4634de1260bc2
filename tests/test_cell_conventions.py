"""Any valid cell hosts the tasks: what a task needs is found by documented names with
defaults, or named by env options and CLI flags; `cell check` says task by task what a cell
hosts; demo, layout run, train, evaluate take any such cell.

The cells are the ones docs/cells.md shows: "your own cell in ten minutes" and the complete
example, which names none of the conventional regions.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

from celltwin.core.errors import EnvError
from celltwin.envs import ENV_IDS
from celltwin.envs.tasks import TASKS, hosting
from celltwin.experts.by_task import make_expert
from celltwin.training.evaluation import run_episodes
from celltwin.training.config import resolve_config
from celltwin.world import World

DOCS = Path(__file__).resolve().parent.parent / "docs" / "cells.md"


def _yaml_after(heading: str) -> str:
    text = DOCS.read_text()
    return re.search(re.escape(heading) + r".*?```yaml\n(.*?)```", text, re.S).group(1)


@pytest.fixture
def my_cell(tmp_path) -> Path:
    """The cell of "your own cell in ten minutes", as the docs write it."""
    path = tmp_path / "cells" / "my_cell.yaml"
    path.parent.mkdir()
    path.write_text(_yaml_after("## Your own cell in ten minutes"))
    return path


@pytest.fixture
def example_cell(tmp_path) -> Path:
    """The complete example of docs/cells.md: no reach_space, goal_space or pick target."""
    path = tmp_path / "example.yaml"
    path.write_text(_yaml_after("## A complete example"))
    return path


def run_expert(env, episodes: int) -> int:
    """Episodes the task's scripted expert succeeds in, over seeds 0 to ``episodes - 1``."""
    outcome = run_episodes(env, make_expert(env), episodes, seed=0)
    return round(outcome.success_rate * episodes)


# --- the docs' cells ------------------------------------------------------------------------


def test_cell_check_says_task_by_task_what_the_cell_hosts(cli, my_cell, tmp_path):
    report = tmp_path / "report.json"
    result = cli("cell", "check", my_cell, "--json", report)
    assert result.returncode == 0, result.stdout + result.stderr
    # The lines the docs show, as printed.
    shown = re.search(r"\*\*2\. Check it.*?```\n(.*?)```", DOCS.read_text(), re.S).group(1)
    assert shown.strip() in result.stdout
    tasks = {entry["task"]: entry for entry in json.loads(report.read_text())["tasks"]}
    assert list(tasks) == list(TASKS)
    assert [tasks[name]["ok"] for name in TASKS] == [True, True, True, False]
    assert "needs a conveyor" in tasks["ConveyorPick"]["detail"]


def test_the_ten_minute_cell_runs_every_command(cli, my_cell, tmp_path):
    # The main job with tiny budgets: every stage runs on the user's cell.
    result = cli("demo", "--quick", "--cell", my_cell, "--out", tmp_path / "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "demo" / "report.md").is_file()
    result = cli("layout", "run", my_cell, "--parts", "5", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 in = 5 out + 0 in process + 0 dropped + 0 missed" in result.stdout
    result = cli("evaluate", "expert", "--task", "PickPlace", "--cell", my_cell,
                 "--episodes", "20", "--dr", "none", "--out", tmp_path / "evaluate")
    assert result.returncode == 0, result.stdout + result.stderr
    nominal = json.loads((tmp_path / "evaluate" / "evaluation.json").read_text())["nominal"]
    assert nominal["success_rate"] >= 0.95


@pytest.mark.parametrize("task", ["Reach", "Push", "PickPlace"])
def test_a_cell_written_from_the_docs_hosts_the_tasks(example_cell, task):
    # The complete example names no reach_space or goal_space: it used to fail gym.make.
    assert f"celltwin/{task}-v0" in ENV_IDS
    env = gym.make(f"celltwin/{task}-v0", cell=str(example_cell))
    try:
        observation, _ = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        low, high = env.unwrapped.goal_bounds()
        assert (low <= observation["desired_goal"] + 1e-6).all()
        assert (observation["desired_goal"] <= high + 1e-6).all()
    finally:
        env.close()


def test_reach_goals_around_the_tcp_at_home_are_reached(example_cell):
    env = gym.make("celltwin/Reach-v0", cell=str(example_cell))
    try:
        assert env.unwrapped.task.describe() == "goals from around the TCP at home"
        assert run_expert(env, 10) == 10
    finally:
        env.close()


def test_layout_run_makes_up_a_pick_target_over_the_spawn_region(cli, example_cell, tmp_path):
    result = cli("layout", "run", example_cell, "--parts", "3", "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 in = 3 out + 0 in process + 0 dropped + 0 missed" in result.stdout
    kpis = json.loads((tmp_path / "kpis.json").read_text())
    assert "pick_bin_region" in json.dumps(kpis)


@pytest.mark.parametrize("control", ["ee_delta", "joint_delta"])
def test_envs_on_the_ten_minute_cell_pass_check_env(my_cell, control):
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for task in ("Reach", "PickPlace"):
        env = gym.make(f"celltwin/{task}-v0", cell=str(my_cell), control=control)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gym_check_env(env.unwrapped, skip_render_check=True)
                sb3_check_env(env.unwrapped, warn=False)
        finally:
            env.close()


# --- the conventions and their overrides ------------------------------------------------------


def test_each_default_is_the_documented_one():
    with World("ur5e_suction_station") as world:
        found = {support.task: support.detail for support in hosting(world)}
    assert found == {
        "Reach": "goals from 'goal_space'",
        "Push": "part 'carton' from 'pick_space', goals from 'goal_space'",
        "PickPlace": "part 'carton' from 'pick_space', goals from 'goal_space'",
        "ConveyorPick": "part 'carton' riding in from 'belt_in' into 'outfeed_box'"}
    with World("pick_station_far_tray") as world:   # no goal_space: the derived regions
        found = {support.task: support.detail for support in hosting(world)}
    assert found["Reach"] == "goals from around the TCP at home"
    assert found["PickPlace"] == "part 'part' from 'in_bin', goals from around 'place_tray'"
    assert found["ConveyorPick"] == "part 'can' riding in from 'belt_start' into 'outfeed_tray'"


@pytest.mark.parametrize("task, options, detail", [
    ("PickPlace", {"pick": "belt_in"}, "part 'carton' from 'belt_in', goals from 'goal_space'"),
    ("PickPlace", {"place": "place_box"},
     "part 'carton' from 'pick_space', goals from around 'place_box'"),
    ("PickPlace", {"goal_region": "belt_in"},
     "part 'carton' from 'pick_space', goals from 'belt_in'"),
    ("Reach", {"goal_region": "pick_space"}, "goals from 'pick_space'"),
    ("ConveyorPick", {"place": "place_box"},
     "part 'carton' riding in from 'belt_in' into 'outfeed_box'"),
    ("ConveyorPick", {"pick": "pick_space"},
     "part 'carton' riding in from 'pick_space' into 'outfeed_box'"),
])
def test_env_options_name_what_the_conventions_would_find(task, options, detail):
    env = gym.make(f"celltwin/{task}-v0", cell="ur5e_suction_station", **options)
    try:
        assert env.unwrapped.task.describe() == detail
        env.reset(seed=0)
    finally:
        env.close()


@pytest.mark.parametrize("task, options, path, words", [
    ("PickPlace", {"pick": "pick_spce"}, "pick", "did you mean 'pick_space'"),
    ("PickPlace", {"place": "place_bx"}, "place", "did you mean 'place_box'"),
    ("ConveyorPick", {"pick": "goal_space"}, "pick", "is not on one"),
    ("ConveyorPick", {"place": "pick_belt_end"}, "place", "target 'pick_belt_end' is not on one"),
    ("Push", {"place": "place_box"}, "place", "takes no option 'place'"),
])
def test_a_wrong_name_is_a_located_error(task, options, path, words):
    with pytest.raises(EnvError) as caught:
        gym.make(f"celltwin/{task}-v0", cell="ur5e_suction_station", **options)
    (problem,) = caught.value.problems
    assert problem.path == path and words in str(caught.value), str(caught.value)


def test_the_cli_flags_reach_the_env(cli, tmp_path):
    config = resolve_config(task="PickPlace", overrides={"env.cell": "ur5e_suction_station",
                                                         "env.pick": "belt_in",
                                                         "env.place": "place_box"})
    assert config.env_kwargs()["pick"] == "belt_in"
    assert config.env_kwargs()["place"] == "place_box"
    result = cli("evaluate", "expert", "--task", "PickPlace", "--cell", "ur5e_suction_station",
                 "--pick", "pik_space", "--out", tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: pick: ") and "did you mean 'pick_space'" in line


def test_demo_picks_and_places_by_the_conventions_in_any_cell(cli, tmp_path):
    result = cli("demo", "--quick", "--cell", "ur5e_suction_station", "--out", tmp_path / "ur")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "ur" / "report.md").is_file()
    result = cli("demo", "--quick", "--cell", "reach_table", "--out", tmp_path / "none")
    assert result.returncode == 2 and "needs a part" in result.stderr


# --- the UR5e acceptance figures ---------------------------------------------------------------


@pytest.mark.slow
def test_suction_pick_place_expert_on_the_ur5e_cell_meets_the_bar(cli, tmp_path):
    result = cli("evaluate", "expert", "--task", "PickPlace", "--cell", "ur5e_suction_station",
                 "--episodes", "100", "--out", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "evaluation.json").read_text())
    assert report["nominal"]["success_rate"] >= 0.95
    assert report["randomized"]["success_rate"] >= 0.90


def test_suction_pick_place_expert_on_the_ur5e_cell():
    env = gym.make("celltwin/PickPlace-v0", cell="ur5e_suction_station")
    try:
        assert run_expert(env, 20) == 20
    finally:
        env.close()

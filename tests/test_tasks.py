"""The task registry: every fact about a task comes from its class, and a new task needs no
other edit to reach Gymnasium, training configs, the CLI and the experts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import yaml

import celltwin.envs
from celltwin.core.errors import EnvError
from celltwin.envs.tasks import (TASKS, PickPlaceTask, ReachTask, Task, register_task,
                                 task_class)
from celltwin.experts.by_task import make_expert
from celltwin.spec.loader import shipped_cell_names
from celltwin.training.config import (PRESETS_DIR, TrainConfig, preset_path,
                                      resolve_config)
from celltwin.training.errors import TrainingError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(TASKS))
def test_registration_comes_from_the_task_class(name):
    cls = TASKS[name]
    assert cls.name == name and cls.env_id == f"celltwin/{name}-v0"
    spec = gym.spec(cls.env_id)
    assert spec.entry_point == "celltwin.envs.cell_env:CellEnv"
    assert spec.kwargs == {"task": name}
    assert spec.max_episode_steps == cls.max_episode_steps
    assert cls.default_cell in shipped_cell_names()
    assert cls.cell_needs and cls.expert is not None
    # The task's preset file exists and trains this task.
    assert preset_path(name) == PRESETS_DIR / f"{cls.preset}.yaml"
    assert yaml.safe_load(preset_path(name).read_text())["task"] == name


def _help(command: str) -> str:
    """``celltwin COMMAND --help``, on one line."""
    import contextlib
    import io

    from celltwin.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(out.getvalue().split())


def test_every_view_of_the_tasks_is_the_registry():
    for command in ("train", "evaluate"):
        assert ", ".join(TASKS) in _help(command)


def test_the_shipped_tasks_keep_their_facts():
    # A deliberate change detector: these facts are what trained policies, presets and published
    # figures were made with, so changing one is a decision this test makes visible.
    facts = {name: (cls.max_episode_steps, cls.default_cell, cls.expert.__name__, cls.preset)
             for name, cls in TASKS.items()}
    assert facts == {"Reach": (50, "reach_table", "ReachExpert", "reach"),
                     "Push": (50, "table_top", "PushExpert", "push"),
                     "PickPlace": (50, "table_top", "ReactivePickExpert", "pickplace"),
                     "ConveyorPick": (150, "pick_station", "ReactiveConveyorExpert",
                                      "conveyorpick")}


@pytest.mark.parametrize("name", ["Reach", "ConveyorPick"])
def test_an_env_uses_its_task_class_default_cell_and_expert(name):
    env = gym.make(TASKS[name].env_id)
    try:
        assert type(env.unwrapped.task) is TASKS[name]
        assert env.unwrapped.world.spec.name == TASKS[name].default_cell
        assert env.spec.max_episode_steps == TASKS[name].max_episode_steps
        assert type(make_expert(env)) is TASKS[name].expert
    finally:
        env.close()


class ToyReach(ReachTask):
    """Reach with short episodes on another cell: a task defined outside celltwin."""

    name = "ToyReach"
    max_episode_steps = 7
    default_cell = "table_top"


@pytest.fixture
def toy_task():
    register_task(ToyReach)
    yield ToyReach
    TASKS.pop(ToyReach.name, None)
    gym.registry.pop(ToyReach.env_id, None)


def test_a_registered_task_needs_no_other_edit(toy_task):
    assert toy_task.env_id == "celltwin/ToyReach-v0" and "ToyReach" in TASKS
    assert toy_task.env_id in celltwin.envs.ENV_IDS
    # Gymnasium: the id, its time limit and the task's default cell.
    env = gym.make("celltwin/ToyReach-v0")
    try:
        assert type(env.unwrapped.task) is toy_task
        assert env.unwrapped.world.spec.name == "table_top"
        env.reset(seed=0)
        steps = 0
        truncated = terminated = False
        while not (truncated or terminated):
            _, _, terminated, truncated, _ = env.step(np.zeros(3))
            steps += 1
        assert steps <= 7 and (terminated or steps == 7)
        # The expert the class inherits.
        assert type(make_expert(env)) is ReachTask.expert
    finally:
        env.close()
    # Training configs: validated against the registry, the preset found through the class.
    config = resolve_config(task="ToyReach")
    assert config.task == "ToyReach" and config.env_id() == "celltwin/ToyReach-v0"
    assert config.source == "preset reach"
    assert TrainConfig(task="ToyReach").task == "ToyReach"
    with pytest.raises(TrainingError, match="did you mean 'ToyReach'"):
        resolve_config(task="ToyReech")
    # The CLI's --task: listed in the help.
    assert "ConveyorPick, ToyReach" in _help("train")


def test_unknown_tasks_are_refused_everywhere_with_a_suggestion(tmp_path):
    with pytest.raises(EnvError, match="unknown task 'Reech'; did you mean 'Reach'"):
        task_class("Reech")
    with pytest.raises(EnvError, match="did you mean 'PickPlace'"):
        gym.make("celltwin/Reach-v0", task="PickPlac").unwrapped
    config = tmp_path / "run.yaml"
    config.write_text("task: Pushh\nalgo: dqn\n")
    with pytest.raises(TrainingError) as error:
        resolve_config(config)
    text = [str(problem) for problem in error.value.problems]
    assert len(text) == 2, text  # with the other problems, at once, with their line
    assert any("unknown task 'Pushh'; did you mean 'Push'" in line and ":1:" in line
               for line in text)


def test_register_task_refuses_a_name_or_id_taken_by_another_class():
    class Impostor(PickPlaceTask):
        name = "Reach"

    with pytest.raises(EnvError, match="taken"):
        register_task(Impostor)

    class Nameless(Task):
        pass

    with pytest.raises(EnvError, match="with a name"):
        register_task(Nameless)
    assert register_task(ReachTask) is ReachTask and TASKS["Reach"] is ReachTask


def test_a_task_without_expert_or_preset_says_so():
    class Bare(ReachTask):
        name = "BareReach"
        expert = None
        preset = None

    register_task(Bare)
    try:
        with pytest.raises(ValueError, match="no scripted expert for task 'BareReach'"):
            make_expert(SimpleNamespace(unwrapped=SimpleNamespace(task=Bare)))
        with pytest.raises(TrainingError, match="no training preset"):
            resolve_config(task="BareReach")
        config = PRESETS_DIR / "reach.yaml"
        with pytest.raises(TrainingError, match="no scripted expert to demonstrate"):
            resolve_config(config, task="BareReach", overrides={"demos.episodes": 3})
    finally:
        TASKS.pop("BareReach")
        gym.registry.pop(Bare.env_id)


def test_gym_make_with_the_module_prefix_needs_no_import(tmp_path):
    probe = ("import sys, gymnasium as gym\n"
             "assert not any(m.startswith('celltwin') for m in sys.modules)\n"
             "env = gym.make('celltwin.envs:celltwin/PickPlace-v0')\n"
             "print(env.spec.max_episode_steps, env.unwrapped.task.name)\n"
             "env.close()\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["50", "PickPlace"]


# --- the docs say what the registry says ------------------------------------------------------


def _table_rows(text: str, header: str) -> list[list[str]]:
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_envs_docs_list_every_task_as_its_class_says():
    text = (REPO / "docs" / "envs.md").read_text()
    rows = _table_rows(text, "| id | task | default cell | episode | action |")
    assert [(row[0], row[2], row[3]) for row in rows] == [
        (f"`{cls.env_id}`", f"`{cls.default_cell}`", f"{cls.max_episode_steps} steps")
        for cls in TASKS.values()]
    needs = _table_rows(text, "| task | needs of a cell |")
    assert needs == [[name, "; ".join(cls.cell_needs)] for name, cls in TASKS.items()]
    shipped = re.search(r"a shipped example: ([^)]*)\)", " ".join(text.split())).group(1)
    assert re.findall(r"`(\w+)`", shipped) == shipped_cell_names()


def test_training_docs_list_every_task_and_preset():
    text = (REPO / "docs" / "training.md").read_text()
    listed = re.search(r"task: \w+ +# ([\w |]+?) \(celltwin\.envs\.tasks\.TASKS\)", text).group(1)
    assert listed.split(" | ") == list(TASKS)
    presets = _table_rows(text, "| preset | task | algorithm | source |")
    assert sorted((row[0], row[1]) for row in presets) == \
        sorted((f"`{cls.preset}`", name) for name, cls in TASKS.items())

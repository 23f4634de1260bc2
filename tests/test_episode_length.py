"""A run's episode length (``env.max_episode_steps``, ``--episode-steps``): the demonstrations,
DAgger and evaluations of the run use it, the bundle records it, and evaluating the bundle or
its checkpoint keeps it unless told otherwise."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import celltwin.envs  # noqa: F401  (registers the env ids)
from celltwin.policies.bundle import load_bundle
from celltwin.policies.export import export_trained
from celltwin.policies.manifest import episode_steps
from celltwin.training.config import TrainConfig, resolve_config
from celltwin.training.errors import TrainingError
from celltwin.training.rollouts import EnvSet, Rollouts
from celltwin.training.run_dir import Trained

STEPS = 13   # neither the task's 50 nor anything a default could give
STILL = np.zeros(3, dtype=np.float32)   # Reach: a TCP displacement, no gripper


def test_rollouts_run_the_configs_episode_length():
    config = resolve_config(task="Reach", overrides={"env.max_episode_steps": STEPS})
    with Rollouts(config, workers=1) as rollouts:
        expert, = rollouts.run(EnvSet(None, 1, seed=0), "expert", [3])
        evaluated, = rollouts.run(EnvSet(None, 1, seed=0), "evaluate", [3],
                                   policy=lambda observation: STILL)
    assert expert.actions.shape == (STEPS, 3)
    # Standing still never reaches the goal: the episode runs to the time limit, which is ours.
    assert len(evaluated.rewards) == STEPS and not evaluated.successes.any()


def test_the_bundle_records_the_runs_episode_length_and_evaluation_keeps_it(tmp_path, cli):
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    config = TrainConfig(task="Reach", env={"max_episode_steps": STEPS})
    env = gym.make(config.env_id(), **config.env_kwargs())
    assert env.spec.max_episode_steps == STEPS
    model = SAC("MultiInputPolicy", env, learning_starts=16, buffer_size=100, seed=0,
                policy_kwargs=dict(net_arch=[8]))
    model.learn(24)
    export_trained(Trained(model=model, config=config, summary={"success_nominal": 0.0}),
                   tmp_path / "bundle")
    manifest = load_bundle(tmp_path / "bundle").manifest
    training = manifest["training"]
    assert training["max_episode_steps"] == STEPS and episode_steps(manifest) == STEPS
    # A bundle exported before the manifest recorded it ran every task's 50 steps.
    assert episode_steps({"training": {"task": "Reach"}}) == 50
    assert training["env_kwargs"]["max_episode_steps"] == STEPS

    ran = cli("evaluate", tmp_path / "bundle", "--task", "Reach", "--dr", "none",
              "--episodes", 1, "--out", tmp_path / "kept")
    assert ran.returncode == 0, ran.stderr
    assert _episode_steps(tmp_path / "kept") == str(STEPS)
    ran = cli("evaluate", tmp_path / "bundle", "--task", "Reach", "--dr", "none",
              "--episodes", 1, "--episode-steps", 7, "--out", tmp_path / "told")
    assert ran.returncode == 0, ran.stderr
    assert _episode_steps(tmp_path / "told") == "7"


def _episode_steps(out) -> str | None:
    results = json.loads((out / "evaluation.json").read_text())
    return results["env_kwargs"].get("max_episode_steps")


@pytest.mark.parametrize("value", [0, -5, 2.5, "long", True])
def test_a_bad_episode_length_in_a_config_is_located(tmp_path, value):
    config = tmp_path / "run.yaml"
    config.write_text(f"task: Reach\nenv:\n  max_episode_steps: {json.dumps(value)}\n")
    with pytest.raises(TrainingError) as error:
        resolve_config(config)
    problem, = error.value.problems
    assert problem.path == "env.max_episode_steps" and problem.file == str(config)
    assert problem.line == 3


@pytest.mark.parametrize("command", [("train", "--task", "Reach"),
                                     ("evaluate", "expert", "--task", "Reach")])
@pytest.mark.parametrize("value", ["0", "-1", "ten", "1e9"])
def test_a_bad_episode_steps_flag_is_one_line_and_exit_2(cli, tmp_path, command, value):
    ran = cli(*command, "--episode-steps", value, "--out", tmp_path / "never")
    assert ran.returncode == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and "--episode-steps" in lines[0] and value in lines[0]
    assert not (tmp_path / "never").exists()

"""Training pipeline: configs, run directories, resume after SIGKILL, damaged checkpoints, demos.

Budgets are tiny (hundreds of steps): these tests check the machinery, not learning;
``benchmarks/learning.py`` measures learning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from celltwin.training.config import resolve_config
from celltwin.training.errors import TrainingError
from celltwin.training.metrics import MetricsLog
from celltwin.training.run_dir import RunDir, load_trained
from celltwin.training.trainer import resume, train

# rollout_workers 1: a few episodes per evaluation do not pay for worker processes; the
# DAgger test and tests/test_rollouts.py run them. Two episodes in the final evaluation too:
# these runs check the machinery, and 50 episodes of an untrained policy are 2,500 env steps.
TINY_SAC = {"steps": 400, "n_envs": 1, "rollout_workers": 1, "eval.every_steps": 200,
            "eval.episodes": 2, "eval.final_episodes": 2,
            "checkpoint_every_steps": 200, "hyperparameters": {
                "learning_starts": 100, "batch_size": 32, "buffer_size": 5000,
                "policy_kwargs": {"net_arch": [32, 32]},
                "replay_buffer_kwargs": {"n_sampled_goal": 2, "goal_selection_strategy": "future"}}}


def _quiet(_text: str) -> None:
    pass


@pytest.mark.slow
def test_sac_her_train_evaluate_resume_round_trip(tmp_path):
    config = resolve_config(task="Reach", overrides=TINY_SAC)
    summary = train(config, tmp_path / "run", log=_quiet)
    run = RunDir(tmp_path / "run")
    assert summary["steps"] == 400 and summary["success_nominal"] in (0.0, 0.5, 1.0)
    assert summary["eval_episodes"] == 2 and run.summary() == summary
    for path in (run.config_path, run.meta_path, run.metrics_path, run.curve_path,
                 run.final_dir / "model.zip", run.summary_path):
        assert path.is_file(), path
    assert any(run.tensorboard_dir.rglob("events.out.tfevents.*"))
    rows = MetricsLog(run.metrics_path).rows()
    assert [int(row["step"]) for row in rows] == [200, 400]
    checkpoint = run.latest_checkpoint()
    assert checkpoint.step == 400 and checkpoint.file("replay_buffer.pkl") is not None

    trained = load_trained(run.path)
    assert trained.config.model_dump() == config.model_dump() and trained.obs_rms is None and not trained.flatten
    observation = {key: np.zeros(space.shape, np.float32)
                   for key, space in trained.model.observation_space.spaces.items()}
    action, _ = trained.model.predict(observation, deterministic=True)
    assert action.shape == (3,)

    resumed = resume(run.path, steps=600, log=_quiet)
    assert resumed["steps"] == 600 and resumed["eval_episodes"] == 2   # the run's own config
    assert [int(row["step"]) for row in MetricsLog(run.metrics_path).rows()] == [200, 400, 600]
    assert run.latest_checkpoint().step == 600


@pytest.mark.slow
def test_ppo_with_normalization_and_randomization_round_trip(tmp_path):
    # Envs in worker processes: each worker must know the gym ids of the env it builds.
    config = resolve_config(task="Reach", overrides={
        "algo": "ppo", "her": False, "env.reward": "dense", "normalize": True,
        "randomization": "light", "steps": 128, "n_envs": 2, "vec_env": "subproc",
        "eval.every_steps": 128, "eval.episodes": 2, "eval.final_episodes": 2,
        "checkpoint_every_steps": 128,
        "hyperparameters": {"n_steps": 32, "batch_size": 32, "n_epochs": 2,
                            "policy_kwargs": {"net_arch": [32, 32]}}})
    summary = train(config, tmp_path / "ppo", log=_quiet)
    assert summary["steps"] == 128 and "success_randomized" in summary
    trained = load_trained(tmp_path / "ppo")
    assert trained.flatten
    mean, var = trained.obs_rms
    assert mean.shape == (12,) and np.all(var > 0)      # 6 observation + 2 x 3 goal values
    resumed = resume(tmp_path / "ppo", steps=256, log=_quiet)
    assert resumed["steps"] == 256


@pytest.mark.slow
def test_sigkill_mid_training_resumes_and_finishes(tmp_path, cli):
    run_dir = tmp_path / "killed"
    config = resolve_config(task="Reach", overrides={**TINY_SAC, "steps": 3000,
                                                       "eval.every_steps": 1000})
    config_file = tmp_path / "config.yaml"
    config_file.write_text(config.to_yaml())
    process = subprocess.Popen([sys.executable, "-m", "celltwin.cli.main", "train", str(config_file),
                                "--out", str(run_dir), "--no-progress"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run_dir / "checkpoints" / "LATEST"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            if latest.is_file() and latest.read_text().strip() >= "step_000000600":
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stderr.read().decode()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    killed_at = RunDir(run_dir).latest_checkpoint().step
    assert 600 <= killed_at < 3000
    assert not (run_dir / "summary.json").exists()

    result = cli("train", "--resume", run_dir, "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 3000
    steps = [int(row["step"]) for row in MetricsLog(run_dir / "metrics.csv").rows()]
    assert steps == sorted(set(steps)) and steps[-1] == 3000


def test_damaged_or_missing_checkpoint_is_a_clear_error(tmp_path, cli):
    config = resolve_config(task="Reach", overrides={**TINY_SAC, "steps": 200})
    train(config, tmp_path / "run", log=_quiet)
    run = RunDir(tmp_path / "run")
    model = run.latest_checkpoint().path / "model.zip"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(TrainingError) as error:
        resume(run.path, steps=400, log=_quiet)
    assert "corrupt" in str(error.value) and "model.zip" in str(error.value)
    result = cli("train", "--resume", run.path, "--steps", "400")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "corrupt" in result.stderr

    final_model = run.final_dir / "model.zip"
    final_model.write_bytes(final_model.read_bytes()[:-100])   # truncated
    with pytest.raises(TrainingError, match="corrupt"):
        load_trained(run.path)

    (run.checkpoints_dir / "LATEST").unlink()
    with pytest.raises(TrainingError, match="no checkpoint"):
        resume(run.path, log=_quiet)
    with pytest.raises(TrainingError, match="not a run directory"):
        resume(tmp_path, log=_quiet)


def test_config_problems_are_reported_together_with_their_place(tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: Reach\nalgo: dqn\nsteps: -5\nenv: {control: ee_delta, rewrd: dense}\n"
                   "hyperparameters: {}\n")
    with pytest.raises(TrainingError) as error:
        resolve_config(bad)
    text = [str(problem) for problem in error.value.problems]
    assert len(text) == 3, text
    assert any("algo" in line and ":2:" in line for line in text)
    assert any("steps" in line and ":3:" in line for line in text)
    assert any("env.rewrd" in line for line in text)

    result = cli("train", bad)
    assert result.returncode == 2 and result.stderr.count("error:") == 3
    result = cli("train", "--task", "Reech")
    assert result.returncode == 2 and "did you mean 'Reach'" in result.stderr
    with pytest.raises(TrainingError, match="off-policy"):
        resolve_config(task="Reach", overrides={"algo": "ppo", "her": True})


def test_final_evaluation_episodes_are_configured_and_checked(tmp_path):
    assert resolve_config(task="Reach").eval.final_episodes == 50
    assert resolve_config(task="Reach", overrides={"eval.final_episodes": 7}).eval.final_episodes == 7
    for value in (0, -3, 2.5, "many"):
        with pytest.raises(TrainingError) as error:
            resolve_config(task="Reach", overrides={"eval.final_episodes": value})
        [problem] = error.value.problems
        assert "eval.final_episodes" in str(problem) and "integer >= 1" in str(problem)
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: Reach\neval:\n  every_steps: 100\n  final_episodes: 0\n")
    with pytest.raises(TrainingError) as error:
        resolve_config(bad)
    assert f"{bad}:4: eval.final_episodes: must be >= 1, got 0" in str(error.value)


def test_existing_run_is_never_overwritten(tmp_path):
    config = resolve_config(task="Reach", overrides={**TINY_SAC, "steps": 100})
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("precious")
    with pytest.raises(TrainingError, match="already holds a run"):
        train(config, tmp_path / "run", log=_quiet)
    assert (tmp_path / "run" / "config.yaml").read_text() == "precious"


@pytest.mark.slow
def test_demonstrations_fill_the_buffer_and_clone_the_expert(tmp_path):
    import celltwin.envs  # noqa: F401
    from celltwin.training.algorithms import make_model, make_vec_env
    from celltwin.training.demos import behaviour_clone, collect_into
    from celltwin.training.rollouts import Rollouts

    config = resolve_config(task="PickPlace", overrides={
        "n_envs": 2, "vec_env": "dummy", "randomization": "light",
        "hyperparameters": {"buffer_size": 2000, "batch_size": 32,
                            "policy_kwargs": {"net_arch": [64, 64]},
                            "replay_buffer_kwargs": {"n_sampled_goal": 2,
                                                     "goal_selection_strategy": "future"}}})
    venv = make_vec_env(config)
    try:
        model = make_model(config, venv, None)
        with Rollouts(config, workers=2) as rollouts:
            demos = collect_into(model, config, episodes=3, seed=3, rollouts=rollouts)
        # 3 episodes asked, 2 env slots: rounded up to two whole lock-step rounds of 50 steps.
        assert demos.episodes == 4 and demos.successes >= 3
        assert len(demos.actions) == 4 * 50
        assert model.replay_buffer.size() == 2 * 50
        assert (model.replay_buffer.ep_length[:100] == 50).all()
        # Slot 1 of the second round holds the fourth episode, step for step.
        assert np.array_equal(model.replay_buffer.actions[50:100, 1], demos.actions[150:200])
        assert np.array_equal(model.replay_buffer.observations["observation"][60, 1],
                              demos.observations["observation"][160])
        batch = demos.observations
        before = _clone_error(model, batch, demos.actions)
        behaviour_clone(model, demos, epochs=60, batch_size=64, learning_rate=1e-3, seed=0)
        after = _clone_error(model, batch, demos.actions)
        assert after < 0.5 * before, (before, after)
        model.learn(64)   # RL continues from the seeded buffer without complaint
    finally:
        venv.close()


def _clone_error(model, observations, actions) -> float:
    predicted, _ = model.predict(observations, deterministic=True)
    return float(np.mean((predicted - actions) ** 2))


@pytest.mark.slow
def test_adr_state_is_saved_with_checkpoints_and_restored_on_resume(tmp_path):
    config = resolve_config(task="Reach", overrides={
        **TINY_SAC, "randomization": "light", "adr": True, "n_envs": 2, "vec_env": "dummy",
        "adr_settings": {"queue_size": 2, "boundary_probability": 1.0}})
    train(config, tmp_path / "run", log=_quiet)
    run = RunDir(tmp_path / "run")
    saved = json.loads((run.latest_checkpoint().path / "adr.json").read_text())
    assert saved["step"] == 400 and len(saved["envs"]) == 2
    assert all(env["ranges"] for env in saved["envs"])
    # Small queues and every episode pinned: after 400 steps the boundaries have moved.
    assert sum(len(env["history"]) for env in saved["envs"]) > 0
    assert json.loads((run.path / "adr.json").read_text()) == saved

    from celltwin.training.algorithms import make_vec_env

    venv = make_vec_env(config)
    try:
        venv.env_method("load_adr_state", saved["envs"][1], indices=[0])
        assert venv.env_method("adr_state", indices=[0])[0]["ranges"] == saved["envs"][1]["ranges"]
    finally:
        venv.close()
    assert resume(run.path, steps=600, log=_quiet)["steps"] == 600

    with pytest.raises(TrainingError, match="needs randomization terms"):
        resolve_config(task="Reach", overrides={"adr": True})
    with pytest.raises(TrainingError, match="queue_sise"):
        resolve_config(task="Reach", overrides={"randomization": "light", "adr": True,
                                                "adr_settings": {"queue_sise": 3}})


def test_a_finished_run_is_extended_only_on_request_and_paths_are_absolute(tmp_path, monkeypatch):
    import torch

    config = resolve_config(task="Reach", overrides={**TINY_SAC, "steps": 200})
    train(config, tmp_path / "run", log=_quiet)
    with pytest.raises(TrainingError, match="finished already"):
        resume(tmp_path / "run", log=_quiet)
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="no CUDA device"):
            train(config.model_copy(update={"device": "cuda"}), tmp_path / "cuda", log=_quiet)
        assert not (tmp_path / "cuda").exists()   # nothing written for a run that cannot start

    monkeypatch.chdir(tmp_path)
    (tmp_path / "physics.yaml").write_text("robots: {arm: {latency_steps: 1}}\n")
    relative = resolve_config(task="Reach", overrides={"env.physics": "physics.yaml"})
    assert relative.env.physics == str(tmp_path / "physics.yaml")
    from celltwin.core.errors import CelltwinError

    with pytest.raises(CelltwinError) as error:
        train(resolve_config(task="Reach", overrides={"env.robot": "pandda"}), tmp_path / "bad",
              log=_quiet)
    assert "pandda" in str(error.value) and not (tmp_path / "bad").exists()


def test_evaluate_normalizes_observations_like_training(tmp_path):
    import gymnasium as gym

    import celltwin.envs  # noqa: F401
    from celltwin.training.evaluation import load_policy

    config = resolve_config(task="Reach", overrides={**TINY_SAC, "steps": 200, "normalize": True})
    train(config, tmp_path / "run", log=_quiet)
    env = gym.make("celltwin/Reach-v0")
    try:
        policy = load_policy(str(tmp_path / "run" / "final" / "model.zip"), env)
        observation, _ = env.reset(seed=1)
        assert policy.normalizer is not None
        normalized = policy.normalizer.normalize_obs(observation)
        assert not np.allclose(normalized["observation"], observation["observation"])
        expected, _ = policy.model.predict(normalized, deterministic=True)
        assert np.array_equal(policy(observation), expected)
    finally:
        env.close()


@pytest.mark.slow
def test_dagger_relabels_the_clone_and_standardizes_the_inputs(tmp_path):
    from celltwin.training.features import StandardizedCombinedExtractor

    config = resolve_config(task="PickPlace", overrides={
        **TINY_SAC, "steps": 200, "eval.every_steps": 200, "randomization": "light",
        "rollout_workers": 0, "demos.episodes": 2, "demos.bc_epochs": 2, "demos.dagger_rounds": 2,
        "demos.dagger_episodes": 1, "demos.dagger_epochs": 1,
        "demos.critic_warmup_steps": 100})   # the actor learns before the run ends: RL runs
    summary = train(config, tmp_path / "run", log=_quiet)
    rounds = summary["demonstrations"]["dagger"]
    # Each round adds the clone's own 50-step episode, labelled by the expert; a last set of
    # episodes measures the final clone, and the best clone measured is kept.
    assert [r.get("samples") for r in rounds] == [150, 200, None]
    assert all(0.0 <= r["clone_success"] <= 1.0 for r in rounds)
    best = max(range(3), key=lambda i: (rounds[i]["clone_success"], -i))
    assert rounds[-1]["kept_round"] == best
    # The inputs are standardized with the demonstrations' statistics, and those come back
    # with the saved model (actor, critic and target critic alike).
    trained = load_trained(tmp_path / "run")
    extractors = [m for m in trained.model.policy.modules()
                  if isinstance(m, StandardizedCombinedExtractor)]
    assert len(extractors) >= 2
    std = extractors[0].feature_std
    assert not bool((std == 1).all()) and all(bool((e.feature_std == std).all()) for e in extractors)
    # The clone is evaluated before RL (step 0), then RL goes on to the next evaluation.
    rows = MetricsLog(tmp_path / "run" / "metrics.csv").rows()
    assert [int(row["step"]) for row in rows] == [0, 200] and summary["steps"] == 200


def test_a_clone_that_meets_the_target_stops_the_run_before_rl(tmp_path):
    config = resolve_config(task="Reach", overrides={
        **TINY_SAC, "demos.episodes": 2, "demos.bc_epochs": 1, "eval.target_success": 0.0})
    summary = train(config, tmp_path / "run", log=_quiet)
    rows = MetricsLog(tmp_path / "run" / "metrics.csv").rows()
    assert [int(row["step"]) for row in rows] == [0]
    assert summary["stopped_early"] and summary["steps"] == 1   # SB3 stops after one env step
    # A checkpoint at step 0 (a resume point after the demonstrations), then the final one.
    run = RunDir(tmp_path / "run")
    assert sorted(path.name for path in run.checkpoints_dir.glob("step_*")) == \
        ["step_000000000", "step_000000001"]
    assert run.latest_checkpoint().step == 1


def test_a_run_whose_actor_stays_frozen_stops_at_the_clone_and_says_so(tmp_path):
    # The critic warm-up outlasts the run: no RL step can change the actor, so a clone below
    # the target ends the run at its evaluation instead of spending 2,000 steps on the critics.
    config = resolve_config(task="Reach", overrides={
        **TINY_SAC, "steps": 2000, "demos.episodes": 2, "demos.bc_epochs": 1,
        "demos.critic_warmup_steps": 2000, "eval.target_success": 1.0})
    lines: list[str] = []
    summary = train(config, tmp_path / "run", log=lines.append)
    assert summary["steps"] == 1 and summary["stop_reason"] == "actor frozen"
    plan = next(line for line in lines if line.startswith("plan: "))
    assert "2000 env steps" in plan and "ends at the clone's evaluation" in plan
    assert any("no further step can change the policy" in line for line in lines)
    # One step short of the run's end the actor would learn: the run goes on.
    config = config.model_copy(update={"demos": config.demos.model_copy(
        update={"critic_warmup_steps": 399}), "steps": 400})
    summary = train(config, tmp_path / "run2", log=_quiet)
    assert summary["stop_reason"] == "steps" and summary["steps"] == 400


def test_the_wall_time_budget_is_checked_between_evaluations(tmp_path):
    config = resolve_config(task="Reach", overrides={
        **TINY_SAC, "steps": 100_000, "eval.every_steps": 100_000, "max_wall_s": 2.0})
    summary = train(config, tmp_path / "run", log=_quiet)
    rows = MetricsLog(tmp_path / "run" / "metrics.csv").rows()
    # One evaluation, when the budget ran out, long before the first periodic one.
    assert len(rows) == 1 and float(rows[0]["wall_s"]) >= 2.0
    assert 0 < summary["steps"] < 100_000 and not summary["stopped_early"]
    assert summary["stop_reason"] == "budget"


def test_dagger_needs_a_reactive_expert_and_demonstrations():
    from celltwin.envs.tasks import TASKS

    with pytest.raises(TrainingError) as error:
        resolve_config(task="Push", overrides={"demos.episodes": 5, "demos.dagger_rounds": 1})
    assert "demos.dagger_rounds" in str(error.value) and "phase machine" in str(error.value)
    with pytest.raises(TrainingError) as error:
        resolve_config(task="PickPlace", overrides={"demos.episodes": 0, "demos.dagger_rounds": 1})
    assert "demos.episodes > 0" in str(error.value)
    assert TASKS["PickPlace"].expert.markov and TASKS["ConveyorPick"].expert.markov
    assert not TASKS["Push"].expert.markov


def test_cloning_decays_its_learning_rate_and_restores_it_for_the_anchor():
    import gymnasium as gym
    from stable_baselines3 import SAC

    import celltwin.envs  # noqa: F401  (registers the envs)
    from celltwin.training.demos import BehaviourCloner, Demonstrations

    env = gym.make("celltwin/Reach-v0")
    model = SAC("MultiInputPolicy", env, buffer_size=10, policy_kwargs={"net_arch": [8]}, seed=0)
    observations = [env.reset(seed=seed)[0] for seed in range(10)]
    demos = Demonstrations({k: np.stack([o[k] for o in observations]) for k in observations[0]},
                           np.full((10, 3), 0.5, dtype=np.float32), 10, 10)
    cloner = BehaviourCloner(model, demos, batch_size=4, learning_rate=1e-2, seed=0)
    rates = []   # the learning rate of each optimizer step
    cloner.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: rates.append(optimizer.param_groups[0]["lr"]))
    cloner.fit(2)  # 2 passes of 3 minibatches
    assert len(rates) == 6
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-2 * (1 - 0.9 * 5 / 6))
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert cloner.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)  # the anchor's rate
    env.close()

"""Rollout workers: the same episodes in worker processes as in this process, startup draws,
policy snapshots and errors that come back typed."""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading

import gymnasium as gym
import numpy as np
import pytest

import celltwin.envs  # noqa: F401  (registers the envs)
from celltwin.training.config import resolve_config
from celltwin.training.rollouts import EnvSet, PolicySnapshot, Rollouts
from celltwin.core.errors import CelltwinError


def _new_children(before: set) -> list:
    """This process's child processes started since ``before`` (the pool's workers)."""
    return [child for child in multiprocessing.active_children() if child not in before]


def _same(a, b) -> bool:
    return (np.array_equal(a.actions, b.actions) and np.array_equal(a.rewards, b.rewards)
            and all(np.array_equal(a.observations[k], b.observations[k]) for k in a.observations))


def test_workers_run_the_episodes_one_process_runs_and_draws_repeat():
    config = resolve_config(task="PickPlace", overrides={"randomization": "standard"})
    draws = EnvSet("standard", 3, seed=40)
    seeds = [7, 7, 7, 7, 8]   # episodes 0 and 3 run on draw 0, 1 and 4 on draw 1
    before = set(multiprocessing.active_children())
    with Rollouts(config, workers=1) as local:
        here = local.run(draws, "expert", seeds)
        assert not _new_children(before)   # one worker: this process runs the episodes
    with Rollouts(config, workers=2) as pool:
        assert len(_new_children(before)) == 2
        there = pool.run(draws, "expert", seeds)
        assert all(_same(a, b) for a, b in zip(here, there))
        # The same seed on another draw (another part, other masses) is another episode;
        # on the same draw, run by the other worker after other episodes, the same one.
        assert _same(there[0], there[3])
        assert not _same(there[0], there[1]) and not _same(there[1], there[2])
        assert there[0].actions.shape == (50, 4) and there[0].observations["observation"].shape[0] == 50
        assert sum(episode.success for episode in there) >= 4
        pool.forget(draws)   # the workers close that set's envs; a new call builds them again
        assert _same(pool.run(draws, "expert", [7])[0], here[0])


def test_snapshots_of_tqc_and_of_ppo_with_normalization_act_as_their_models():
    from sb3_contrib import TQC
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from celltwin.training.rollouts import flatten

    env = gym.make("celltwin/PickPlace-v0")
    tqc = TQC("MultiInputPolicy", env, policy_kwargs={"net_arch": [16]}, seed=1, buffer_size=10)
    flat = DummyVecEnv([lambda: gym.wrappers.FlattenObservation(gym.make("celltwin/PickPlace-v0"))])
    normalizer = VecNormalize(flat)
    normalizer.obs_rms.mean[:] = np.linspace(-0.5, 0.5, normalizer.obs_rms.mean.size)
    normalizer.obs_rms.var[:] = 4.0
    ppo = PPO("MlpPolicy", normalizer, policy_kwargs={"net_arch": [16]}, seed=1, n_steps=16,
              batch_size=16)
    tqc_snapshot = PolicySnapshot(tqc)
    ppo_snapshot = PolicySnapshot(ppo, normalizer, flat=True)
    # What goes to the workers is the actor, not the critics.
    assert len(pickle.dumps(tqc_snapshot)) < len(_policy_bytes(tqc)) / 2
    for seed in range(3):
        observation, _ = env.reset(seed=seed)
        assert np.array_equal(tqc_snapshot(observation), tqc.predict(observation, deterministic=True)[0])
        expected, _ = ppo.predict(normalizer.normalize_obs(flatten(observation)), deterministic=True)
        assert np.array_equal(ppo_snapshot(observation), expected)
    flat.close()
    env.close()


def _policy_bytes(model) -> bytes:
    import io

    buffer = io.BytesIO()
    model.policy.save(buffer)
    return buffer.getvalue()


def test_policy_snapshot_acts_as_the_model_and_evaluation_matches_run_episodes():
    from stable_baselines3 import SAC

    from celltwin.training.evaluation import SB3Policy, run_episodes

    config = resolve_config(task="Reach")
    env = gym.make("celltwin/Reach-v0")
    model = SAC("MultiInputPolicy", env, policy_kwargs={"net_arch": [16]}, seed=3, buffer_size=10)
    snapshot = PolicySnapshot(model)
    for seed in range(3):
        observation, _ = env.reset(seed=seed)
        assert np.array_equal(snapshot(observation), model.predict(observation, deterministic=True)[0])
    expected = run_episodes(env, SB3Policy(model), 4, seed=100)
    env.close()
    randomized = EnvSet("standard", 3, 100)
    with Rollouts(config, workers=2) as pool:
        episodes = pool.run(EnvSet(None, 1, 100), "evaluate", range(100, 104), snapshot)
        labelled = pool.run(EnvSet(None, 1, 100), "dagger", [100], snapshot)[0]
        there = [pool.run(randomized, mode, range(5), snapshot) for mode in ("evaluate", "dagger")]
    with Rollouts(config, workers=1) as local:
        here = [local.run(randomized, mode, range(5), snapshot) for mode in ("evaluate", "dagger")]
    for a, b in zip(here[0], there[0]):
        assert np.array_equal(a.rewards, b.rewards) and np.array_equal(a.successes, b.successes)
    assert all(_same(a, b) and np.array_equal(a.labels, b.labels) for a, b in zip(here[1], there[1]))
    assert np.mean([e.success for e in episodes]) == expected.success_rate
    assert np.mean([e.total_reward for e in episodes]) == pytest.approx(expected.mean_return, abs=1e-9)
    # An untrained policy rarely reaches; evaluation stops at the time limit or on success.
    assert all(len(e.rewards) <= 50 for e in episodes)
    # DAgger: the policy drives for the whole episode, the expert labels every state.
    assert labelled.labels.shape == labelled.actions.shape == (50, 3)
    assert not np.array_equal(labelled.labels, labelled.actions)


def test_a_worker_error_comes_back_typed_and_the_pool_stays_usable():
    config = resolve_config(task="Reach")
    before = set(multiprocessing.active_children())
    with Rollouts(config, workers=2) as pool:
        with pytest.raises(CelltwinError, match="no_such_preset"):
            pool.run(EnvSet("no_such_preset", 2, 0), "expert", [1, 2])
        assert len(pool.run(EnvSet(None, 1, 0), "expert", [1, 2, 3])) == 3
        workers = _new_children(before)
    assert len(workers) == 2 and not any(worker.is_alive() for worker in workers)


def test_a_dead_worker_is_a_clear_error():
    from celltwin.training.errors import TrainingError

    config = resolve_config(task="Reach")
    before = set(multiprocessing.active_children())
    with Rollouts(config, workers=2) as pool:
        _new_children(before)[0].kill()
        with pytest.raises(TrainingError, match=r"rollout worker \d died \(exit code -9\)"):
            pool.run(EnvSet(None, 1, 0), "expert", [1, 2])


def test_ctrl_c_stops_the_workers_in_the_middle_of_a_batch():
    config = resolve_config(task="Reach")
    before = set(multiprocessing.active_children())
    with Rollouts(config, workers=2) as pool:
        pool.run(EnvSet(None, 1, 0), "expert", [1, 2])   # envs built, workers ready
        workers = _new_children(before)
        # Ctrl-C while this process waits for a batch of ~100 s whose replies nobody will read.
        ctrl_c = threading.Timer(1.0, signal.pthread_kill,
                                 (threading.main_thread().ident, signal.SIGINT))
        # What a user's Ctrl-C meets: Python's own handler, SIGINT not blocked. A test process
        # that ran other tests first (one worker of the suite) need not be in that state.
        handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
        ctrl_c.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                pool.run(EnvSet(None, 1, 0), "expert", range(2000))
        finally:
            ctrl_c.cancel()
            signal.signal(signal.SIGINT, handler)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    # Each stopped between two episodes and exited by itself (terminate() would give -15).
    assert [worker.exitcode for worker in workers] == [0, 0]

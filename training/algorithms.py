"""Stable-baselines3 set-up from a TrainConfig: vectorized envs, the algorithm, loading.

One place maps config words to SB3 objects, so training, resuming, evaluation and export
agree on them: ``sac``/``tqc`` get a ``MultiInputPolicy`` on the goal Dict (with
``HerReplayBuffer`` when ``her``), ``ppo`` an ``MlpPolicy`` on ``FlattenObservation``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

import celltwin.envs  # noqa: F401  (registers the gym ids, in a fresh subprocess too)
from celltwin.core.errors import Problem
from celltwin.training import legacy
from celltwin.training.config import TrainConfig
from celltwin.training.errors import TrainingError
from celltwin.training.legacy import legacy_custom_objects


def algorithm_class(algo: str):
    if algo == "sac":
        from stable_baselines3 import SAC

        return SAC
    if algo == "tqc":
        from sb3_contrib import TQC

        return TQC
    from stable_baselines3 import PPO

    return PPO


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when a CUDA device is usable, else the CPU; ``cuda`` must be usable."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError(Problem("no CUDA device is usable here", path="device", value=device,
                                    expected="auto or cpu on a machine without a GPU"))
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def probe_env(config: TrainConfig) -> None:
    """Build and close one env in this process: a bad cell, robot, physics file or
    randomization is a typed error here, not a crash inside a vec-env worker process."""
    dr = None if config.randomization in (None, "none") else config.randomization
    EnvFactory(config, dr, config.seed, config.adr and dr is not None)().close()


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and ``taskset``
    narrow), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def env_count(config: TrainConfig) -> int:
    return config.n_envs or usable_cores()


class EnvFactory:
    """Builds one training env. A module-level class, not a closure: SubprocVecEnv pickles
    the factory into each worker, and an instance pickles by reference, so unpickling imports
    this module and with it ``celltwin.envs`` (the gym ids). A closure would be pickled by
    value and its worker would not know the ids."""

    def __init__(self, config: TrainConfig, randomization: str | None, seed: int,
                 adr: bool = False):
        self.env_id, self.kwargs = config.env_id(), config.env_kwargs()
        self.flatten = config.algo == "ppo"
        self.randomization, self.seed = randomization, seed
        self.adr_settings = dict(config.adr_settings) if adr else None

    def __call__(self):
        import gymnasium as gym
        from stable_baselines3.common.monitor import Monitor

        kwargs = dict(self.kwargs)
        if self.adr_settings is not None:
            from celltwin.randomization import ADR, load_randomization
            from celltwin.randomization.adr import ADRSettings

            terms, _ = load_randomization(self.randomization)
            kwargs["adr"] = ADR.from_config(terms, ADRSettings(**self.adr_settings))
        env = gym.make(self.env_id, randomization=self.randomization, **kwargs)
        env = Monitor(env, info_keywords=("is_success",))
        if self.flatten:
            env = gym.wrappers.FlattenObservation(env)
        env.reset(seed=self.seed)
        return env


def make_vec_env(config: TrainConfig, n_envs: int | None = None, seed: int | None = None,
                 randomization: str | None = "config", subproc: bool | None = None):
    """The run's vectorized env: ``n_envs`` copies, env ``i`` seeded ``seed + i``."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    n_envs = n_envs or env_count(config)
    seed = config.seed if seed is None else seed
    dr = config.randomization if randomization == "config" else randomization
    dr = None if dr in (None, "none") else dr
    adr = config.adr and randomization == "config" and dr is not None
    factories = [EnvFactory(config, dr, seed + index, adr) for index in range(n_envs)]
    use_subproc = (config.vec_env == "subproc" and n_envs > 1) if subproc is None else subproc
    venv = SubprocVecEnv(factories) if use_subproc else DummyVecEnv(factories)
    venv.seed(seed)
    return venv


def wrap_normalization(config: TrainConfig, venv, stats_path: Path | None = None, training=True):
    """VecNormalize around ``venv`` when the config asks for it (stats loaded if given)."""
    if not config.normalize:
        return venv
    from stable_baselines3.common.vec_env import VecNormalize

    if stats_path is not None and stats_path.is_file():
        venv = VecNormalize.load(str(stats_path), venv)
    else:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=config.algo == "ppo",
                            gamma=config.hyperparameters.get("gamma", 0.99))
    venv.training = training
    if not training:
        venv.norm_reward = False
    return venv


def make_model(config: TrainConfig, venv, tensorboard_dir: Path | None):
    """A fresh SB3 model for the config (hyperparameters validated by SB3 itself)."""
    cls = algorithm_class(config.algo)
    kwargs = copy.deepcopy(config.hyperparameters)  # SB3 edits policy_kwargs in place
    if config.algo in ("sac", "tqc"):
        policy = "MultiInputPolicy"
        # Identity until demonstrations set its statistics (celltwin.training.features).
        from celltwin.training.features import StandardizedCombinedExtractor, term_differences

        policy_kwargs = kwargs.setdefault("policy_kwargs", {})
        if "features_extractor_class" not in policy_kwargs:
            policy_kwargs["features_extractor_class"] = StandardizedCombinedExtractor
            # VecNormalize scales every input on its own, after which a difference of two
            # inputs is no longer the offset between two points: no differences then.
            differences = [] if config.normalize else term_differences(venv.get_attr("layout")[0])
            policy_kwargs.setdefault("features_extractor_kwargs", {}).setdefault(
                "differences", differences)
        if config.her:
            from stable_baselines3 import HerReplayBuffer

            kwargs["replay_buffer_class"] = HerReplayBuffer
        else:
            kwargs.pop("replay_buffer_kwargs", None)
    else:
        policy = "MlpPolicy"
    try:
        return cls(policy, venv, seed=config.seed, device=resolve_device(config.device),
                   tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
                   verbose=0, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:  # unknown names, bad values
        raise TrainingError(Problem(f"invalid hyperparameters for {config.algo}: {exc}",
                                    path="hyperparameters",
                                    expected=f"keyword arguments of {cls.__name__}")) from None


def load_model(config: TrainConfig, path: Path, env=None, device: str = "cpu"):
    """Load a saved model of the config's algorithm; a damaged file is a TrainingError.

    Without ``env`` (inference, export) the model comes without a replay buffer: SB3 refuses
    to load a HER model without an env, and the buffer is of no use for acting.
    """
    custom = legacy_custom_objects(path)   # runs written by celltwin 0.1's layout
    if env is None and config.algo != "ppo":
        custom.update({"replay_buffer_class": None, "replay_buffer_kwargs": {}, "buffer_size": 1,
                       "learning_starts": 0})
    try:
        return algorithm_class(config.algo).load(str(path), env=env, device=device,
                                                 custom_objects=custom)
    except Exception as exc:
        raise TrainingError(Problem(f"cannot load the model: {type(exc).__name__}: {exc}",
                                    file=str(path),
                                    expected=f"a {config.algo} model saved by celltwin train")) from None


def load_normalizer(path: Path):
    """The VecNormalize saved at ``path`` (its statistics; no env attached), or ``None``."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as handle:
            return legacy.loads(handle.read())
    except Exception as exc:
        raise TrainingError(Problem(f"cannot read normalization statistics: {exc}",
                                    file=str(path))) from None


def read_normalization(path: Path):
    """``(obs_rms, clip_obs, epsilon)`` from a VecNormalize pickle; ``(None, 10, 1e-8)`` if absent."""
    normalizer = load_normalizer(path)
    if normalizer is None:
        return None, 10.0, 1e-8
    rms = normalizer.obs_rms
    if isinstance(rms, dict):
        stats = {key: (np.asarray(r.mean), np.asarray(r.var)) for key, r in rms.items()}
    else:
        stats = (np.asarray(rms.mean), np.asarray(rms.var))
    return stats, float(normalizer.clip_obs), float(normalizer.epsilon)

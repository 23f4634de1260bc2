"""Episodes of a run's task spread over worker processes: expert demonstrations, DAgger rounds
and evaluations.

These episodes, not the learner, take most of a run that starts from demonstrations
(ConveyorPick: 30,000 env steps of demonstrations and 30,000 of DAgger rounds before the first
RL step), and they run one env at a time; SB3's vec env only parallelizes the RL phase. Here
each worker process owns its own envs and scripted experts, runs whole episodes and sends back
arrays.

The results do not depend on how many workers ran them. An :class:`EnvSet` names the
randomized twin as ``count`` envs ("startup draws": each draws its part size, masses and other
startup terms once); env ``d`` is built by a first reset at ``seed + d``. Episode ``i`` of a
call runs on env ``i % count`` with reset seed ``seeds[i]``, and a reset restores the snapshot
and draws from its seed alone (no history), so any worker holding that env gets the same
episode. With ``workers <= 1`` everything runs in this process. Policies act on the CPU with
one torch thread in the workers, as in the trainer's process on a CPU run (a CUDA run's
process keeps torch's default threads, and CPU matrix products may round differently with
other thread counts).
"""

from __future__ import annotations

import io
import multiprocessing
import pickle
import time
import traceback
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from celltwin.core.errors import CelltwinError, Problem
from celltwin.envs.tasks import TASKS  # also registers the gym ids, in a fresh worker too
from celltwin.experts.by_task import make_expert
from celltwin.training.algorithms import usable_cores
from celltwin.training.config import TrainConfig
from celltwin.training.errors import TrainingError


@dataclass(frozen=True)
class EnvSet:
    """``count`` envs under ``randomization`` (``None``: the nominal twin), env ``d`` built by
    a first reset at ``seed + d``."""

    randomization: str | None
    count: int
    seed: int


@dataclass
class Episode:
    """One episode's record (which fields are filled depends on the mode).

    Attributes:
        observations: per key ``(T, ...)``: the observation each action was taken in.
        actions: ``(T, action_dim)`` executed; labels: the expert's action in each observation.
        rewards: ``(T,)``; successes: ``(T,)`` ``info["is_success"]`` after each step.
        final_observation: the observation after the last step.
    """

    observations: dict | None = None
    actions: np.ndarray | None = None
    labels: np.ndarray | None = None
    rewards: np.ndarray | None = None
    successes: np.ndarray | None = None
    final_observation: dict | None = None

    @property
    def success(self) -> bool:
        return bool(self.successes[-1])

    @property
    def total_reward(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


class PolicySnapshot:
    """A CPU copy of an SB3 policy that acts deterministically, as ``model.predict`` does.

    Made with SB3's own policy serialization (constructor arguments and ``state_dict``), so it
    carries no optimizer state and no CUDA tensors into the workers. SAC/TQC ship their actor
    alone (an SB3 policy of its own, whose ``predict`` is the whole policy's), not the critics.
    """

    def __init__(self, model, normalizer=None, flat: bool = False):
        from stable_baselines3.common.policies import BasePolicy

        acting = getattr(model.policy, "actor", None)
        acting = acting if isinstance(acting, BasePolicy) else model.policy
        buffer = io.BytesIO()
        acting.save(buffer)
        self._class = type(acting)
        self._bytes = buffer.getvalue()
        self._normalizer = normalizer
        self._flat = flat
        self._policy = None

    def __getstate__(self):
        return {**self.__dict__, "_policy": None}

    def __call__(self, observation):
        if self._policy is None:
            self._policy = self._class.load(io.BytesIO(self._bytes), device="cpu")
        if self._flat:   # PPO's VecNormalize saw the flattened observation
            observation = flatten(observation)
        if self._normalizer is not None:
            observation = self._normalizer.normalize_obs(observation)
        action, _ = self._policy.predict(observation, deterministic=True)
        return action


class EnvHost:
    """The envs and experts of one worker, built when first asked for, and the episode loop."""

    def __init__(self, config: TrainConfig, interrupted=None):
        self.config = config
        self.envs: dict[tuple[EnvSet, int], object] = {}
        self.experts: dict[tuple[EnvSet, int], object] = {}
        # () -> bool, asked between episodes: a worker stops a batch nobody will read.
        self.interrupted = interrupted or (lambda: False)

    def env(self, env_set: EnvSet, draw: int):
        key = (env_set, draw)
        if key not in self.envs:
            import gymnasium as gym

            env = gym.make(self.config.env_id(), randomization=env_set.randomization,
                           **self.config.env_kwargs())
            env.reset(seed=env_set.seed + draw)   # draws the startup terms
            self.envs[key] = env
        return self.envs[key]

    def expert(self, env_set: EnvSet, draw: int):
        key = (env_set, draw)
        if key not in self.experts:
            self.experts[key] = make_expert(self.env(env_set, draw).unwrapped)
        return self.experts[key]

    def run(self, env_set: EnvSet, mode: str, jobs: Sequence[tuple[int, int]], policy=None):
        """Run ``(index, seed)`` jobs; return ``[(index, Episode)]``.

        Modes: ``expert`` (the expert acts), ``dagger`` (``policy`` acts, the expert labels)
        for the task's full length whatever happens (``env.unwrapped``: HER's bookkeeping and
        DAgger want whole episodes); ``evaluate`` (``policy`` acts until the episode ends).
        """
        horizon = self.config.env.max_episode_steps or TASKS[self.config.task].max_episode_steps
        done = []
        for index, seed in jobs:
            if self.interrupted():
                raise Interrupted
            draw = index % env_set.count
            env = self.env(env_set, draw)
            expert = self.expert(env_set, draw) if mode in ("expert", "dagger") else None
            stepped = env if mode == "evaluate" else env.unwrapped
            observation, _ = stepped.reset(seed=seed)
            if expert is not None:
                expert.reset()
            seen, actions, labels, rewards, successes = [], [], [], [], []
            for _ in range(horizon):
                label = expert(observation) if expert is not None else None
                action = label if mode == "expert" else policy(observation)
                if mode != "evaluate":
                    seen.append(observation)
                    actions.append(action)
                    labels.append(label)
                observation, reward, terminated, truncated, info = stepped.step(action)
                rewards.append(reward)
                successes.append(bool(info.get("is_success")))
                if mode == "evaluate" and (terminated or truncated):
                    break
            episode = Episode(rewards=np.asarray(rewards, dtype=np.float64),
                              successes=np.asarray(successes))
            if mode != "evaluate":
                episode.observations = stack_observations(seen)
                episode.actions = np.asarray(actions, dtype=np.float32)
                if mode == "dagger":
                    episode.labels = np.asarray(labels, dtype=np.float32)
                episode.final_observation = observation
            done.append((index, episode))
        return done

    def forget(self, env_set: EnvSet) -> None:
        for key in [key for key in self.envs if key[0] == env_set]:
            self.envs.pop(key).close()
            self.experts.pop(key, None)

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()
        self.experts.clear()


class Interrupted(Exception):
    """The parent closed the pool or went away while a worker ran a batch."""


def stack_observations(observations: list[dict]) -> dict:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}


def flatten(observations: dict) -> np.ndarray:
    """A Dict observation (or a stack of them) as PPO sees it: gymnasium's Dict sorts its
    keys, and FlattenObservation concatenates them in that order."""
    return np.concatenate([observations[k] for k in sorted(observations)], axis=-1)


def _serve(connection, config: TrainConfig) -> None:
    """A worker process: run what the parent sends until it says close (or goes away)."""
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent handles it and closes the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)   # one core per worker; intra-op threads would fight each other
    # The parent never sends while it waits for a reply, except "close"; end of file (the
    # parent killed) reads as ready too. Either way the batch in hand has no reader.
    host = EnvHost(config, interrupted=connection.poll)
    try:
        while True:
            try:
                command, arguments = connection.recv()
            except (EOFError, KeyboardInterrupt):
                return
            if command == "close":
                return
            try:
                result = ("ok", getattr(host, command)(*arguments))
            except Interrupted:
                return
            except Exception as exc:  # sent back whole: a typed error stays typed
                if not isinstance(exc, CelltwinError):   # a bug: say where, in the worker
                    exc.add_note(f"in rollout worker:\n{traceback.format_exc()}")
                try:
                    pickle.loads(pickle.dumps(exc))   # what the parent will have to do
                    result = ("error", exc)
                except Exception:
                    result = ("error", RuntimeError(traceback.format_exc()))
            try:
                connection.send(result)
            except (BrokenPipeError, OSError):   # the parent is gone (killed): nothing to do
                return
    finally:
        host.close()


class Rollouts:
    """Worker processes that run a run's episodes (see the module's docstring).

    Args:
        config: the run's config (task, env keyword arguments, ``rollout_workers``).
        workers: processes; default ``config.rollout_workers`` (``0``: one per usable core).
            At most 1 runs everything in this process.
    """

    def __init__(self, config: TrainConfig, workers: int | None = None):
        workers = config.rollout_workers if workers is None else workers
        self.workers = workers or usable_cores()
        self._local = EnvHost(config) if self.workers <= 1 else None
        self._processes, self._connections = [], []
        if self._local is None:
            # As SB3's SubprocVecEnv: forkserver where the platform has it (not Windows).
            method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() \
                else "spawn"
            context = multiprocessing.get_context(method)
            try:
                for _ in range(self.workers):
                    parent, child = context.Pipe()
                    process = context.Process(target=_serve, args=(child, config), daemon=True)
                    process.start()
                    child.close()
                    self._processes.append(process)
                    self._connections.append(parent)
            except BaseException:
                self.close()
                raise

    def run(self, env_set: EnvSet, mode: str, seeds: Sequence[int], policy=None) -> list[Episode]:
        """One episode per seed (episode ``i`` on env ``i % env_set.count``), in order."""
        jobs = list(enumerate(int(seed) for seed in seeds))
        if self._local is not None:
            results = self._local.run(env_set, mode, jobs, policy)
        else:
            requests = {worker: ("run", (env_set, mode, jobs[worker::self.workers], policy))
                        for worker in range(min(self.workers, len(jobs)))}
            results = [item for reply in self._ask(requests) for item in reply]
        return [episode for _, episode in sorted(results, key=lambda item: item[0])]

    def forget(self, env_set: EnvSet) -> None:
        """Close the envs of a set no longer needed (each worker's share)."""
        if self._local is not None:
            self._local.forget(env_set)
            return
        self._ask({worker: ("forget", (env_set,)) for worker in range(self.workers)})

    def _ask(self, requests: dict) -> list:
        """Send each worker its request, then read every reply before raising the first
        error: an unread reply would be taken for the answer to the next request."""
        replies, errors, asked = [], [], []
        for worker, request in requests.items():
            try:
                self._connections[worker].send(request)
                asked.append(worker)
            except (BrokenPipeError, OSError):
                errors.append(self._died(worker))
        for worker in asked:
            try:
                status, value = self._connections[worker].recv()
            except (EOFError, OSError):
                status, value = "error", self._died(worker)
            except Exception as exc:   # a reply that cannot be read; keep draining the rest
                status, value = "error", exc
            (errors if status == "error" else replies).append(value)
        if errors:
            raise errors[0]
        return replies

    def _died(self, worker: int) -> TrainingError:
        process = self._processes[worker]
        process.join(timeout=1)
        return TrainingError(Problem(f"rollout worker {worker} died (exit code {process.exitcode})",
                                     expected="a worker that survives its episodes; see its "
                                              "output above"))

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        for connection in self._connections:
            try:
                connection.send(("close", ()))
            except (BrokenPipeError, OSError):
                pass
        # A worker in the middle of a batch (Ctrl-C while waiting) stops at its next episode.
        deadline = time.monotonic() + 10
        for process in self._processes:
            process.join(timeout=max(deadline - time.monotonic(), 0))
            if process.is_alive():
                process.terminate()
                process.join()
        for connection in self._connections:
            connection.close()
        self._processes, self._connections = [], []

    def __enter__(self) -> "Rollouts":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

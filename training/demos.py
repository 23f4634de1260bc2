"""Scripted-expert demonstrations: into the replay buffer, and behaviour cloning of the actor.

Hard goal tasks (PickPlace, ConveyorPick) are nearly unlearnable from a sparse reward in
minutes: the zoo's TQC+HER needs ~1M steps for PandaPickAndPlace. Demonstrations fix the
exploration problem (Nair et al. 2018, arXiv 1709.10089): the actor starts as a behaviour clone
of the scripted expert and the replay buffer starts with the expert's episodes, so RL begins
from a policy that already succeeds and improves it under randomization.

Demonstration episodes are collected in lock-step, one per env slot of the training vec env,
and always run the full time limit (the expert holds the goal after success, at reward 0). All
slots therefore end together, which is what SB3's per-env episode bookkeeping in
``HerReplayBuffer`` needs to take them as ordinary episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.config import TrainConfig


@dataclass
class Demonstrations:
    """Expert transitions, stacked per key.

    Attributes:
        observations: Dict observation arrays, shape ``(N, ...)`` each.
        actions: expert actions, ``(N, action_dim)``.
        episodes: episodes collected; successes: of those, how many succeeded.
    """

    observations: dict
    actions: np.ndarray
    episodes: int
    successes: int

    @property
    def success_rate(self) -> float:
        return self.successes / max(self.episodes, 1)

    def plus(self, other: "Demonstrations") -> "Demonstrations":
        """Both sets of transitions (DAgger aggregates every round's labels)."""
        return Demonstrations({key: np.concatenate([value, other.observations[key]])
                               for key, value in self.observations.items()},
                              np.concatenate([self.actions, other.actions]),
                              self.episodes + other.episodes, self.successes + other.successes)


def collect_into(model, config: TrainConfig, episodes: int, seed: int,
                 into_buffer: bool = True) -> Demonstrations:
    """Run the scripted expert for ``episodes`` episodes; add every transition to the model's
    replay buffer (when it has one) and return the (observation, expert action) pairs.

    DAgger (:func:`relabel`) only with a reactive expert: a phase machine's action depends on
    history (grasp timers, the grasp point), so its labels for states a learner drove it into
    contradict the demonstrations (measured with the old PickPlace phase machine: clone
    success fell from 86% to 14% over three rounds). DART, noise on the executed actions
    (0.3), made the clone worse, not more robust.

    Args:
        into_buffer: also add the transitions to the model's replay buffer (not on resume,
            where the buffer comes back from the checkpoint).
    """
    from twin.envs import MAX_EPISODE_STEPS

    from training.evaluation import STARTUP_DRAWS

    slots = getattr(model, "n_envs", 1) or 1
    pools = [EnvPool(config, -(-STARTUP_DRAWS // slots)) for _ in range(slots)]
    horizon = MAX_EPISODE_STEPS[config.task]
    buffer = getattr(model, "replay_buffer", None) if into_buffer else None
    keep_obs: list[dict] = []
    keep_actions: list[np.ndarray] = []
    done_episodes = successes = 0
    rounds = -(-episodes // slots)
    try:
        for round_index in range(rounds):
            observations = []
            envs, experts = zip(*(pool.next() for pool in pools))
            for slot, (env, expert) in enumerate(zip(envs, experts)):
                obs, _ = env.reset(seed=seed + round_index * slots + slot)
                expert.reset()
                observations.append(obs)
            trajectories = [([], []) for _ in range(slots)]
            succeeded = [False] * slots
            for step in range(horizon):
                actions = np.stack([expert(obs) for expert, obs in zip(experts, observations)])
                results = [env.step(action) for env, action in zip(envs, actions)]
                last = step == horizon - 1
                for slot, (obs, action) in enumerate(zip(observations, actions)):
                    trajectories[slot][0].append(obs)
                    trajectories[slot][1].append(action)
                    succeeded[slot] = bool(results[slot][4]["is_success"])
                next_obs = [r[0] for r in results]
                if buffer is not None:
                    infos = [{"is_success": r[4]["is_success"], "TimeLimit.truncated": last,
                              **({"terminal_observation": r[0]} if last else {})}
                             for r in results]
                    buffer.add(_stack(observations), _stack(next_obs), actions,
                               np.array([r[1] for r in results], dtype=np.float32),
                               np.array([last] * slots), infos)
                observations = next_obs
            for slot in range(slots):
                done_episodes += 1
                successes += succeeded[slot]
                keep_obs.extend(trajectories[slot][0])
                keep_actions.extend(trajectories[slot][1])
    finally:
        for pool in pools:
            pool.close()
    stacked = _stack(keep_obs) if keep_obs else {}
    return Demonstrations(stacked, np.asarray(keep_actions, dtype=np.float32), done_episodes,
                          successes)


def relabel(model, config: TrainConfig, episodes: int, seed: int, pool: "EnvPool",
            normalizer=None) -> Demonstrations:
    """One DAgger round (Ross et al. 2011): the actor drives, the expert labels.

    The current actor acts deterministically in the randomized twin for ``episodes`` episodes;
    every observation it visits is kept with the action the expert would have taken there.
    Cloning on these labels teaches the actor to recover from its own mistakes, which expert
    demonstrations alone never show it. ``successes`` counts the actor's own episodes.

    Args:
        pool: the envs to drive, kept across rounds by the caller (the same startup draws).
    """
    from twin.envs import MAX_EPISODE_STEPS

    act = _actor(model, normalizer, flat=config.algo == "ppo")
    keep_obs: list[dict] = []
    labels: list[np.ndarray] = []
    successes = 0
    for episode in range(episodes):
        env, expert = pool.next()
        obs, _ = env.reset(seed=seed + episode)
        expert.reset()
        for _ in range(MAX_EPISODE_STEPS[config.task]):
            keep_obs.append(obs)
            labels.append(expert(obs))
            obs, _, _, _, info = env.step(act(obs))
        successes += bool(info["is_success"])
    return Demonstrations(_stack(keep_obs), np.asarray(labels, dtype=np.float32), episodes,
                          successes)


class EnvPool:
    """Envs of the run's task under its demonstration randomization, each with its expert,
    handed out in turn: each env draws its own startup terms at its first reset, so the
    demonstrations and DAgger rounds show the clone several parts (see
    :data:`training.evaluation.STARTUP_DRAWS`).

    Args:
        config: the run's config.
        count: how many envs (each its own pybullet world).
    """

    def __init__(self, config: TrainConfig, count: int | None = None):
        import gymnasium as gym

        from training.evaluation import STARTUP_DRAWS

        import twin.envs  # noqa: F401
        from policies.scripted.experts import make_expert

        dr = config.demos.randomization or config.randomization
        dr = None if dr in (None, "none") else dr
        self.envs = []
        try:
            for _ in range(STARTUP_DRAWS if count is None else count):
                self.envs.append(gym.make(config.env_id(), randomization=dr,
                                          **config.env_kwargs()).unwrapped)
        except BaseException:
            self.close()
            raise
        self.experts = [make_expert(env) for env in self.envs]
        self._turn = 0

    def next(self):
        """The next env and its expert."""
        index = self._turn % len(self.envs)
        self._turn += 1
        return self.envs[index], self.experts[index]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _actor(model, normalizer, flat: bool):
    """The model's deterministic action for one raw Dict observation, as in training."""
    from training.evaluation import SB3Policy

    policy = SB3Policy(model, normalizer)
    if not flat:
        return policy
    return lambda observation: policy(flatten(observation))


def flatten(observations: dict) -> np.ndarray:
    """A Dict observation (or a stack of them) as PPO sees it: gymnasium's Dict sorts its
    keys, and FlattenObservation concatenates them in that order."""
    return np.concatenate([observations[k] for k in sorted(observations)], axis=-1)


def _stack(observations: list[dict]) -> dict:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}


# The expert's gripper command is binary (open/close): a squared error that treats it like a
# small position delta lets the clone hover half-open around the grasp and drop the part.
GRIPPER_LOSS_WEIGHT = 4.0


class BehaviourCloner:
    """Fits the policy's deterministic action to the expert's (weighted squared error).

    SAC/TQC: the actor's squashed mean; PPO: the Gaussian's mean (on the flattened
    observation). Only the actor's parameters move; critics are left to RL. With a gripper
    (4-D actions), the last element's error weighs ``gripper_weight``.
    """

    def __init__(self, model, demos: Demonstrations, batch_size: int, learning_rate: float,
                 seed: int, normalizer=None, gripper_weight: float = GRIPPER_LOSS_WEIGHT):
        import torch

        self.policy = model.policy
        observations = demos.observations
        if model.__class__.__name__ == "PPO":
            observations = flatten(observations)
        if normalizer is not None:
            observations = normalizer.normalize_obs(observations)
        self.observations = observations
        module = self.policy.actor if hasattr(self.policy, "actor") else self.policy
        parameters = [p for name, p in module.named_parameters()
                      if not name.startswith(("value_net", "mlp_extractor.value_net"))]
        self.optimizer = torch.optim.Adam(parameters, lr=learning_rate)
        self.generator = np.random.default_rng(seed)
        self.targets = torch.as_tensor(demos.actions, device=self.policy.device)
        self.weights = torch.ones(self.targets.shape[1], device=self.policy.device)
        if self.targets.shape[1] == 4:
            self.weights[-1] = gripper_weight
        self.batch_size = batch_size

    def _update(self, index: np.ndarray) -> float:
        batch = ({key: value[index] for key, value in self.observations.items()}
                 if isinstance(self.observations, dict) else self.observations[index])
        obs_tensor, _ = self.policy.obs_to_tensor(batch)
        if hasattr(self.policy, "actor"):
            predicted = self.policy.actor(obs_tensor, deterministic=True)
        else:
            predicted = self.policy.get_distribution(obs_tensor).distribution.mean
        loss = ((predicted - self.targets[index]) ** 2 * self.weights).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def fit(self, epochs: int) -> float:
        """``epochs`` passes over the demonstrations; the last minibatch's loss.

        The learning rate falls linearly to a tenth over the passes: at a constant rate the
        final weights are wherever Adam's last noisy steps left them, and clones of the same
        data measured 92-98% from one DAgger round to the next.
        """
        count, loss = len(self.targets), float("nan")
        groups = self.optimizer.param_groups
        initial = [group["lr"] for group in groups]
        batches = -(-count // self.batch_size)
        total, done = max(epochs * batches, 1), 0
        self.policy.set_training_mode(True)
        try:
            for _ in range(epochs):
                order = self.generator.permutation(count)
                for start in range(0, count, self.batch_size):
                    for group, lr in zip(groups, initial):
                        group["lr"] = lr * (1.0 - 0.9 * done / total)
                    loss = self._update(order[start:start + self.batch_size])
                    done += 1
        finally:
            for group, lr in zip(groups, initial):
                group["lr"] = lr  # step() (the RL-time anchor) uses the full rate
            self.policy.set_training_mode(False)
        return loss

    def step(self) -> float:
        """One minibatch update (the anchor that keeps RL near the demonstrations)."""
        self.policy.set_training_mode(True)
        loss = self._update(self.generator.integers(0, len(self.targets), self.batch_size))
        self.policy.set_training_mode(False)
        return loss


def behaviour_clone(model, demos: Demonstrations, epochs: int, batch_size: int,
                    learning_rate: float, seed: int, normalizer=None) -> float:
    """Pre-train the actor on the demonstrations; return the final loss (NaN without demos)."""
    if len(demos.actions) == 0:
        return float("nan")
    return BehaviourCloner(model, demos, batch_size, learning_rate, seed, normalizer).fit(epochs)


class AnchorCallback:
    """SB3 callback that keeps RL near the demonstrations (SAC/TQC).

    Early SAC actor updates follow a critic that has not learned anything yet; they pull a
    cloned actor away from the demonstrations (measured on PickPlace: 98% success after
    cloning, 0-3% after 2,500-5,000 SAC steps, with or without a cloning term). So, as in
    Nair et al. 2018: for the first ``warmup_steps`` env steps only the critics learn (the
    actor's optimizer step is held back, which makes the critic learn the value of the cloned
    policy), and from then on one cloning minibatch every ``every`` env steps anchors the actor.
    """

    def __new__(cls, cloner: BehaviourCloner, every: int, warmup_steps: int):
        from stable_baselines3.common.callbacks import BaseCallback

        class _Anchor(BaseCallback):
            # Step counts advance by the number of envs, so every comparison is ">=" on a
            # remembered mark, never "==" on a count that may be skipped.
            def _on_training_start(self) -> None:
                optimizer = self.model.actor.optimizer
                self._step = optimizer.step
                self._frozen = warmup_steps > self.model.num_timesteps
                if self._frozen:
                    optimizer.step = lambda *args, **kwargs: None
                self._next_anchor = max(self.model.num_timesteps, warmup_steps) + every

            def _on_step(self) -> bool:
                if self._frozen and self.num_timesteps >= warmup_steps:
                    self.model.actor.optimizer.step = self._step
                    self._frozen = False
                if not self._frozen and every and self.num_timesteps >= self._next_anchor:
                    self._next_anchor = self.num_timesteps + every
                    self.logger.record("train/bc_anchor_loss", cloner.step())
                return True

            def _on_training_end(self) -> None:
                self.model.actor.optimizer.step = self._step

        return _Anchor()

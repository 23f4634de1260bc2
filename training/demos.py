"""Scripted-expert demonstrations: into the replay buffer, and behaviour cloning of the actor.

Hard goal tasks (PickPlace, ConveyorPick) are nearly unlearnable from a sparse reward in
minutes: the zoo's TQC+HER needs ~1M steps for PandaPickAndPlace. Demonstrations fix the
exploration problem (Nair et al. 2018, arXiv 1709.10089): the actor starts as a behaviour clone
of the scripted expert and the replay buffer starts with the expert's episodes, so RL begins
from a policy that already succeeds and improves it under randomization.

Demonstration episodes run in the rollout workers (:mod:`celltwin.training.rollouts`), always for
the full time limit (the expert holds the goal after success, at reward 0), and enter the replay
buffer in lock-step, one per env slot of the training vec env: all slots end together, which is
what SB3's per-env episode bookkeeping in ``HerReplayBuffer`` needs to take them as ordinary
episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltwin.training.config import TrainConfig
from celltwin.training.rollouts import EnvSet, PolicySnapshot, flatten, stack_observations


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


def demo_env_set(config: TrainConfig, seed: int):
    """The randomized twin demonstrations and DAgger rounds run on: ``STARTUP_DRAWS`` envs
    (:data:`celltwin.training.evaluation.STARTUP_DRAWS`), so the clone sees several parts."""
    from celltwin.training.evaluation import STARTUP_DRAWS

    dr = config.demos.randomization or config.randomization
    return EnvSet(None if dr in (None, "none") else dr, STARTUP_DRAWS, seed)


def collect_into(model, config: TrainConfig, episodes: int, seed: int, rollouts,
                 into_buffer: bool = True) -> Demonstrations:
    """Run the scripted expert for ``episodes`` episodes (rounded up to whole rounds of the
    model's env slots); add every transition to the model's replay buffer (when it has one)
    and return the (observation, expert action) pairs.

    DAgger (:func:`relabel`) only with a reactive expert: a phase machine's action depends on
    history (grasp timers, the grasp point), so its labels for states a learner drove it into
    contradict the demonstrations (measured with the old PickPlace phase machine: clone
    success fell from 86% to 14% over three rounds). DART, noise on the executed actions
    (0.3), made the clone worse, not more robust.

    Args:
        seed: episode ``i`` resets at ``seed + i`` on the env set :func:`demo_env_set` gives.
        rollouts: the :class:`celltwin.training.rollouts.Rollouts` that runs the episodes.
        into_buffer: also add the transitions to the model's replay buffer (not on resume,
            where the buffer comes back from the checkpoint).
    """
    slots = getattr(model, "n_envs", 1) or 1
    total = -(-episodes // slots) * slots
    env_set = demo_env_set(config, seed)
    recorded = rollouts.run(env_set, "expert", [seed + i for i in range(total)])
    rollouts.forget(env_set)   # on an error the run closes the workers, envs and all
    if not recorded:
        return Demonstrations({}, np.zeros((0,), dtype=np.float32), 0, 0)
    buffer = getattr(model, "replay_buffer", None) if into_buffer else None
    if buffer is not None:
        for start in range(0, total, slots):
            _add_round(buffer, recorded[start:start + slots])
    return Demonstrations(_concatenate([e.observations for e in recorded]),
                          np.concatenate([e.actions for e in recorded]).astype(np.float32),
                          total, sum(e.success for e in recorded))


def _add_round(buffer, group: list) -> None:
    """One episode per env slot, added step by step in lock-step: SB3's per-env episode
    bookkeeping in ``HerReplayBuffer`` takes them as ordinary episodes."""
    horizon = len(group[0].actions)
    for step in range(horizon):
        last = step == horizon - 1
        now = {k: np.stack([e.observations[k][step] for e in group]) for k in group[0].observations}
        after = [e.final_observation if last else {k: v[step + 1] for k, v in e.observations.items()}
                 for e in group]
        infos = [{"is_success": bool(e.successes[step]), "TimeLimit.truncated": last,
                  **({"terminal_observation": next_obs} if last else {})}
                 for e, next_obs in zip(group, after)]
        buffer.add(now, stack_observations(after), np.stack([e.actions[step] for e in group]),
                   np.array([e.rewards[step] for e in group], dtype=np.float32),
                   np.array([last] * len(group)), infos)


def relabel(model, config: TrainConfig, episodes: int, seed: int, rollouts, env_set,
            normalizer=None) -> Demonstrations:
    """One DAgger round (Ross et al. 2011): the actor drives, the expert labels.

    The current actor acts deterministically in the randomized twin for ``episodes`` episodes;
    every observation it visits is kept with the action the expert would have taken there.
    Cloning on these labels teaches the actor to recover from its own mistakes, which expert
    demonstrations alone never show it. ``successes`` counts the actor's own episodes.

    Args:
        env_set: the envs to drive, the same across rounds (the same startup draws).
    """
    actor = PolicySnapshot(model, normalizer, flat=config.algo == "ppo")
    recorded = rollouts.run(env_set, "dagger", [seed + i for i in range(episodes)], actor)
    return Demonstrations(_concatenate([e.observations for e in recorded]),
                          np.concatenate([e.labels for e in recorded]).astype(np.float32),
                          episodes, sum(e.success for e in recorded))


def _concatenate(parts: list[dict]) -> dict:
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


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

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


def collect_into(model, config: TrainConfig, episodes: int, seed: int) -> Demonstrations:
    """Run the scripted expert for ``episodes`` episodes; add every transition to the model's
    replay buffer (when it has one) and return the transitions of successful episodes."""
    import gymnasium as gym

    import twin.envs  # noqa: F401
    from policies.scripted.experts import make_expert
    from twin.envs import MAX_EPISODE_STEPS

    dr = config.demos.randomization or config.randomization
    dr = None if dr in (None, "none") else dr
    slots = getattr(model, "n_envs", 1) or 1
    envs = [gym.make(config.env_id(), randomization=dr, **config.env_kwargs()).unwrapped
            for _ in range(slots)]
    experts = [make_expert(env) for env in envs]
    horizon = MAX_EPISODE_STEPS[config.task]
    buffer = getattr(model, "replay_buffer", None)
    keep_obs: list[dict] = []
    keep_actions: list[np.ndarray] = []
    done_episodes = successes = 0
    rounds = -(-episodes // slots)
    try:
        for round_index in range(rounds):
            observations = []
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
                if succeeded[slot]:
                    successes += 1
                    keep_obs.extend(trajectories[slot][0])
                    keep_actions.extend(trajectories[slot][1])
    finally:
        for env in envs:
            env.close()
    stacked = _stack(keep_obs) if keep_obs else {}
    return Demonstrations(stacked, np.asarray(keep_actions, dtype=np.float32), done_episodes,
                          successes)


def _stack(observations: list[dict]) -> dict:
    return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}


def behaviour_clone(model, demos: Demonstrations, epochs: int, batch_size: int,
                    learning_rate: float, seed: int, normalizer=None) -> float:
    """Fit the policy's deterministic action to the expert's (MSE); return the final loss.

    SAC/TQC: the actor's squashed mean; PPO: the Gaussian's mean (on the flattened
    observation). Only the actor's parameters move; critics are left to RL.
    """
    import torch

    if len(demos.actions) == 0:
        return float("nan")
    policy = model.policy
    flatten = model.__class__.__name__ == "PPO"
    observations = demos.observations
    if flatten:
        observations = np.concatenate([observations[key] for key in sorted(observations)], axis=1)
    if normalizer is not None:
        observations = normalizer.normalize_obs(observations)
    module = policy.actor if hasattr(policy, "actor") else policy
    parameters = [p for name, p in module.named_parameters()
                  if not name.startswith(("value_net", "mlp_extractor.value_net"))]
    optimizer = torch.optim.Adam(parameters, lr=learning_rate)
    generator = np.random.default_rng(seed)
    targets = torch.as_tensor(demos.actions, device=policy.device)
    count = len(demos.actions)
    loss_value = float("nan")
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = generator.permutation(count)
        for start in range(0, count, batch_size):
            index = order[start:start + batch_size]
            batch = ({key: value[index] for key, value in observations.items()}
                     if isinstance(observations, dict) else observations[index])
            obs_tensor, _ = policy.obs_to_tensor(batch)
            if hasattr(policy, "actor"):
                predicted = policy.actor(obs_tensor, deterministic=True)
            else:
                predicted = policy.get_distribution(obs_tensor).distribution.mean
            loss = torch.nn.functional.mse_loss(predicted, targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_value = float(loss.detach())
    policy.set_training_mode(False)
    return loss_value

"""The deterministic actor of an SB3 policy as one torch module, ready to export.

SB3 has no export tool: its guide exports ``model.policy`` as it is, without the observation
normalization (VecNormalize statistics live in the env wrapper) and without the action
post-processing that ``predict`` and the env apply afterwards. A bundle must carry both, or a
controller would feed raw observations to a network trained on normalized ones and read
[-1, 1] numbers as metres. :class:`ExportableActor` chains, in order:

1. split the one input vector into the Dict keys (sorted, as SB3 and gymnasium order them),
2. normalize like VecNormalize: ``clip((x - mean) / sqrt(var + eps), -clip, clip)`` for the
   normalized keys only,
3. the actor network's deterministic action: ``tanh(mu)`` for SAC/TQC, ``mu`` (with its tanh)
   for TD3/DDPG, the Gaussian mean for PPO/A2C,
4. ``predict``'s post-processing: squashed actions are unscaled from [-1, 1] to the action
   bounds, unsquashed ones clipped to them,
5. the env's part: the arm elements times the controller scale (m or rad per step), the
   gripper element mapped linearly to an opening in metres (held closed when the task has no
   gripper element, as the env does).

:func:`postprocess_numpy` is steps 4 (clip) and 5 in numpy, used by the exporter's parity check
on SB3's own ``predict`` output, so the two paths share no code but the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from stable_baselines3.common.policies import BasePolicy

from celltwin.policies.errors import ExportError
from celltwin.core.errors import Problem


@dataclass(frozen=True)
class ActionSpec:
    """What the env does with an action; all numbers from the env the policy was trained on.

    Attributes:
        low, high: action space bounds (policy units).
        arm_size: leading action elements that drive the arm.
        scale: controller scale of the arm elements (m or rad per unit action; 1 for
            absolute joint positions).
        uses_gripper: whether the action has a gripper element after the arm.
        width_closed_m, width_open_m: the gripper opening at -1 and +1 [m].
    """

    low: tuple[float, ...]
    high: tuple[float, ...]
    arm_size: int
    scale: float
    uses_gripper: bool
    width_closed_m: float
    width_open_m: float


def postprocess_numpy(actions: np.ndarray, spec: ActionSpec) -> np.ndarray:
    """Env-side post-processing of policy actions (batch, n) -> controller units (batch, arm+1)."""
    actions = np.clip(np.asarray(actions, dtype=np.float64), spec.low, spec.high)
    arm = actions[:, :spec.arm_size] * spec.scale
    grip = actions[:, spec.arm_size] if spec.uses_gripper else np.full(len(actions), -1.0)
    mid = 0.5 * (spec.width_open_m + spec.width_closed_m)
    half = 0.5 * (spec.width_open_m - spec.width_closed_m)
    width = mid + np.clip(grip, -1.0, 1.0) * half
    return np.concatenate([arm, width[:, None]], axis=1)


class ExportableActor(nn.Module):
    """Observation vector in, controller-unit action out (see the module docstring).

    Args:
        model: the SB3 model (SAC, TQC, TD3, DDPG, PPO or A2C), on the CPU.
        input_layout: ``(key, size)`` of each part of the input vector, in order; a single
            ``("flat", n)`` entry for a policy trained on a flat (FlattenObservation) vector.
        obs_rms: ``None``, a mapping key -> ``(mean, var)``, or one ``(mean, var)`` for flat.
        clip_obs, norm_epsilon: VecNormalize's clip and epsilon.
        action: the env's action post-processing.
    """

    def __init__(self, model, input_layout: Sequence[tuple[str, int]], obs_rms, clip_obs: float,
                 norm_epsilon: float, action: ActionSpec):
        super().__init__()
        self.policy = model.policy
        self.policy.set_training_mode(False)
        self.keys = tuple(key for key, _ in input_layout)
        self.flat = self.keys == ("flat",)
        size = sum(n for _, n in input_layout)
        self.input_size = size
        self.slices = []
        start = 0
        for _, n in input_layout:
            self.slices.append((start, start + n))
            start += n
        mean, std, bound = _normalizer(input_layout, obs_rms, clip_obs, norm_epsilon)
        self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("obs_bound", torch.as_tensor(bound, dtype=torch.float32))
        self.kind = _actor_kind(self.policy)
        self.squashed = self.kind in ("sac", "td3") or bool(getattr(self.policy, "squash_output", False))
        self.register_buffer("low", torch.as_tensor(action.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(action.high, dtype=torch.float32))
        self.arm_size = action.arm_size
        self.scale = float(action.scale)
        self.uses_gripper = action.uses_gripper
        self.width_mid = 0.5 * (action.width_open_m + action.width_closed_m)
        self.width_half = 0.5 * (action.width_open_m - action.width_closed_m)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        normalized = (observation - self.obs_mean) / self.obs_std
        normalized = torch.maximum(torch.minimum(normalized, self.obs_bound), -self.obs_bound)
        if self.flat:
            obs = normalized
        else:
            obs = {key: normalized[:, start:stop] for key, (start, stop) in zip(self.keys, self.slices)}
        raw = self._deterministic(obs)
        if self.squashed:
            raw = self.low + 0.5 * (raw + 1.0) * (self.high - self.low)
        action = torch.maximum(torch.minimum(raw, self.high), self.low)
        arm = action[:, :self.arm_size] * self.scale
        if self.uses_gripper:
            grip = torch.clamp(action[:, self.arm_size:self.arm_size + 1], -1.0, 1.0)
        else:
            grip = torch.full_like(arm[:, :1], -1.0)
        return torch.cat([arm, self.width_mid + grip * self.width_half], dim=1)

    def _deterministic(self, obs) -> torch.Tensor:
        policy = self.policy
        if self.kind == "sac":
            actor = policy.actor
            features = actor.extract_features(obs, actor.features_extractor)
            return torch.tanh(actor.mu(actor.latent_pi(features)))
        if self.kind == "td3":
            return policy.actor(obs)
        # BasePolicy's method: ActorCriticPolicy's override returns (pi, vf) pairs when the
        # extractors are not shared; the actor needs only its own.
        features = BasePolicy.extract_features(policy, obs, policy.pi_features_extractor)
        mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
        return torch.tanh(mean) if self.squashed else mean


def _actor_kind(policy) -> str:
    """Which deterministic-action rule the policy follows: sac (SAC/TQC), td3, or pg."""
    from stable_baselines3.common.distributions import DiagGaussianDistribution, \
        StateDependentNoiseDistribution
    from stable_baselines3.common.policies import ActorCriticPolicy

    actor = getattr(policy, "actor", None)
    if actor is not None and hasattr(actor, "latent_pi") and hasattr(actor, "mu"):
        return "sac"
    if actor is not None and hasattr(actor, "mu"):
        return "td3"
    if isinstance(policy, ActorCriticPolicy) and isinstance(
            policy.action_dist, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        return "pg"
    raise ExportError(Problem(f"cannot export a {type(policy).__name__}",
                              value=type(policy).__name__,
                              expected="an SB3 SAC, TQC, TD3, DDPG, PPO or A2C policy with a "
                                       "continuous (Box) action space"))


def _normalizer(layout, obs_rms, clip_obs: float, epsilon: float):
    """Mean, std and clip bound per input element; identity (bound inf) where not normalized."""
    size = sum(n for _, n in layout)
    mean, std, bound = np.zeros(size), np.ones(size), np.full(size, np.inf)
    if obs_rms is None:
        return mean, std, bound
    parts: Mapping
    if isinstance(obs_rms, Mapping):
        parts = obs_rms
    else:
        if len(layout) != 1:
            raise ExportError(Problem("flat normalization statistics for a Dict policy",
                                      expected="one (mean, var) per Dict key"))
        parts = {layout[0][0]: obs_rms}
    start = 0
    for key, n in layout:
        if key in parts:
            key_mean, key_var = (np.asarray(v, dtype=np.float64).reshape(-1) for v in parts[key])
            if key_mean.shape != (n,) or key_var.shape != (n,):
                raise ExportError(Problem("normalization statistics have the wrong size",
                                          path=f"obs_rms.{key}", value=key_mean.shape[0],
                                          expected=f"{n} values"))
            mean[start:start + n] = key_mean
            std[start:start + n] = np.sqrt(key_var + epsilon)
            bound[start:start + n] = clip_obs
        start += n
    unknown = set(parts) - {key for key, _ in layout}
    if unknown:
        raise ExportError(Problem("normalization statistics for keys the policy does not see",
                                  path="obs_rms", value=sorted(unknown),
                                  expected=", ".join(key for key, _ in layout)))
    return mean, std, bound

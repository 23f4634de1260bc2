"""Does the exported ONNX act like the SB3 policy? Recorded observations, two paths, one diff.

The reference path is SB3's own: VecNormalize's formula in numpy (float64, as VecNormalize
computes it), gymnasium's ``spaces.flatten`` for flat policies, ``model.predict(...,
deterministic=True)``, then the env's post-processing (:func:`celltwin.policies.actor.postprocess_numpy`).
The ONNX path is the exported graph in onnxruntime on the raw, concatenated observation. They
share no code but the arithmetic, so a wrong key order, a missing normalization or a wrong
scale shows up as a large difference rather than passing silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltwin.policies.errors import ExportError
from celltwin.policies.manifest import INPUT_KEYS
from celltwin.core.errors import Problem


@dataclass(frozen=True)
class ParityResult:
    """Outcome of a parity check.

    Attributes:
        max_abs_diff: largest |ONNX - SB3| in policy action units ([-1, 1] per element).
        max_abs_diff_units: the same in controller units (m, rad, m of gripper opening).
        samples: observations compared.
        reference: SB3's actions in controller units, (samples, arm + 1).
    """

    max_abs_diff: float
    max_abs_diff_units: float
    samples: int
    reference: np.ndarray


def record_observations(env, trained, count: int, seed: int) -> np.ndarray:
    """Record ``count`` observations: half under random actions, half under the policy.

    Returns:
        float32 array (count, input size): each row the concatenation of the Dict entries in
        :data:`INPUT_KEYS` order, as the ONNX input takes them.
    """
    rows: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    random_part = count // 2
    while len(rows) < count:
        rows.append(concatenate(obs))
        if len(rows) <= random_part:
            action = env.action_space.sample()
        else:
            action = sb3_actions(trained, env.observation_space, [obs])[0]
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(rows).astype(np.float32)


def concatenate(obs: dict) -> np.ndarray:
    """One Dict observation as the ONNX input vector (sorted keys)."""
    return np.concatenate([np.asarray(obs[key], dtype=np.float32).reshape(-1) for key in INPUT_KEYS])


def split(rows: np.ndarray, observation_space) -> dict:
    """ONNX input rows back into a batched Dict observation."""
    out, start = {}, 0
    for key in INPUT_KEYS:
        size = int(observation_space.spaces[key].shape[0])
        out[key] = rows[:, start:start + size]
        start += size
    return out


def sb3_actions(trained, observation_space, observations) -> np.ndarray:
    """SB3's deterministic actions (policy units) for Dict observations, normalized as trained."""
    from gymnasium import spaces

    batch = {key: np.stack([np.asarray(o[key], dtype=np.float32) for o in observations])
             for key in INPUT_KEYS} if isinstance(observations, list) else observations
    if trained.flatten:
        flat = np.stack([spaces.flatten(observation_space, {k: batch[k][i] for k in INPUT_KEYS})
                         for i in range(len(batch[INPUT_KEYS[0]]))])
        obs = _normalize(flat, trained.obs_rms, trained)
    elif trained.obs_rms is not None:
        obs = {key: _normalize(value, trained.obs_rms.get(key), trained)
               for key, value in batch.items()}
    else:
        obs = batch
    actions, _ = trained.model.predict(obs, deterministic=True)
    return np.asarray(actions, dtype=np.float64)


def _normalize(values: np.ndarray, stats, trained) -> np.ndarray:
    """VecNormalize's ``normalize_obs`` for one entry (unchanged when it has no statistics)."""
    if stats is None:
        return values
    mean, var = stats
    return np.clip((values - mean) / np.sqrt(var + trained.norm_epsilon),
                   -trained.clip_obs, trained.clip_obs)


def check_parity(onnx_bytes: bytes, trained, observations: np.ndarray, input_layout,
                 action_spec, tolerance: float) -> ParityResult:
    """Run both paths on ``observations``; raise ExportError when they differ by > tolerance.

    Args:
        input_layout: ``(key, size)`` of each part of an observation row, in order.
    """
    import gymnasium as gym
    import onnxruntime as ort

    from celltwin.policies.actor import postprocess_numpy

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    onnx_out = session.run(None, {name: observations})[0].astype(np.float64)

    space = gym.spaces.Dict({
        key: gym.spaces.Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        for key, size in input_layout})
    reference = postprocess_numpy(sb3_actions(trained, space, split(observations, space)),
                                  action_spec)
    if onnx_out.shape != reference.shape:
        raise ExportError(Problem("ONNX output has the wrong shape", value=onnx_out.shape,
                                  expected=str(reference.shape)))
    half_span = 0.5 * (action_spec.width_open_m - action_spec.width_closed_m)
    unit = np.array([action_spec.scale] * action_spec.arm_size + [half_span or 1.0])
    diff = np.abs(onnx_out - reference)
    result = ParityResult(max_abs_diff=float(np.max(diff / unit)),
                          max_abs_diff_units=float(np.max(diff)),
                          samples=int(len(observations)), reference=reference)
    if not result.max_abs_diff <= tolerance:
        raise ExportError(Problem(
            f"exported ONNX disagrees with the SB3 policy on {len(observations)} recorded "
            "observations", value=result.max_abs_diff,
            expected=f"max |difference| <= {tolerance} (action units)"))
    return result

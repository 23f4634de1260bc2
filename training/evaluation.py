"""Robustness evaluation: success and return of a policy on the nominal twin, the randomized
twin, and over a grid of physics perturbations.

A policy is anything with ``reset()`` and ``__call__(observation) -> action``: the scripted
expert, a stable-baselines3 checkpoint (:func:`load_policy`), or an exported bundle. The
bundle's policy comes from the caller (``bundle_policy``, which ``celltwin evaluate`` sets to
:class:`celltwin.policies.bundle_policy.BundlePolicy`): training comes before export and
never imports it.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.core.errors import CelltwinError, Problem
from celltwin.experts.by_task import make_expert
from celltwin.randomization.knobs import PART_GEOMETRY_PARAMETERS
from celltwin.training.algorithms import load_normalizer
from celltwin.training.legacy import legacy_custom_objects

SB3_ALGORITHMS = ("SAC", "TD3", "DDPG", "PPO", "A2C")
CONTRIB_ALGORITHMS = ("TQC",)


@dataclass(frozen=True)
class Sweep:
    """One swept parameter: ``target.parameter=low:high:count`` (values set absolutely)."""

    target: str
    parameter: str
    values: tuple[float, ...]

    @property
    def label(self) -> str:
        return f"{self.target}.{self.parameter}"

    @classmethod
    def parse(cls, text: str) -> "Sweep":
        name, sep, spec = text.partition("=")
        target, dot, parameter = name.rpartition(".")
        parts = spec.split(":")
        try:
            if not (sep and dot and target and parameter and len(parts) == 3):
                raise ValueError
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1 or not (np.isfinite(low) and np.isfinite(high)):
                raise ValueError
        except ValueError:
            raise CelltwinError(Problem(f"cannot read sweep '{text}'", path="--sweep", value=text,
                                        expected="TARGET.PARAMETER=LOW:HIGH:COUNT, e.g. "
                                                 "part.lateral_friction=0.2:1.2:5")) from None
        return cls(target, parameter, tuple(np.linspace(low, high, count).round(6).tolist()))


@dataclass
class Outcome:
    """Success rate and return over some episodes."""

    episodes: int
    success_rate: float
    mean_return: float
    settings: dict = field(default_factory=dict)


class SB3Policy:
    """A stable-baselines3 model acting deterministically, its observations normalized as in
    training when it was trained with VecNormalize (``normalizer``)."""

    def __init__(self, model, normalizer=None):
        self.model = model
        self.normalizer = normalizer

    def reset(self) -> None:
        pass

    def __call__(self, observation):
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        action, _ = self.model.predict(observation, deterministic=True)
        return action


def load_policy(spec: str, env, bundle_policy: Callable[[Path], object] | None = None):
    """``expert`` (the task's scripted expert), the path of an SB3 ``.zip`` checkpoint, or an
    exported bundle folder, acted by ``bundle_policy(folder)``."""
    if spec == "expert":
        return make_expert(env)
    path = Path(spec)
    if path.is_dir() and (path / "manifest.json").is_file():
        if bundle_policy is None:
            raise CelltwinError(Problem("no bundle policy given to act an exported bundle",
                                        path="POLICY", value=spec,
                                        expected="bundle_policy=celltwin.policies.bundle_policy"
                                                 ".BundlePolicy, as `celltwin evaluate` passes"))
        return bundle_policy(path)
    if not path.is_file():
        raise CelltwinError(Problem("policy not found", path="POLICY", value=spec,
                                    expected="'expert', a bundle folder (celltwin export) or an "
                                             "SB3 checkpoint (.zip)"))
    import stable_baselines3

    import sb3_contrib

    classes = [getattr(stable_baselines3, name) for name in SB3_ALGORITHMS]
    classes += [getattr(sb3_contrib, name) for name in CONTRIB_ALGORITHMS]
    custom = legacy_custom_objects(path)   # a model saved by celltwin 0.1's layout
    for cls in classes:
        try:
            model = cls.load(path, env=env, device="cpu", custom_objects=custom)
        except Exception:  # the wrong algorithm class fails to load; try the next
            continue
        # A run's model.zip sits beside the normalization statistics it was trained with.
        return SB3Policy(model, load_normalizer(path.parent / "vecnormalize.pkl"))
    raise CelltwinError(Problem("not a stable-baselines3 checkpoint this version can load",
                                file=str(path), expected=f"a model saved by one of {SB3_ALGORITHMS}"))


# How many envs stand for "the randomized twin" when data is collected or a policy is judged.
# Startup terms (part size and centre of mass, link masses) are drawn once per env, so one
# env shows a policy one part: the same PickPlace clone measured 90% on one draw and 98% over
# 200 episodes of another, and clones from one env's demonstrations fit its part.
STARTUP_DRAWS = 8


def run_episodes(env, policy, episodes: int, seed: int) -> Outcome:
    """Run ``episodes`` seeded episodes; count successes at the episode's end.

    ``env`` may be a list of envs, taken in turn (see :data:`STARTUP_DRAWS`); then ``policy``
    is either not bound to one env or a list of policies, one per env (scripted experts).
    """
    envs = env if isinstance(env, (list, tuple)) else [env]
    policies = policy if isinstance(policy, (list, tuple)) else [policy] * len(envs)
    successes, returns = 0, []
    for episode in range(episodes):
        env, policy = envs[episode % len(envs)], policies[episode % len(envs)]
        observation, _ = env.reset(seed=seed + episode)
        policy.reset()
        total, done, info = 0.0, False, {}
        while not done:
            observation, reward, terminated, truncated, info = env.step(policy(observation))
            total += float(reward)
            done = terminated or truncated
        successes += bool(info.get("is_success"))
        returns.append(total)
    return Outcome(episodes, successes / max(episodes, 1), float(np.mean(returns)) if returns else 0.0)


def evaluate(policy_spec: str, env_id: str, env_kwargs: dict, *, episodes: int,
             grid_episodes: int, randomization: str | None, sweeps: list[Sweep], seed: int,
             progress=None, bundle_policy: Callable[[Path], object] | None = None) -> dict:
    """Evaluate on the nominal twin, the randomized twin and every grid point of ``sweeps``.

    The randomized twin is :data:`STARTUP_DRAWS` envs taken in turn, as in training's
    evaluations: one env would judge the policy on a single draw of the startup terms.
    ``bundle_policy`` acts an exported bundle (see :func:`load_policy`).
    """
    env = gym.make(env_id, **env_kwargs)
    draws = []
    try:
        policy = load_policy(policy_spec, env, bundle_policy)
        base = env.unwrapped
        results = {"policy": policy_spec, "env": env_id, "seed": seed,
                   "env_kwargs": {key: str(value) for key, value in env_kwargs.items()}}
        base.set_randomization(None)
        results["nominal"] = asdict(run_episodes(env, policy, episodes, seed))
        if randomization and randomization != "none":
            draws = [gym.make(env_id, **env_kwargs) for _ in range(STARTUP_DRAWS - 1)]
            envs = [env, *draws]
            for each in envs:
                each.unwrapped.set_randomization(randomization)
            # A scripted expert is bound to its env; a checkpoint or a bundle is not.
            policies = [policy, *(load_policy(policy_spec, each, bundle_policy)
                                  for each in draws)] if policy_spec == "expert" else policy
            results["randomized"] = asdict(run_episodes(envs, policies, episodes, seed))
            results["randomization"] = randomization
            results["randomized_draws"] = len(envs)
        grid = []
        points = list(itertools.product(*(s.values for s in sweeps))) if sweeps else []
        for index, point in enumerate(points):
            # Part geometry is built once per env (startup); setting new terms starts afresh.
            terms = [{"target": s.target, "parameter": s.parameter, "operation": "set",
                      "when": "startup" if s.parameter in PART_GEOMETRY_PARAMETERS else "reset",
                      "distribution": {"type": "uniform", "low": v, "high": v}}
                     for s, v in zip(sweeps, point)]
            base.set_randomization(terms)
            outcome = run_episodes(env, policy, grid_episodes, seed)
            outcome.settings = {s.label: v for s, v in zip(sweeps, point)}
            grid.append(asdict(outcome))
            if progress:
                progress(index + 1, len(points))
        results["sweeps"] = [{"label": s.label, "values": list(s.values)} for s in sweeps]
        results["grid"] = grid
        return results
    finally:
        for each in (env, *draws):
            each.close()


def write_report(results: dict, out: Path) -> list[Path]:
    """Write ``evaluation.json``, ``evaluation.md`` and (with sweeps) ``heatmap.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [atomic_write_text(out / "evaluation.json", json.dumps(results, indent=2))]
    lines = [f"# Evaluation of `{results['policy']}` on `{results['env']}`", "",
             "| twin | episodes | success | mean return |", "| --- | --- | --- | --- |"]
    for key in ("nominal", "randomized"):
        if key in results:
            r = results[key]
            name = key if key == "nominal" else (f"randomized ({results['randomization']}, "
                                                  f"{results['randomized_draws']} startup draws)")
            lines.append(f"| {name} | {r['episodes']} | {r['success_rate']:.0%} | {r['mean_return']:.2f} |")
    if results["grid"]:
        labels = [s["label"] for s in results["sweeps"]]
        lines += ["", "## Perturbation grid", "", "| " + " | ".join(labels) + " | success | mean return |",
                  "|" + " --- |" * (len(labels) + 2)]
        for point in results["grid"]:
            values = " | ".join(f"{point['settings'][label]:g}" for label in labels)
            lines.append(f"| {values} | {point['success_rate']:.0%} | {point['mean_return']:.2f} |")
        written.append(_heatmap(results, out / "heatmap.png"))
    written.append(atomic_write_text(out / "evaluation.md", "\n".join(lines) + "\n"))
    return written


def _heatmap(results: dict, path: Path) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = results["sweeps"]
    rates = np.array([p["success_rate"] for p in results["grid"]])
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    if len(sweeps) == 1:
        axes.plot(sweeps[0]["values"], rates, marker="o")
        axes.set_xlabel(sweeps[0]["label"])
        axes.set_ylabel("success rate")
        axes.set_ylim(-0.05, 1.05)
    else:
        first, second = sweeps[0], sweeps[1]
        table = rates.reshape(len(first["values"]), len(second["values"]), -1).mean(axis=2)
        image = axes.imshow(table, origin="lower", cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
        axes.set_xticks(range(len(second["values"])), [f"{v:g}" for v in second["values"]])
        axes.set_yticks(range(len(first["values"])), [f"{v:g}" for v in first["values"]])
        axes.set_xlabel(second["label"])
        axes.set_ylabel(first["label"])
        for (row, column), value in np.ndenumerate(table):
            axes.text(column, row, f"{value:.0%}", ha="center", va="center", fontsize=8)
        figure.colorbar(image, label="success rate")
    axes.set_title(f"{results['policy']} on {results['env']}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return atomic_write_bytes(path, buffer.getvalue())

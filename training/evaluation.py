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
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np

from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.core.errors import CelltwinError, Problem
from celltwin.envs.tasks import TASKS
from celltwin.experts.by_task import make_expert
from celltwin.observation import ObservationLayout
from celltwin.randomization.knobs import PART_GEOMETRY_PARAMETERS
from celltwin.training.algorithms import load_normalizer
from celltwin.training.config import load_config
from celltwin.training.legacy import legacy_custom_objects

SB3_ALGORITHMS = ("SAC", "TD3", "DDPG", "PPO", "A2C")
CONTRIB_ALGORITHMS = ("TQC",)
# Bounds on typing mistakes: a grid point runs episodes of a twin, about a second each.
MAX_SWEEP_COUNT = 1_000
MAX_GRID_POINTS = 10_000
MAX_EPISODES = 100_000


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
        """Read ``TARGET.PARAMETER=LOW:HIGH:COUNT``, COUNT from 1 to :data:`MAX_SWEEP_COUNT`."""
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
            raise CelltwinError(Problem(f"cannot read sweep '{text[:80]}'", path="--sweep",
                                        value=text[:80],
                                        expected="TARGET.PARAMETER=LOW:HIGH:COUNT, e.g. "
                                                 "part.lateral_friction=0.2:1.2:5")) from None
        if count > MAX_SWEEP_COUNT:
            raise CelltwinError(Problem(f"a sweep of {count} values", path="--sweep",
                                        value=text[:80],
                                        expected=f"COUNT from 1 to {MAX_SWEEP_COUNT}"))
        return cls(target, parameter, tuple(np.linspace(low, high, count).round(6).tolist()))


def check_grid(sweeps: list[Sweep]) -> None:
    """Refuse more than two swept parameters or a grid beyond :data:`MAX_GRID_POINTS`."""
    if len(sweeps) > 2:
        raise CelltwinError(Problem("at most two --sweep parameters", path="--sweep",
                                    value=len(sweeps), expected="one or two"))
    points = math.prod(len(sweep.values) for sweep in sweeps)
    if points > MAX_GRID_POINTS:
        raise CelltwinError(Problem(f"the grid has {points} points", path="--sweep",
                                    value=points, expected=f"at most {MAX_GRID_POINTS}"))


def _sweep_terms(sweeps: list[Sweep], point) -> list[dict]:
    """The randomization terms that set each swept parameter to its value at ``point``."""
    # Part geometry is built once per env (startup); setting new terms starts afresh.
    return [{"target": s.target, "parameter": s.parameter, "operation": "set",
             "when": "startup" if s.parameter in PART_GEOMETRY_PARAMETERS else "reset",
             "distribution": {"type": "uniform", "low": v, "high": v}}
            for s, v in zip(sweeps, point)]


def _check_sweeps(base, sweeps: list[Sweep]) -> None:
    """Validate the sweeps' terms on the env, each problem named by the ``--sweep`` that
    caused it (the terms are built from the command line, not from a file)."""
    if not sweeps:
        return
    try:
        base.set_randomization(_sweep_terms(sweeps, [s.values[0] for s in sweeps]))
    except CelltwinError as error:
        problems = []
        for problem in error.problems:
            index = re.match(r"terms\[(\d+)\]", problem.path or "")
            if index and int(index.group(1)) < len(sweeps):
                sweep = sweeps[int(index.group(1))]
                problem = replace(problem, path=f"--sweep {sweep.label}", file=None, line=None)
            problems.append(problem)
        raise type(error)(problems) from None
    finally:
        base.set_randomization(None)


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


@dataclass(frozen=True)
class TrainedOn:
    """What a policy's own files say it was trained on.

    Attributes:
        source: the files, in words (``bundle runs/b``, ``checkpoint ... (run config ...)``).
        task: the task's name.
        control: the control mode its actions are for, when known.
        goal_box: ``(low, high)`` of the goals training drew, robot base frame [m], when known.
        tolerance_m: how far outside ``goal_box`` still counts as inside [m].
        config: the run's TrainConfig, for a checkpoint in a run directory.
        episode_steps: the episode length it was trained with, when known.
    """

    source: str
    task: str
    control: str | None = None
    goal_box: tuple | None = None
    tolerance_m: float = 0.05
    config: object = None
    episode_steps: int | None = None

    def env_kwargs(self, env_kwargs: dict) -> dict:
        """``env_kwargs`` with what the policy was trained with where they name nothing: its
        control mode (its actions mean nothing under another) and its episode length (a policy
        trained for a slow cell's longer episodes fails every shorter one)."""
        own = {"control": self.control, "max_episode_steps": self.episode_steps}
        return {**{key: value for key, value in own.items() if value is not None}, **env_kwargs}


def _is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / "manifest.json").is_file()


def trained_on(spec: str, bundle: object = None) -> TrainedOn | None:
    """What the policy ``spec`` names was trained on: from a bundle policy's manifest
    (``bundle``, loaded by the caller), or from the ``config.yaml`` of the run directory a
    checkpoint lies in. ``None`` for the expert and for a checkpoint outside a run."""
    if spec == "expert":
        return None
    if bundle is not None and getattr(bundle, "task", None):
        return TrainedOn(f"bundle {spec}", bundle.task, getattr(bundle, "control", None),
                         getattr(bundle, "goal_bounds", None),
                         getattr(bundle, "success_threshold_m", 0.05),
                         episode_steps=getattr(bundle, "max_episode_steps", None))
    config, folder = _run_config(Path(spec))
    if config is None:
        return None
    return TrainedOn(f"checkpoint {spec} (run config {folder / 'config.yaml'})", config.task,
                     config.env.control, config=config,
                     episode_steps=config.env.max_episode_steps)


def _run_config(path: Path):
    """The TrainConfig of the run directory holding checkpoint ``path`` (``final/model.zip``
    or ``checkpoints/step_N/model.zip``), and that directory; ``(None, None)`` if none."""
    for folder in list(path.parents)[:3]:
        if (folder / "config.yaml").is_file():
            try:
                return load_config(folder / "config.yaml"), folder
            except CelltwinError:
                return None, None   # not a run's config: nothing to learn from it
    return None, None


def load_policy(spec: str, env, bundle_policy: Callable[[Path], object] | None = None):
    """``expert`` (the task's scripted expert), the path of an SB3 ``.zip`` checkpoint, or an
    exported bundle folder, acted by ``bundle_policy(folder)``."""
    if spec == "expert":
        return make_expert(env)
    path = Path(spec)
    if _is_bundle(path):
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
    raise CelltwinError(_unloadable(path, env, custom))


def _unloadable(path: Path, env, custom: dict) -> Problem:
    """Why no algorithm loads ``path`` into ``env``: a checkpoint of another task (said by
    the size of what it observes), another action size, or not a checkpoint at all."""
    generic = Problem("not a stable-baselines3 checkpoint this version can load",
                      file=str(path), expected=f"a model saved by one of {SB3_ALGORITHMS}")
    try:
        from stable_baselines3.common.save_util import load_from_zip_file

        data, _, _ = load_from_zip_file(path, device="cpu", custom_objects=custom,
                                        print_system_info=False)
        saved_obs, saved_action = data["observation_space"], data["action_space"]
        # The goal Dict's 'observation' entry, or (flattened, PPO) all but the two goals.
        spaces = getattr(saved_obs, "spaces", None)
        observed = (int(np.prod(spaces["observation"].shape)) if spaces is not None
                    else int(np.prod(saved_obs.shape)) - 6)
        acts = int(np.prod(saved_action.shape))
    except Exception:  # noqa: BLE001  (anything unreadable or foreign: not our checkpoint)
        return generic
    base = env.unwrapped
    wanted = base.layout.size
    task = base.task.name
    if observed != wanted:
        fits = [name for name, cls in TASKS.items()
                if ObservationLayout(cls.observation_terms).size == observed]
        which = (f"a checkpoint of {' or '.join(fits)}" if fits else
                 "a checkpoint of no task registered here")
        return Problem(f"{which}, not of {task}: it observes {observed} numbers per step, "
                       f"{task} {wanted}", file=str(path),
                       expected=f"--task {fits[0]}" if fits else f"a {task} checkpoint")
    if acts != int(np.prod(env.action_space.shape)):
        return Problem(f"the checkpoint acts with {acts} numbers per step, "
                       f"{base.spec.id if base.spec else task} with "
                       f"{int(np.prod(env.action_space.shape))} (another control mode or robot)",
                       file=str(path), expected="the control mode and robot it was trained with")
    return generic


def check_trained_on(origin: TrainedOn | None, env_id: str) -> None:
    """Refuse to evaluate a policy on another task than its own."""
    task = next((name for name, cls in TASKS.items() if cls.env_id == env_id), None)
    if origin is not None and task is not None and origin.task != task:
        raise CelltwinError(Problem(
            f"a {origin.task} policy ({origin.source}) cannot be evaluated on {task}: it "
            f"observes and acts for {origin.task}", path="--task", value=task,
            expected=f"--task {origin.task}"))


def training_goal_box(origin: TrainedOn | None, env_kwargs: dict):
    """``(low, high)`` of the goals the policy was trained on, base frame [m], or ``None``
    when unknown. A run's box is measured on its training env, built only when the evaluation
    runs on another cell (the same cell draws the same goals)."""
    if origin is None:
        return None
    if origin.goal_box is not None:
        return origin.goal_box
    config = origin.config
    if config is None or _cell_key(env_kwargs.get("cell")) == _cell_key(config.env.cell):
        return None
    try:
        env = gym.make(config.env_id(), **config.env_kwargs())
    except CelltwinError:
        return None   # the training cell is not here: nothing to compare with
    try:
        return env.unwrapped.goal_bounds()
    finally:
        env.close()


def _cell_key(cell) -> str | None:
    if cell is None:
        return None
    path = Path(cell)
    return str(path.resolve()) if path.suffix in (".yaml", ".yml") else str(cell)


def check_goal_region(env, origin: TrainedOn | None, box) -> None:
    """Refuse an env whose goals reach beyond the region the policy was trained on by more
    than ``origin.tolerance_m``: the policy has never seen such a goal."""
    if box is None:
        return
    low, high = (np.asarray(corner, dtype=float) for corner in box)
    env_low, env_high = env.unwrapped.goal_bounds()
    beyond = float(np.max(np.maximum(np.maximum(low - env_low, env_high - high), 0.0)))
    if beyond <= origin.tolerance_m:
        return
    trained = ", ".join(f"{axis} {lo:.3f}..{hi:.3f}" for axis, lo, hi in zip("xyz", low, high))
    drawn = ", ".join(f"{axis} {lo:.3f}..{hi:.3f}"
                      for axis, lo, hi in zip("xyz", env_low, env_high))
    raise CelltwinError(Problem(
        f"this twin draws goals up to {beyond:.3f} m outside the region the policy was "
        f"trained on ({origin.source}: {trained} m; here: {drawn} m, robot base frame)",
        path="--cell", expected="the training cell's goal region, or "
                                "--allow-outside-goal-region"))


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
             progress=None, bundle_policy: Callable[[Path], object] | None = None,
             allow_outside_goal_region: bool = False) -> dict:
    """Evaluate on the nominal twin, the randomized twin and every grid point of ``sweeps``.

    The randomized twin is :data:`STARTUP_DRAWS` envs taken in turn, as in training's
    evaluations: one env would judge the policy on a single draw of the startup terms.
    ``bundle_policy`` acts an exported bundle (see :func:`load_policy`).

    A bundle or a checkpoint in its run directory is evaluated on its own task only, with
    the control mode and episode length it was trained with (unless ``env_kwargs`` names
    them), and on a twin whose goals lie in the region it was trained on (unless
    ``allow_outside_goal_region``).

    Raises:
        CelltwinError: episode counts or a grid out of bounds, a policy of another task,
            goals outside its training region, a policy that cannot be loaded.
    """
    for name, value in (("--episodes", episodes), ("--grid-episodes", grid_episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 1 <= value <= MAX_EPISODES:
            raise CelltwinError(Problem("episodes to run must be a count", path=name,
                                        value=value, expected=f"1 to {MAX_EPISODES}"))
    check_grid(sweeps)
    bundle = None
    if policy_spec != "expert" and _is_bundle(Path(policy_spec)) and bundle_policy is not None:
        bundle = bundle_policy(Path(policy_spec))   # verified before any twin is built
    origin = trained_on(policy_spec, bundle)
    check_trained_on(origin, env_id)
    if origin is not None:
        env_kwargs = origin.env_kwargs(env_kwargs)
    box = None if allow_outside_goal_region else training_goal_box(origin, env_kwargs)
    env = gym.make(env_id, **env_kwargs)
    draws = []
    try:
        check_goal_region(env, origin, box)
        policy = bundle if bundle is not None else load_policy(policy_spec, env, bundle_policy)
        if hasattr(policy, "check_env"):
            policy.check_env(env)
        base = env.unwrapped
        _check_sweeps(base, sweeps)   # a typo is reported before minutes of episodes, not after
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
            base.set_randomization(_sweep_terms(sweeps, point))
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
        written.append(heatmap_png(results, out / "heatmap.png"))
    written.append(atomic_write_text(out / "evaluation.md", "\n".join(lines) + "\n"))
    return written


def heatmap_png(results: dict, path: Path) -> Path:
    """Draw the grid of ``results`` (what :func:`evaluate` returns, or its JSON read back):
    a success curve over one swept parameter, a heatmap over two."""
    import io

    from celltwin.core.plots import new_figure

    sweeps = results["sweeps"]
    rates = np.array([p["success_rate"] for p in results["grid"]])
    figure = new_figure(figsize=(6.4, 4.8))
    axes = figure.subplots()
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
    return atomic_write_bytes(path, buffer.getvalue())

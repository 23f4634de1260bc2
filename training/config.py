"""TrainConfig: everything that defines a training run, validated like cell files.

A run is defined by one YAML document (or the same keys given as ``celltwin train`` flags on
top of the task's preset, the file its task class names in ``training/presets``). The resolved config is written
into the run directory, so a run can be repeated, resumed and exported from that file alone.
Unknown keys, wrong types and out-of-range values are reported all at once, each with its file,
line and dotted path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, field_serializer,
                      field_validator)
from pydantic_core import PydanticCustomError

from celltwin.core.documents import (DOCUMENT_CONFIG, parse_yaml_document, read_document,
                                     require_mapping, validate_document)
from celltwin.core.errors import Problem, did_you_mean, one_of
from celltwin.envs.tasks import TASKS, task_class
from celltwin.physics import CenteredRandomization, PhysicsParams
from celltwin.training.errors import TrainingError

_CONFIG = ConfigDict(**DOCUMENT_CONFIG)
PRESETS_DIR = Path(__file__).parent / "presets"
MAX_EPISODE_STEPS = 1_000_000   # the most control steps an episode, anywhere, may be given


class EnvConfig(BaseModel):
    """The env trained on: ``gym.make(TASKS[task].env_id, **env)``."""

    model_config = _CONFIG
    cell: str | None = None
    robot: str | None = None
    control: Literal["ee_delta", "joint_delta", "joint_position"] = "ee_delta"
    reward: Literal["sparse", "dense"] = "sparse"
    physics: str | None = None
    pick: str | None = None    # the spawn region the task's part starts in (docs/cells.md)
    place: str | None = None   # the task's place target, bin or tray (docs/cells.md)
    # Episode length [control steps], default the task's. A slower cell needs more: with
    # actuation latency the ee_delta controller's TCP covers less per step (its targets start
    # from the measured pose), and PickPlace on pick_station with 80 ms of latency takes about
    # 62 steps where the task gives 50 (docs/calibration.md). gym.make's own keyword.
    max_episode_steps: int | None = Field(None, ge=1, le=MAX_EPISODE_STEPS)


class DemoConfig(BaseModel):
    """Scripted-expert demonstrations: seed the replay buffer and pre-train the actor."""

    model_config = _CONFIG
    episodes: int = Field(0, ge=0)
    bc_epochs: int = Field(200, ge=0)      # behaviour-cloning passes over the demonstrations
    bc_batch_size: int = Field(256, ge=1)
    bc_learning_rate: float = Field(1e-3, gt=0)
    anchor_every_steps: int = Field(1, ge=0)   # one cloning minibatch per N env steps of RL (0: off)
    critic_warmup_steps: int = Field(5000, ge=0)   # env steps of RL during which only critics learn
    # DAgger (Ross et al. 2011), after cloning: run the clone, label the states it visits with
    # the expert's action, clone again on everything. Needs a reactive (Markov) expert.
    dagger_rounds: int = Field(0, ge=0)
    dagger_episodes: int = Field(100, ge=1)   # clone episodes per round
    dagger_epochs: int = Field(40, ge=0)      # cloning passes over all data after each round
    dagger_learning_rate: float = Field(3e-4, gt=0)  # fine-tuning the clone: below bc_learning_rate
    randomization: str | None = None      # default: the run's randomization


class EvalConfig(BaseModel):
    """Evaluation on the nominal and the randomized twin: periodic, and once when training ends.

    Attributes:
        every_steps: env steps between periodic evaluations.
        episodes: episodes per twin at each periodic evaluation.
        target_success: stop early once the randomized twin's success reaches it.
        final_episodes: episodes per twin in the final evaluation (``summary.json``).
    """

    model_config = _CONFIG
    every_steps: int = Field(5000, ge=1)
    episodes: int = Field(20, ge=1)
    target_success: float | None = Field(None, ge=0, le=1)
    final_episodes: int = Field(50, ge=1)


class CenteredMapping(dict):
    """The centred form as the envs take it, ``{"preset": ..., "center": ...}``: a plain
    mapping that also hashes, since rollout workers key their envs by the randomization."""

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items())))


def _randomization_form(value) -> str:
    """Which form ``randomization`` takes: a name or file, or ``{preset, center}``."""
    return "centred" if isinstance(value, (dict, CenteredRandomization)) else "name"


class TrainConfig(BaseModel):
    """A training run.

    Attributes:
        task: a registered task (:data:`celltwin.envs.tasks.TASKS`: ``Reach``, ``PickPlace``...).
        algo: ``sac``, ``tqc`` (sb3-contrib) or ``ppo``.
        her: hindsight experience replay (off-policy algorithms on goal tasks).
        steps: environment steps, summed over all envs.
        n_envs: parallel envs (``0``: one per CPU core).
        vec_env: ``subproc`` (one process per env) or ``dummy`` (in this process).
        rollout_workers: processes for demonstrations, DAgger rounds and evaluations
            (``0``: one per usable core; ``1``: in this process). Results do not depend on it.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        randomization: preset name or YAML file; ``none`` for the nominal twin; or
            ``{preset: NAME, center: physics.yaml}``, its ranges around a calibrated twin
            (kept as that plain mapping, which the envs take as it is).
        normalize: observation normalization (VecNormalize), baked into exported bundles.
        adr: automatic domain randomization over the randomization's uniform terms (one ADR
            state per env, saved in every checkpoint and in ``adr.json``).
        adr_settings: fields of :class:`celltwin.randomization.adr.ADRSettings` (e.g. ``queue_size``).
        hyperparameters: keyword arguments of the SB3 algorithm (``policy_kwargs`` included).
        checkpoint_every_steps: env steps between checkpoints (at most this much is lost on a crash).
        max_wall_s: wall-time budget [s]; once spent, training evaluates once more and stops.
    """

    model_config = _CONFIG
    task: str
    algo: Literal["sac", "tqc", "ppo"] = "sac"
    her: bool = True
    steps: int = Field(20_000, ge=1)
    seed: int = Field(0, ge=0)
    n_envs: int = Field(0, ge=0)
    vec_env: Literal["subproc", "dummy"] = "subproc"
    rollout_workers: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    env: EnvConfig = EnvConfig()
    randomization: Annotated[Union[Annotated[str, Tag("name")],
                                   Annotated[CenteredRandomization, Tag("centred")]],
                             Discriminator(_randomization_form)] = "none"
    normalize: bool = False
    adr: bool = False
    adr_settings: dict[str, int | float] = {}
    hyperparameters: dict[str, Any] = {}
    demos: DemoConfig = DemoConfig()
    eval: EvalConfig = EvalConfig()
    checkpoint_every_steps: int = Field(10_000, ge=1)
    max_wall_s: float | None = Field(None, gt=0)  # once spent: a last evaluation, then stop
    source: str | None = None   # where the config came from (preset or file), for the record

    @field_validator("randomization")
    @classmethod
    def _centre_as_mapping(cls, value):
        if isinstance(value, CenteredRandomization):
            PhysicsParams.load(value.center)   # a bad centre file is a located error here
            return CenteredMapping(value.model_dump())
        return value

    @field_serializer("randomization")
    def _plain_randomization(self, value):
        # a name, or the centred form's plain mapping (see _centre_as_mapping)
        return dict(value) if isinstance(value, dict) else value

    @field_validator("task")
    @classmethod
    def _registered_task(cls, task: str) -> str:
        if task not in TASKS:
            raise PydanticCustomError("unknown_task", "unknown task '{task}'{hint}", {
                "task": task, "hint": did_you_mean(task, TASKS), "expected": one_of(TASKS)})
        return task

    def env_kwargs(self) -> dict:
        """Keyword arguments for ``gym.make`` (``None`` values left out)."""
        return {key: value for key, value in self.env.model_dump().items() if value is not None}

    def env_id(self) -> str:
        return TASKS[self.task].env_id

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _read(path: Path) -> tuple[dict, Any, str]:
    text = read_document(path, error=TrainingError, what="training config")
    data, lines = parse_yaml_document(text, file=str(path), error=TrainingError)
    require_mapping(data, TrainConfig, error=TrainingError, file=str(path), lines=lines,
                    what="training config")
    return data, lines, str(path)


def preset_path(task: str) -> Path:
    """The preset file ``task``'s class names: a name in ``PRESETS_DIR``, or a YAML file."""
    preset = task_class(task, error=TrainingError).preset
    if preset is None:
        raise TrainingError(Problem(f"task '{task}' has no training preset", path="task",
                                    value=task, expected="a config file (CONFIG)"))
    path = Path(preset)
    return path if path.suffix in (".yaml", ".yml") else PRESETS_DIR / f"{preset}.yaml"


def resolve_config(config_file: str | Path | None = None, task: str | None = None,
                   overrides: dict | None = None) -> TrainConfig:
    """Build a TrainConfig: a config file, or the task's preset, with ``overrides`` on top.

    ``overrides`` uses dotted keys (``env.robot``, ``demos.episodes``) with values already
    typed by the CLI; every problem, in the file or the overrides, is reported at once.
    """
    if config_file is None and task is None:
        raise TrainingError(Problem("say what to train", path="task",
                                    expected="--task NAME or a config file"))
    path = Path(config_file) if config_file is not None else preset_path(task)
    data, lines, file = _read(path)
    if task is not None:
        data["task"] = task
    center = (overrides or {}).get("randomization.center")
    if center is not None:   # --dr-center: around the config's (or --dr's) randomization
        overrides = {k: v for k, v in overrides.items() if k != "randomization.center"}
        preset = overrides.pop("randomization", data.get("randomization", "none"))
        if isinstance(preset, dict):
            preset = preset.get("preset")
        data["randomization"] = {"preset": preset, "center": center}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
        node[leaf] = value
    data.setdefault("source", file if config_file is not None else f"preset {path.stem}")
    config = validate_document(data, TrainConfig, error=TrainingError, file=file, lines=lines,
                               what="training config")
    _check_semantics(config, file)
    return _absolute_paths(config)


def _absolute_paths(config: TrainConfig) -> TrainConfig:
    """Files named in the config, made absolute: the run's config.yaml must work from any
    working directory (resume, export, evaluation)."""
    def absolute(value: str | None) -> str | None:
        if value is None or not Path(value).is_file():
            return value   # an example name, a preset name, or a missing file the env reports
        return str(Path(value).resolve())

    env = config.env.model_copy(update={"cell": absolute(config.env.cell),
                                        "physics": absolute(config.env.physics)})
    randomization = config.randomization
    randomization = (CenteredMapping({key: absolute(value) for key, value in randomization.items()})
                     if isinstance(randomization, dict) else absolute(randomization))
    return config.model_copy(update={"env": env, "randomization": randomization})


def _check_semantics(config: TrainConfig, file: str) -> None:
    expert = TASKS[config.task].expert
    problems = []
    if config.her and config.algo == "ppo":
        problems.append(Problem("hindsight experience replay needs an off-policy algorithm",
                                path="her", file=file, value=True,
                                expected="her: false with ppo, or algo sac/tqc"))
    if config.adr and config.randomization == "none":
        problems.append(Problem("automatic domain randomization needs randomization terms",
                                path="adr", file=file, value=True,
                                expected="randomization: a preset or file, or adr: false"))
    if config.adr_settings:
        from celltwin.randomization.adr import ADRSettings

        known = set(ADRSettings.__dataclass_fields__)
        for key in sorted(set(config.adr_settings) - known):
            problems.append(Problem(f"unknown ADR setting '{key}'" + did_you_mean(key, known),
                                    path=f"adr_settings.{key}", file=file,
                                    expected=one_of(sorted(known))))
    if config.demos.episodes and config.env.control != "ee_delta":
        problems.append(Problem("scripted demonstrations drive the ee_delta controller",
                                path="demos.episodes", file=file, value=config.demos.episodes,
                                expected="env.control: ee_delta, or demos.episodes: 0"))
    if config.demos.episodes and expert is None:
        problems.append(Problem(f"task {config.task} has no scripted expert to demonstrate",
                                path="demos.episodes", file=file, value=config.demos.episodes,
                                expected="demos.episodes: 0 for this task"))
    if config.demos.dagger_rounds and expert is not None and not expert.markov:
        problems.append(Problem(
            f"DAgger needs an expert that acts on the observation alone; the {config.task} "
            "expert is a phase machine", path="demos.dagger_rounds", file=file,
            value=config.demos.dagger_rounds, expected="0 for this task"))
    if config.demos.dagger_rounds and not config.demos.episodes:
        problems.append(Problem("DAgger starts from a clone of the demonstrations",
                                path="demos.dagger_rounds", file=file,
                                value=config.demos.dagger_rounds,
                                expected="demos.episodes > 0, or dagger_rounds: 0"))
    if problems:
        raise TrainingError(problems)


def load_config(path: str | Path) -> TrainConfig:
    """Load a resolved config (e.g. a run directory's ``config.yaml``)."""
    return resolve_config(config_file=path)

"""The run directory: what a training run leaves behind, and how it is read back.

Layout::

    RUN_DIR/
      config.yaml          resolved TrainConfig (the run is repeatable from this file alone)
      meta.json            package versions, device, start time
      metrics.csv          one row per evaluation, appended and flushed as it happens
      learning_curve.png   success over env steps (nominal and randomized twin)
      tensorboard/         SB3's TensorBoard logs
      checkpoints/
        step_000010000/    model.zip, replay_buffer.pkl, vecnormalize.pkl, adr.json, state.json
        LATEST             name of the newest complete checkpoint
      final/               model.zip (+ vecnormalize.pkl), state.json: the finished run
      summary.json         evaluated success and timings of the finished run

Checkpoints and ``final/`` are written into a hidden folder that is renamed into place when
complete (:func:`write_folder`), and ``LATEST`` is replaced atomically after that;
``state.json`` lists the SHA-256 of every file.
A kill at any moment therefore leaves the previous checkpoint intact and findable, and a
damaged one is detected when loading instead of resuming from garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celltwin.training.algorithms import load_model, read_normalization
from celltwin.training.config import TrainConfig, load_config
from celltwin.training.errors import TrainingError
from celltwin.core.atomic import atomic_write_text
from celltwin.core.errors import Problem

KEEP_CHECKPOINTS = 2


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    """Paths of one run directory and its checkpoints."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.meta_path = self.path / "meta.json"
        self.metrics_path = self.path / "metrics.csv"
        self.curve_path = self.path / "learning_curve.png"
        self.tensorboard_dir = self.path / "tensorboard"
        self.checkpoints_dir = self.path / "checkpoints"
        self.final_dir = self.path / "final"
        self.summary_path = self.path / "summary.json"

    # ------------------------------------------------------------------ config and records
    def config(self) -> TrainConfig:
        if not self.path.is_dir():
            raise TrainingError(Problem("run directory not found", file=str(self.path),
                                        expected="a folder written by `celltwin train`"))
        if not self.config_path.is_file():
            raise TrainingError(Problem("not a run directory: config.yaml is missing",
                                        file=str(self.path),
                                        expected="a folder written by `celltwin train`"))
        return load_config(self.config_path)

    def summary(self) -> dict:
        try:
            return json.loads(self.summary_path.read_text())
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------------ checkpoints
    def write_checkpoint(self, step: int, write_files, state: dict) -> Path:
        """Write a checkpoint atomically.

        Args:
            step: env steps done; names the checkpoint.
            write_files: ``callable(folder)`` that writes the checkpoint's files into ``folder``.
            state: progress to record (``num_timesteps``, wall time, ...).
        """
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        name = f"step_{step:09d}"
        final = write_folder(self.checkpoints_dir / name, write_files, state)
        atomic_write_text(self.checkpoints_dir / "LATEST", name + "\n")
        self._prune(keep=name)
        return final

    def write_final(self, write_files, state: dict) -> Path:
        """Write ``final/`` the way checkpoints are written: staged, hashed, renamed."""
        return write_folder(self.final_dir, write_files, state)

    def _prune(self, keep: str) -> None:
        done = sorted(p for p in self.checkpoints_dir.glob("step_*") if p.is_dir())
        for old in done[:-KEEP_CHECKPOINTS]:
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
        for partial in self.checkpoints_dir.glob(".step_*.partial"):
            shutil.rmtree(partial, ignore_errors=True)

    def latest_checkpoint(self) -> "Checkpoint":
        """The newest complete checkpoint, verified; a clear TrainingError otherwise."""
        pointer = self.checkpoints_dir / "LATEST"
        if not pointer.is_file():
            raise TrainingError(Problem("no checkpoint to resume from", file=str(pointer),
                                        expected="a run that wrote at least one checkpoint "
                                                 "(see checkpoint_every_steps)"))
        return Checkpoint.load(self.checkpoints_dir / pointer.read_text().strip())


@dataclass
class Checkpoint:
    """A verified checkpoint folder."""

    path: Path
    state: dict = field(default_factory=dict)

    @property
    def step(self) -> int:
        return int(self.state["num_timesteps"])

    def file(self, name: str) -> Path | None:
        return self.path / name if name in self.state.get("files", {}) else None

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        state_path = path / "state.json"
        try:
            state = json.loads(state_path.read_text())
            files = state["files"]
            int(state["num_timesteps"])
        except FileNotFoundError:
            raise TrainingError(Problem("checkpoint is missing", file=str(state_path),
                                        expected="a complete checkpoint folder")) from None
        except (OSError, ValueError, KeyError, TypeError):
            raise TrainingError(Problem("checkpoint state is corrupt", file=str(state_path),
                                        expected="the state.json a checkpoint writes")) from None
        for name, digest in files.items():
            member = path / name
            if not member.is_file():
                raise TrainingError(Problem("checkpoint file is missing", file=str(member),
                                            expected=f"listed in {state_path.name}"))
            if sha256(member) != digest:
                raise TrainingError(Problem("checkpoint file is corrupt (SHA-256 differs from "
                                            "the one recorded when it was written)",
                                            file=str(member), expected=digest))
        return cls(path, state)


def write_folder(target: Path, write_files, state: dict) -> Path:
    """Write a folder atomically: files go into a hidden staging folder, are fsynced and hashed
    into ``state.json``, and the folder is renamed into place. A reader sees the old folder or
    the complete new one; a kill leaves at most a staging folder, removed on the next write."""
    staging = target.parent / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_files(staging)
    for member in staging.rglob("*"):   # on disk before anything can point at them
        if member.is_file():
            with open(member, "rb") as handle:
                os.fsync(handle.fileno())
    files = {str(p.relative_to(staging)): sha256(p) for p in sorted(staging.rglob("*"))
             if p.is_file()}
    atomic_write_text(staging / "state.json", json.dumps({**state, "files": files}, indent=2))
    _fsync_dir(staging)
    if target.exists():
        # Moved aside first, so there is never a moment without a complete folder on disk.
        aside = target.parent / f".{target.name}.old"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)
    _fsync_dir(target.parent)
    return target


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Trained:
    """A finished (or checkpointed) policy, ready to run or export.

    Attributes:
        model: the SB3 model, on the CPU.
        config: the run's TrainConfig.
        obs_rms: observation normalization: ``None``, or for Dict observations a mapping
            key -> ``(mean, var)``, for flat ones one ``(mean, var)``.
        clip_obs, norm_epsilon: VecNormalize's clip and epsilon.
        flatten: the policy sees ``FlattenObservation`` of the Dict (PPO).
        summary: the run's ``summary.json``.
    """

    model: Any
    config: TrainConfig
    obs_rms: Any = None
    clip_obs: float = 10.0
    norm_epsilon: float = 1e-8
    flatten: bool = False
    summary: dict = field(default_factory=dict)

    def env_kwargs(self) -> dict:
        return self.config.env_kwargs()


def load_trained(run_dir: str | Path, checkpoint: bool = False) -> Trained:
    """Load a run's final model (or, with ``checkpoint``, its newest checkpoint)."""
    run = RunDir(run_dir)
    config = run.config()
    folder = run.latest_checkpoint().path if checkpoint else run.final_dir
    if not checkpoint and (folder / "state.json").is_file():
        Checkpoint.load(folder)   # hashes verified: a damaged final model is a clear error
    model_path = folder / "model.zip"
    if not model_path.is_file():
        raise TrainingError(Problem("the run has no final model (unfinished? resume it with "
                                    "`celltwin train --resume`)", file=str(model_path),
                                    expected="final/model.zip"))
    model = load_model(config, model_path)
    obs_rms, clip_obs, epsilon = read_normalization(folder / "vecnormalize.pkl")
    return Trained(model=model, config=config, obs_rms=obs_rms, clip_obs=clip_obs,
                   norm_epsilon=epsilon, flatten=config.algo == "ppo", summary=run.summary())

"""Fixtures shared by the test modules (see tests/README.md for how the suite is organised)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The suite runs on as many workers as cores (`-n auto`): a worker's torch, and the
    # processes it starts, keep to one thread each instead of each spreading over every core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@dataclass
class CliResult:
    """What one ``celltwin`` command did: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys):
    """Run ``celltwin ARGS...`` in this process, through :func:`celltwin.cli.main.main`.

    The exit code is what the console script would exit with: ``main``'s return value, or
    argparse's ``SystemExit`` code for usage errors and ``--help``. A subprocess adds only an
    interpreter start; the tests that need a real process (console script, signals, a fresh
    interpreter) start one themselves.
    """
    from celltwin.cli.main import main

    def run(*args) -> CliResult:
        capsys.readouterr()   # what the test printed before is not the command's
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def reacher_bundle(tmp_path_factory) -> Path:
    """A Reach bundle that works: SAC whose actor is set to tanh(10 (desired - achieved)).

    Training one to success takes minutes; a hand-set actor inside a real SB3 model goes
    through the same export (normalization, squash, scaling, parity) in seconds.
    """
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC

    import celltwin.envs  # noqa: F401
    from celltwin.policies.export import ExportOptions, export_trained
    from celltwin.training.config import TrainConfig
    from celltwin.training.run_dir import Trained

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = gym.make("celltwin/Reach-v0")
        model = SAC("MultiInputPolicy", env, learning_starts=10**9, buffer_size=100, seed=0,
                    policy_kwargs=dict(net_arch=dict(pi=[], qf=[8])))
        with torch.no_grad():
            weight = torch.zeros_like(model.policy.actor.mu.weight)
            weight[:, 0:3] = -10.0 * torch.eye(3)  # achieved_goal
            weight[:, 3:6] = 10.0 * torch.eye(3)   # desired_goal
            model.policy.actor.mu.weight.copy_(weight)
            model.policy.actor.mu.bias.zero_()
        trained = Trained(model=model, config=TrainConfig(task="Reach", algo="sac"),
                          summary={"success_nominal": 1.0})
        path = tmp_path_factory.mktemp("bundles") / "reacher"
        export_trained(trained, path, options=ExportOptions(samples=200, torchscript=False))
        env.close()
    finally:
        torch.set_num_threads(threads)
    return path

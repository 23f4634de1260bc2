"""`celltwin evaluate`: the robustness report of a policy, with a real heatmap."""

from __future__ import annotations

import json

import pytest

import celltwin.envs  # noqa: F401
from celltwin.training.evaluation import Sweep, evaluate
from celltwin.core.errors import CelltwinError


@pytest.mark.slow
def test_evaluate_expert_over_friction_and_mass_writes_a_real_heatmap(cli, tmp_path):
    out = tmp_path / "eval"
    result = cli("evaluate", "expert", "--task", "PickPlace", "--episodes", "4",
                 "--grid-episodes", "3", "--sweep", "part.lateral_friction=0.02:1.0:3",
                 "--sweep", "part.mass_kg=0.1:3.0:2", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "evaluation.json").read_text())
    assert report["nominal"]["success_rate"] >= 0.75
    assert "randomized" in report
    rates = {(p["settings"]["part.lateral_friction"], p["settings"]["part.mass_kg"]): p["success_rate"]
             for p in report["grid"]}
    assert len(rates) == 6
    assert rates[(0.02, 0.1)] < rates[(1.0, 0.1)]  # slippery parts slip out of the grasp
    assert (out / "heatmap.png").stat().st_size > 5000
    assert "Perturbation grid" in (out / "evaluation.md").read_text()


def test_geometry_sweeps_rebuild_the_part_at_each_grid_point():
    report = evaluate("expert", "celltwin/PickPlace-v0", {}, episodes=1, grid_episodes=1,
                      randomization=None, seed=0,
                      sweeps=[Sweep.parse("part.size_scale=0.8:1.2:2"),
                              Sweep.parse("part.com_z_m=-0.01:0.01:2")])
    assert [point["settings"] for point in report["grid"]] == [
        {"part.size_scale": s, "part.com_z_m": c} for s in (0.8, 1.2) for c in (-0.01, 0.01)]
    assert all(point["episodes"] == 1 for point in report["grid"])


@pytest.mark.parametrize("text", ["part.mass_kg", "part=0:1:3", "part.mass_kg=a:1:3",
                                  "part.mass_kg=0:1:0", ".mass_kg=0:1:2"])
def test_bad_sweeps_are_clear_errors(text):
    with pytest.raises(CelltwinError, match="cannot read sweep"):
        Sweep.parse(text)


@pytest.mark.parametrize("args", [["nope.zip", "--task", "PickPlace"], ["expert", "--task", "Pick"],
                                  ["expert", "--task", "PickPlace", "--sweep", "prat.mass_kg=0:1:2"]])
def test_evaluate_cli_bad_input_exits_2(cli, tmp_path, args):
    result = cli("evaluate", *args, "--episodes", "1", "--out", tmp_path / "x")
    assert result.returncode == 2, (args, result.stderr)
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_a_sweep_typo_is_named_by_its_sweep_before_any_episode(cli, tmp_path):
    result = cli("evaluate", "expert", "--task", "PickPlace", "--episodes", "50",
                 "--sweep", "part.mass_kg=0.1:0.3:2", "--sweep", "part.frictoin=0.2:1:2",
                 "--out", tmp_path / "x")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    line = result.stderr
    assert line.startswith("error: --sweep part.frictoin: ") and "'lateral_friction'" in line
    assert not (tmp_path / "x").exists()


def test_episodes_rotate_over_a_list_of_envs():
    # The randomized twin of an evaluation is several envs, each with its own startup draw.
    import gymnasium as gym
    import numpy as np

    from celltwin.training.evaluation import run_episodes

    seen = []

    class Recording(gym.Wrapper):
        def reset(self, **kwargs):
            seen.append((self, kwargs["seed"]))
            return super().reset(**kwargs)

    class Still:
        def reset(self):
            pass

        def __call__(self, observation):
            return np.zeros(3, dtype=np.float32)

    envs = [Recording(gym.make("celltwin/Reach-v0", max_episode_steps=2)) for _ in range(3)]
    try:
        outcome = run_episodes(envs, Still(), 5, seed=7)
        assert outcome.episodes == 5
        assert seen == [(envs[0], 7), (envs[1], 8), (envs[2], 9), (envs[0], 10), (envs[1], 11)]
    finally:
        for env in envs:
            env.close()


def test_the_randomized_twin_of_an_evaluation_is_several_startup_draws():
    # As in training's evaluations: one env would judge the policy on one part only.
    import gymnasium as gym

    from celltwin.experts.by_task import make_expert
    from celltwin.training.evaluation import STARTUP_DRAWS, run_episodes

    report = evaluate("expert", "celltwin/PickPlace-v0", {}, episodes=STARTUP_DRAWS + 2,
                      grid_episodes=1, randomization="standard", seed=5, sweeps=[])
    envs = [gym.make("celltwin/PickPlace-v0", randomization="standard")
            for _ in range(STARTUP_DRAWS)]
    try:
        expected = run_episodes(envs, [make_expert(env) for env in envs], STARTUP_DRAWS + 2, seed=5)
        sizes = {env.unwrapped.randomizer.startup_values["part.size_scale"] for env in envs}
    finally:
        for env in envs:
            env.close()
    assert report["randomized_draws"] == STARTUP_DRAWS and len(sizes) == STARTUP_DRAWS
    assert report["randomized"]["success_rate"] == expected.success_rate
    assert report["randomized"]["mean_return"] == expected.mean_return

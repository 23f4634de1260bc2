"""The SAC/TQC input extractor: fixed standardization and term differences computed in the net."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import celltwin.envs  # noqa: F401  (registers the envs)
from celltwin.training.features import (StandardizedCombinedExtractor, standardize_from,
                                        term_differences)


def _env(task: str):
    return gym.make(f"celltwin/{task}-v0").unwrapped


def _batch(observations: list[dict]) -> dict:
    return {key: torch.as_tensor(np.stack([o[key] for o in observations]))
            for key in observations[0]}


def test_differences_follow_the_observation_layout():
    pick, reach = _env("PickPlace"), _env("Reach")
    try:
        entries = term_differences(pick.layout)
        ee, part = pick.layout.slices["ee_position"], pick.layout.slices["object_position"]
        assert entries == [["achieved_goal", 0, "desired_goal", 0, 3],
                           ["observation", ee.start, "observation", part.start, 3]]
        assert term_differences(reach.layout) == [["achieved_goal", 0, "desired_goal", 0, 3]]
    finally:
        pick.close()
        reach.close()


def test_extractor_appends_the_part_relative_to_the_tcp_and_the_goal_relative_to_the_part():
    env = _env("PickPlace")
    try:
        observations = [env.reset(seed=seed)[0] for seed in range(4)]
        extractor = StandardizedCombinedExtractor(env.observation_space,
                                                  differences=term_differences(env.layout))
        plain = StandardizedCombinedExtractor(env.observation_space)
        assert extractor.features_dim == plain.features_dim + 6
        batch = _batch(observations)
        features = extractor(batch).numpy()
        for row, observation in zip(features, observations):
            vector = observation["observation"]
            expected = np.concatenate([
                observation["desired_goal"] - observation["achieved_goal"],
                env.layout.get(vector, "object_position") - env.layout.get(vector, "ee_position")])
            np.testing.assert_allclose(row[-6:], expected, atol=1e-6)
        # Standardizing from these observations (through a real SAC policy, every copy of the
        # extractor) makes every input that varied zero-mean, the differences included.
        from stable_baselines3 import SAC

        model = SAC("MultiInputPolicy", env, buffer_size=10, policy_kwargs={
            "features_extractor_class": StandardizedCombinedExtractor, "net_arch": [8],
            "features_extractor_kwargs": {"differences": term_differences(env.layout)}})
        stacked = {key: np.stack([o[key] for o in observations]) for key in observations[0]}
        assert standardize_from(model.policy, stacked)
        standardized = model.policy.actor.features_extractor(batch).numpy()
        varying = features.std(axis=0) > 1e-3
        assert varying[[-6, -5, -3, -2]].all()  # horizontal offsets vary with the seed
        np.testing.assert_allclose(standardized[:, varying].mean(axis=0), 0.0, atol=1e-5)
    finally:
        env.close()


@pytest.mark.parametrize("entry, named", [
    (["observation", 0, "nowhere", 0, 3], "nowhere"),
    (["observation", 0, "desired_goal", 2, 3], "desired_goal[2:5]"),
])
def test_a_difference_outside_the_observation_is_refused_by_name(entry, named):
    env = _env("PickPlace")
    try:
        with pytest.raises(ValueError) as error:
            StandardizedCombinedExtractor(env.observation_space, differences=[entry])
        assert named in str(error.value)
    finally:
        env.close()


def test_models_get_the_differences_keep_them_when_saved_and_export_them(tmp_path):
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    from celltwin.policies.export import ExportOptions, export_trained
    from celltwin.training.algorithms import make_model
    from celltwin.training.config import resolve_config
    from celltwin.training.run_dir import Trained

    config = resolve_config(task="PickPlace", overrides={
        "randomization": "none", "hyperparameters": {"buffer_size": 100, "policy_kwargs": {
            "net_arch": [16]}}})
    venv = DummyVecEnv([lambda: gym.make("celltwin/PickPlace-v0")])
    model = make_model(config, venv, None)
    layout = venv.envs[0].unwrapped.layout
    assert model.policy.actor.features_extractor.differences == [
        tuple(entry) for entry in term_differences(layout)]
    normalized = make_model(config.model_copy(update={"normalize": True}), venv, None)
    assert normalized.policy.actor.features_extractor.differences == []

    env = venv.envs[0].unwrapped
    observations = [env.reset(seed=seed)[0] for seed in range(8)]
    stacked = {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    assert standardize_from(model.policy, stacked)
    model.save(tmp_path / "model.zip")
    loaded = SAC.load(tmp_path / "model.zip", env=venv, device="cpu")
    batch = _batch(observations)
    for before, after in ((model.policy.actor, loaded.policy.actor),
                          (model.policy.critic, loaded.policy.critic)):
        assert after.features_extractor.differences == before.features_extractor.differences
        np.testing.assert_array_equal(after.features_extractor(batch).numpy(),
                                      before.features_extractor(batch).numpy())
    result = export_trained(Trained(model=loaded, config=config,
                                    summary={"success_nominal": 0.0}),
                            tmp_path / "bundle", options=ExportOptions(samples=200))
    assert result.parity_max_abs_diff <= 1e-5
    venv.close()

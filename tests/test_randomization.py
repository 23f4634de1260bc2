"""Domain randomization: each term does what it claims, seeds reproduce, defaults come back."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import celltwin.envs  # noqa: F401
from celltwin.core.resources import asset_path
from celltwin.randomization import (ADR, ADRSettings, RandomizationConfig, RandomizationError,
                                    preset_names)


def make(task="PickPlace", **kwargs):
    return gym.make(f"celltwin/{task}-v0", **kwargs).unwrapped


def term(target, parameter, low, high, operation="set", when="reset", **extra):
    return {"target": target, "parameter": parameter, "operation": operation, "when": when,
            "distribution": {"type": "uniform", "low": low, "high": high}, **extra}


def dynamics(env, body, link=-1):
    return env.world.client.getDynamicsInfo(env.world.body(body), link)


# ------------------------------------------------------------------ each term type, read back
@pytest.mark.parametrize("parameter, index, low, high", [
    ("mass_kg", 0, 0.3, 0.4), ("lateral_friction", 1, 1.5, 1.6), ("restitution", 5, 0.3, 0.4),
    ("rolling_friction", 6, 0.01, 0.02), ("spinning_friction", 7, 0.02, 0.03)])
def test_body_terms_reach_pybullet(parameter, index, low, high):
    env = make(randomization=[term("part", parameter, low, high)])
    _, info = env.reset(seed=0)
    value = dynamics(env, "part")[index]
    assert low <= value <= high
    assert info["randomization"][f"part.{parameter}"] == pytest.approx(value)
    env.close()


def test_link_mass_scale_and_joint_terms_reach_pybullet():
    env = make(randomization=[term("arm/panda_link3", "mass_kg", 2.0, 2.0, operation="scale"),
                              term("arm/panda_joint2", "damping", 0.7, 0.7),
                              term("arm/panda_joint2", "force_limit", 0.5, 0.5, operation="scale")])
    nominal = env.world.physics_params()
    env.reset(seed=0)
    link3 = env.world.link_index("arm", "panda_link3")
    assert dynamics(env, "arm", link3)[0] == pytest.approx(2 * nominal.bodies["arm/panda_link3"].mass_kg)
    joint2 = env.world.link_index("arm", "panda_link2")
    slot = list(env.robot.arm_joint_indices).index(joint2)
    assert env.robot.arm_force_limits[slot] == pytest.approx(0.5 * 87.0)
    assert env.world.joint_value("arm/panda_joint2", "damping") == pytest.approx(0.7)
    env.close()


def test_joint_damping_term_slows_the_joint():
    # pybullet has no getter for joint damping: read it back through the motion it damps.
    def progress(damping):
        env = make("Reach", randomization=[term("arm/*", "damping", damping, damping)])
        env.reset(seed=0)
        start = env.robot.joint_positions()
        env.robot.command_joint_positions(start + 0.3)
        env.world.step()
        moved = float(np.sum(env.robot.joint_positions() - start))  # towards the target
        env.close()
        return moved

    assert progress(10.0) < 0.6 * progress(0.0)


def test_robot_gain_latency_and_conveyor_speed():
    env = make("ConveyorPick", randomization=[term("arm", "position_gain", 0.3, 0.3),
                                              term("arm", "latency_steps", 2, 2),
                                              term("infeed", "speed_mps", 0.25, 0.25)])
    env.reset(seed=0)
    assert env.robot.position_gain == pytest.approx(0.3)
    assert env.world.latency_steps("arm") == 2
    assert env.world.conveyors["infeed"].speed_mps == pytest.approx(0.25)
    env.close()


def test_actuation_noise_and_scale_change_motion():
    def travel(randomization):
        # A third of the full jog: slow enough that the arm's joint limits do not cap both.
        env = make("Reach", randomization=randomization)
        obs, _ = env.reset(seed=0)
        start = obs["observation"][:3].copy()
        for _ in range(10):
            obs, *_ = env.step(np.array([0.3, 0.0, 0.0]))
        env.close()
        return obs["observation"][:3] - start

    nominal = travel(None)
    halved = travel([term("arm", "action_scale", 0.5, 0.5, operation="scale")])
    noisy = travel([term("arm", "action_noise_std", 0.5, 0.5)])
    assert halved[0] < 0.7 * nominal[0]
    assert np.abs(noisy - nominal).max() > 0.005


def test_sensor_noise_bias_drop_and_delay():
    truth_env = make()
    truth, _ = truth_env.reset(seed=3)
    layout = truth_env.layout
    biased = make(randomization=[term("sensor/object_position", "bias", 0.01, 0.01)])
    obs, _ = biased.reset(seed=3)
    assert np.allclose(layout.get(obs["observation"], "object_position")
                       - layout.get(truth["observation"], "object_position"), 0.01, atol=1e-6)
    assert np.array_equal(obs["achieved_goal"], truth["achieved_goal"])  # goals stay exact
    noisy = make(randomization=[term("sensor", "noise_std", 0.01, 0.01)])
    obs, _ = noisy.reset(seed=3)
    assert 0.001 < np.abs(obs["observation"] - truth["observation"]).mean() < 0.05
    delayed = make("Reach", randomization=[term("sensor", "delay_steps", 2, 2)])
    obs0, _ = delayed.reset(seed=0)
    obs1, *_ = delayed.step(np.array([1.0, 0, 0]))
    obs2, *_ = delayed.step(np.array([1.0, 0, 0]))
    obs3, *_ = delayed.step(np.array([1.0, 0, 0]))
    assert np.array_equal(obs1["observation"], obs0["observation"])
    assert np.array_equal(obs2["observation"], obs0["observation"])
    assert not np.array_equal(obs3["observation"], obs0["observation"])
    dropped = make("Reach", randomization=[term("sensor", "drop_probability", 1.0, 1.0)])
    first, _ = dropped.reset(seed=0)
    second, *_ = dropped.step(np.array([1.0, 0, 0]))
    third, *_ = dropped.step(np.array([1.0, 0, 0]))
    assert np.array_equal(second["observation"], third["observation"])  # reading held
    for env in (truth_env, biased, noisy, delayed, dropped):
        env.close()


def test_geometry_terms_move_bodies():
    env = make(randomization=[term("arm", "base_x_m", 0.02, 0.02, operation="add"),
                              term("part", "spawn_yaw_rad", 0.5, 0.5, operation="add")])
    env.reset(seed=0)
    base, _ = env.world.pose("arm")
    assert base[0] == pytest.approx(0.02, abs=1e-9)
    _, orientation = env.world.pose("part")
    yaw = env.world.client.getEulerFromQuaternion(orientation.tolist())[2]
    assert yaw == pytest.approx(0.5, abs=1e-6)
    env.close()


def test_colour_term_scales_the_nominal_colour_without_compounding():
    env = make(randomization=[term("part", "color_scale", 0.5, 0.5, operation="scale")])
    nominal = np.array(env.world.client.getVisualShapeData(env.world.body("part"))[0][7][:3])
    for seed in range(5):
        env.reset(seed=seed)
    colour = np.array(env.world.client.getVisualShapeData(env.world.body("part"))[0][7][:3])
    assert np.allclose(colour, 0.5 * nominal, atol=1e-3)
    env.close()


def test_camera_and_light_terms_change_the_rendered_frame():
    def frame(randomization):
        env = make(randomization=randomization, render_mode="rgb_array", render_width=64,
                   render_height=48)
        env.reset(seed=0)
        image = env.render().astype(int)
        env.close()
        return image

    nominal = frame(None)
    assert np.array_equal(nominal, frame(None))
    moved = frame([term("camera", "eye_x_m", 0.3, 0.3, operation="add")])
    lit = frame([term("light", "direction_z", -1.5, -1.5, operation="add")])
    assert np.abs(moved - nominal).mean() > 1.0
    assert np.abs(lit - nominal).mean() > 1.0


# ------------------------------------------------------------------ seeding and defaults
def test_same_seed_reproduces_samples_and_episodes():
    a, b = make(randomization="standard"), make(randomization="standard")
    obs_a, info_a = a.reset(seed=11)
    obs_b, info_b = b.reset(seed=11)
    assert info_a["randomization"] == info_b["randomization"]
    for key in obs_a:
        assert np.array_equal(obs_a[key], obs_b[key])
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 4))
    for action in actions:
        step_a, step_b = a.step(action), b.step(action)
        for key in step_a[0]:
            assert np.array_equal(step_a[0][key], step_b[0][key])
    _, info_c = a.reset(seed=12)
    assert info_c["randomization"] != info_a["randomization"]
    a.close()
    b.close()


def test_defaults_restored_exactly_after_1000_randomized_resets():
    env, plain = make(randomization="aggressive"), make()
    for seed in range(1000):
        env.reset(seed=seed)
        if seed % 100 == 0:
            env.step(env.action_space.sample())
    env.set_randomization(None)
    env.reset(seed=0)
    plain.reset(seed=0)
    assert env.world.physics_params() == plain.world.physics_params()
    ours, theirs = env.world.client, plain.world.client
    for name in env.world.bodies:
        body = env.world.body(name)
        for link in range(-1, ours.getNumJoints(body)):
            assert ours.getDynamicsInfo(body, link) == theirs.getDynamicsInfo(body, link), (name, link)
        if ours.getNumJoints(body):
            assert [i[6] for i in map(lambda j: ours.getJointInfo(body, j), range(ours.getNumJoints(body)))] == \
                   [i[6] for i in map(lambda j: theirs.getJointInfo(body, j), range(theirs.getNumJoints(body)))]
    assert env.robot.position_gain == plain.robot.position_gain
    assert np.array_equal(env.robot.arm_force_limits, plain.robot.arm_force_limits)
    assert env.world.latency_steps("arm") == 0
    assert env.world.pose("arm")[0].tolist() == plain.world.pose("arm")[0].tolist()
    env.close()
    plain.close()


def test_randomization_off_changes_nothing_over_many_resets():
    env = make()
    before = env.world.physics_params()
    for seed in range(200):
        env.reset(seed=seed)
        env.step(np.zeros(4))
    assert env.world.physics_params() == before
    env.close()


# ------------------------------------------------------------------ presets and bad input
@pytest.mark.parametrize("preset", ["none", "light", "standard", "aggressive"])
@pytest.mark.parametrize("task", ["Reach", "PickPlace", "ConveyorPick"])
def test_presets_load_on_every_task(preset, task):
    env = make(task, randomization=preset)
    obs, info = env.reset(seed=0)
    assert (len(info["randomization"]) > 0) == (preset != "none")
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
    assert all(np.all(np.isfinite(v)) for v in obs.values())
    env.close()


def test_preset_names_and_bad_terms():
    assert preset_names() == ["none", "light", "standard", "aggressive"]
    with pytest.raises(RandomizationError, match="did you mean 'standard'"):
        make(randomization="standrd")
    with pytest.raises(RandomizationError, match="matches nothing"):
        make(randomization=[term("prat", "mass_kg", 1, 2)])
    with pytest.raises(RandomizationError, match="does not apply"):
        make(randomization=[term("part", "mass_kgs", 1, 2)])
    with pytest.raises(RandomizationError, match="fixed in place"):
        make(randomization=[term("table", "mass_kg", 1, 2)])


def test_randomization_file_errors_name_their_path(tmp_path):
    path = tmp_path / "dr.yaml"
    path.write_text("terms:\n  - target: part\n    parameter: mass_kg\n"
                    "    distribution: {type: uniform, low: 2, high: 1}\n    when: sometimes\n")
    with pytest.raises(RandomizationError) as caught:
        RandomizationConfig.load(path)
    paths = {p.path for p in caught.value.problems}
    assert any(p.startswith("terms[0].distribution") for p in paths), paths
    assert "terms[0].when" in paths


# ------------------------------------------------------------------ ADR
def adr_for(low=0.8, high=1.2, queue=8):
    config = RandomizationConfig(terms=[term("part", "mass_kg", low, high, operation="scale")])
    return ADR.from_config(config, ADRSettings(boundary_probability=1.0, queue_size=queue,
                                               step_fraction=0.05))


def test_adr_widens_on_success_and_narrows_on_failure():
    adr = adr_for()
    label = "part.mass_kg"
    start = list(adr.ranges[label])
    for _ in range(8):
        adr.record(label, "high", True)
        adr.record(label, "low", True)
    wider = adr.ranges[label]
    assert wider[0] < start[0] and wider[1] > start[1]
    for _ in range(8 * 3):
        adr.record(label, "high", False)
    assert adr.ranges[label][1] < wider[1]
    assert adr.ranges[label][1] >= adr.ranges[label][0]
    assert [h["side"] for h in adr.history][:2] == ["high", "low"]


def test_adr_leaves_startup_terms_alone():
    # Drawn once per env: pinning their boundaries at a reset would test nothing.
    config = RandomizationConfig.load(asset_path("randomization/standard.yaml"))
    adr = ADR.from_config(config)
    startup = {t.label for t in config.terms if t.when == "startup"}
    uniform_reset = {t.label for t in config.terms
                     if t.when != "startup" and t.distribution.type == "uniform"}
    assert startup and not startup & set(adr.ranges)
    assert set(adr.ranges) == uniform_reset


def test_adr_respects_hard_limits():
    adr = adr_for(queue=1)
    label = "part.mass_kg"
    for _ in range(1000):
        adr.record(label, "high", True)
        adr.record(label, "low", True)
    low, high = adr.ranges[label]
    assert (low, high) == pytest.approx(adr.limits[label])
    assert low >= 0.0


def test_adr_in_the_env_pins_boundaries_and_learns_from_a_synthetic_signal(tmp_path, monkeypatch):
    adr = adr_for(queue=4)
    env = make(randomization=[term("part", "mass_kg", 0.8, 1.2, operation="scale")], adr=adr)
    # The synthetic success signal: every step succeeds, and the next reset reports it.
    monkeypatch.setattr(env.task, "is_success", lambda distance: True)
    for seed in range(40):
        env.reset(seed=seed)
        value = env.randomizer.values["part.mass_kg"]
        low, high = adr.ranges["part.mass_kg"]
        assert env.randomizer.pinned is not None
        assert value == pytest.approx((low if env.randomizer.pinned[1] == "low" else high) * 0.1)
        assert env.step(np.zeros(4))[4]["is_success"]
    assert adr.ranges["part.mass_kg"][1] > 1.2 and adr.history
    saved = adr.save(tmp_path / "adr.json")
    assert ADR.load(saved).ranges == adr.ranges
    env.close()

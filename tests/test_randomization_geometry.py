"""Part geometry randomization: centre of mass, size and shape, read back from pybullet."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import celltwin.envs  # noqa: F401
from celltwin.core.errors import WorldError
from celltwin.parts import PartGeometry
from celltwin.randomization import RandomizationError

TABLE_TOP_Z = 0.75  # table_top.yaml: the table is 0.75 m high
CUBE = 0.04         # table_top.yaml: the part is a 4 cm cube


def make(task="PickPlace", **kwargs):
    return gym.make(f"celltwin/{task}-v0", **kwargs).unwrapped


def startup(parameter, low, high, operation="set", target="part", when="startup"):
    return {"target": target, "parameter": parameter, "operation": operation, "when": when,
            "distribution": {"type": "uniform", "low": low, "high": high}}


def shapes(values, when="startup"):
    return {"target": "part", "parameter": "shape", "operation": "set", "when": when,
            "distribution": {"type": "choice", "values": values}}


COM_TERMS = [startup(f"com_{axis}_m", -0.01, 0.01, "add") for axis in "xyz"]


def part_info(env):
    client, body = env.world.client, env.world.body("part")
    return client.getCollisionShapeData(body, -1)[0], client.getDynamicsInfo(body, -1)


def centre_in_base(env, part="part"):
    """The part's centre from pybullet's pose of its body (the inertial frame) and its COM."""
    client, body = env.world.client, env.world.body(part)
    com_world, orientation = client.getBasePositionAndOrientation(body)
    local_com = np.array(client.getDynamicsInfo(body, -1)[3])
    rotation = np.array(client.getMatrixFromQuaternion(orientation)).reshape(3, 3)
    return env.reader.to_base(np.array(com_world) - rotation @ local_com)


# ------------------------------------------------------------------ the geometry itself
def test_variants_keep_the_part_size_and_clamp_the_centre_of_mass():
    cube = PartGeometry("box", (0.02, 0.02, 0.02))
    assert cube.variant("cylinder").half_extents_m == (0.02, 0.02, 0.02)  # 4 cm across and high
    assert cube.variant("sphere", 1.5).radius_m == pytest.approx(0.03)
    slab = PartGeometry("box", (0.05, 0.03, 0.01))
    assert slab.variant("cylinder").half_extents_m == (0.03, 0.03, 0.01)  # fits the footprint
    assert slab.variant("sphere").radius_m == 0.01
    assert cube.variant(com_m=(0.5, -0.005, -0.5)).com_m == (0.02, -0.005, -0.02)
    with pytest.raises(ValueError, match="cone"):
        cube.variant("cone")


# ------------------------------------------------------------------ each term, read back
def test_com_offset_reaches_pybullet_is_reported_and_follows_the_seed():
    def draw(seed):
        env = make(randomization=COM_TERMS)
        obs, info = env.reset(seed=seed)
        _, dynamics = part_info(env)
        reported = [info["randomization"][f"part.com_{axis}_m"] for axis in "xyz"]
        assert list(dynamics[3]) == pytest.approx(reported, abs=1e-12)
        assert np.abs(reported).max() <= 0.01 and np.any(np.array(reported) != 0)
        # The observation holds the part's centre, not the centre of mass pybullet reports.
        assert np.allclose(obs["observation"][7:10], centre_in_base(env), atol=1e-6)
        env.close()
        return reported

    first = draw(3)
    assert draw(3) == first
    assert draw(4) != first


def test_size_scale_scales_the_shape_and_the_part_rests_on_the_table():
    env = make(randomization=[startup("size_scale", 1.25, 1.25, "scale")])
    obs, info = env.reset(seed=0)
    shape, dynamics = part_info(env)
    assert info["randomization"]["part.size_scale"] == 1.25
    assert shape[3] == pytest.approx((1.25 * CUBE,) * 3)
    mass = dynamics[0]  # pybullet derives the inertia from the new shape
    assert dynamics[2] == pytest.approx((mass * 2 * (1.25 * CUBE) ** 2 / 12,) * 3)
    placed = env.reader.to_world(obs["observation"][7:10])
    assert placed[2] == pytest.approx(TABLE_TOP_Z + 1.25 * CUBE / 2, abs=1e-6)  # not sunk in
    for _ in range(10):
        obs, *_ = env.step(np.zeros(4))
    settled = env.reader.to_world(obs["observation"][7:10])
    assert abs(settled[2] - placed[2]) < 5e-4  # it rests there, neither fell nor popped up
    env.close()


@pytest.mark.parametrize("shape, geom, dimensions", [
    ("box", "GEOM_BOX", (CUBE, CUBE, CUBE)),
    ("cylinder", "GEOM_CYLINDER", (CUBE, CUBE / 2, 0.0)),   # pybullet: (height, radius)
    ("sphere", "GEOM_SPHERE", (CUBE / 2,) * 3)])
def test_shape_term_builds_the_chosen_shape(shape, geom, dimensions):
    env = make(randomization=[shapes([shape])])
    obs, info = env.reset(seed=0)
    data, _ = part_info(env)
    assert info["randomization"]["part.shape"] == shape
    assert data[2] == getattr(env.world.client, geom)
    assert data[3] == pytest.approx(dimensions)
    placed = env.reader.to_world(obs["observation"][7:10])
    assert placed[2] == pytest.approx(TABLE_TOP_Z + CUBE / 2, abs=1e-6)
    env.close()


def test_each_env_draws_its_own_shape_once():
    drawn = []
    for seed in range(8):
        env = make(randomization=[shapes(["box", "cylinder", "sphere"])])
        first = env.reset(seed=seed)[1]["randomization"]["part.shape"]
        assert env.reset(seed=seed + 100)[1]["randomization"]["part.shape"] == first  # startup
        assert part_info(env)[0][2] == getattr(env.world.client, f"GEOM_{first.upper()}")
        drawn.append(first)
        env.close()
    assert len(set(drawn)) > 1


# ------------------------------------------------------------------ bad terms
@pytest.mark.parametrize("parameter, when", [("size_scale", "reset"), ("com_x_m", "interval"),
                                             ("shape", "reset")])
def test_geometry_terms_are_startup_terms_only(parameter, when):
    extra = {"every_n_steps": 5} if when == "interval" else {}
    bad = (shapes(["sphere"], when) if parameter == "shape"
           else startup(parameter, 1.0, 1.1, when=when))
    with pytest.raises(RandomizationError) as caught:
        make(randomization=[startup("mass_kg", 0.1, 0.2, when="reset"), {**bad, **extra}])
    problem = caught.value.problems[0]
    assert (problem.path, problem.value, problem.expected) == ("terms[1].when", when, "startup")


def test_shape_names_and_numbers_do_not_mix():
    with pytest.raises(RandomizationError) as caught:
        make(randomization=[{**shapes(["box", "cone"]), "operation": "scale"}])
    assert {p.path for p in caught.value.problems} == {"terms[0].distribution", "terms[0].operation"}
    with pytest.raises(RandomizationError, match="takes numbers"):
        make(randomization=[{**startup("size_scale", 1, 1), "distribution": {
            "type": "choice", "values": ["big"]}}])


# ------------------------------------------------------------------ what follows the new body
def test_observation_task_and_conveyor_follow_the_rebuilt_body():
    env = make("ConveyorPick", randomization=[startup("size_scale", 1.5, 1.5, "scale", "can"),
                                              *[{**t, "target": "can"} for t in COM_TERMS]])
    nominal_goal = env.task.goal_world.copy()
    nominal_half_height = env.world.part_geometries["can"].half_height_m
    built = env.world.body("can")
    obs, _ = env.reset(seed=0)
    body = env.world.body("can")
    assert body != built and env.task.object_body == env.reader.object_body == body
    fresh = make("ConveyorPick")
    assert env.world.client.getNumBodies() == fresh.world.client.getNumBodies()  # old one gone
    fresh.close()
    assert np.allclose(obs["observation"][7:10], centre_in_base(env, "can"), atol=1e-6)
    # The tray goal is where the bigger part's centre lies on the tray floor.
    assert env.task.goal_world[2] - nominal_goal[2] == pytest.approx(0.5 * nominal_half_height)
    # The belt carries the new body.
    start = env.world.part_pose("can")[0]
    for _ in range(5):
        obs, *_ = env.step(np.zeros(4))
    assert np.linalg.norm(env.world.part_pose("can")[0][:2] - start[:2]) > 0.01
    assert np.allclose(obs["observation"][7:10], centre_in_base(env, "can"), atol=1e-6)
    env.close()


def test_success_is_judged_on_the_rebuilt_body():
    env = make(randomization=[shapes(["cylinder"]), *COM_TERMS])
    env.reset(seed=0)
    env.world.set_part_pose("part", env.reader.to_world(env.task.goal), [0, 0, 0, 1])
    *_, info = env.step(np.zeros(4))
    assert info["is_success"]
    env.close()


def test_snapshots_taken_before_a_rebuild_cannot_be_restored():
    env = make()
    before = env.world.snapshot()
    env.world.rebuild_part("part", size_scale=1.1)
    with pytest.raises(WorldError, match="before a part was rebuilt"):
        env.world.restore(before)
    env.close()


# ------------------------------------------------------------------ back to nominal
ALL_GEOMETRY = [*COM_TERMS, startup("size_scale", 0.8, 1.2, "scale"),
                shapes(["cylinder", "sphere"]), startup("mass_kg", 0.3, 0.4),
                startup("lateral_friction", 0.3, 0.4), startup("color_scale", 0.5, 0.5, "scale")]


def test_nominal_twin_comes_back_exactly_after_geometry_randomization():
    env, plain = make(randomization=ALL_GEOMETRY), make()
    env.reset(seed=1)
    env.step(env.action_space.sample())
    assert part_info(env)[0][2] != part_info(plain)[0][2]
    env.set_randomization(None)
    env.reset(seed=0)
    plain.reset(seed=0)
    assert part_info(env) == part_info(plain)  # shape type, dimensions, COM, mass, friction...
    ours, theirs = env.world.client, plain.world.client
    assert (ours.getVisualShapeData(env.world.body("part"))
            == theirs.getVisualShapeData(plain.world.body("part")))
    assert env.world.physics_params() == plain.world.physics_params()
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 4))
    for seed in (0, 7):
        ours_obs, _ = env.reset(seed=seed)
        theirs_obs, _ = plain.reset(seed=seed)
        for action in actions:
            for key in ours_obs:
                assert np.array_equal(ours_obs[key], theirs_obs[key]), (seed, key)
            ours_obs, *_ = env.step(action)
            theirs_obs, *_ = plain.step(action)
    env.close()
    plain.close()


def test_switching_randomization_redraws_the_geometry_on_a_fresh_twin():
    env = make(randomization=[shapes(["sphere"])])
    env.reset(seed=0)
    env.set_randomization([shapes(["cylinder"])])
    _, info = env.reset(seed=0)
    assert info["randomization"]["part.shape"] == "cylinder"
    assert part_info(env)[0][2] == env.world.client.GEOM_CYLINDER
    env.close()

"""Gymnasium environments: API conformance, determinism, bad actions, blow-ups, experts."""

from __future__ import annotations

import itertools
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import celltwin.envs  # noqa: F401  (registers celltwin/*)
from celltwin.experts.by_task import make_expert
from celltwin.robots import controller_modes, robot_model_names
from celltwin.envs import ENV_IDS
from celltwin.envs.tasks import TASKS as REGISTRY
from celltwin.core.errors import EnvError

TASKS = tuple(REGISTRY)


def make(task: str, **kwargs):
    return gym.make(f"celltwin/{task}-v0", **kwargs)


@pytest.mark.parametrize("control", controller_modes())
@pytest.mark.parametrize("robot", robot_model_names())
@pytest.mark.parametrize("task", TASKS)
def test_gymnasium_and_sb3_check_env(task, robot, control):
    env = make(task, robot=robot, control=control)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # unbounded Box warnings are expected
            gym_check_env(env.unwrapped, skip_render_check=True)
            sb3_check_env(env.unwrapped, warn=False)
    finally:
        env.close()


def test_flattened_observations_pass_the_checkers_too():
    env = gym.wrappers.FlattenObservation(make("PickPlace", reward="dense").unwrapped)
    gym_check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    assert obs.shape == env.observation_space.shape == (3 + 3 + 19,)
    # SB3's checker calls any env with compute_reward a goal env and wants a Dict; what
    # matters is that PPO with a plain MLP trains on the flat vector.
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    assert model.num_timesteps >= 128
    env.close()


def rollout(env, seed: int, actions: np.ndarray) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    trace = [np.concatenate([obs[k] for k in sorted(obs)])]
    for action in actions:
        obs, *_ = env.step(action)
        trace.append(np.concatenate([obs[k] for k in sorted(obs)]))
    return trace


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_and_actions_give_identical_observations(task):
    rng = np.random.default_rng(7)
    first_env, second_env = make(task), make(task)
    actions = rng.uniform(-1, 1, (40, first_env.action_space.shape[0]))
    first = rollout(first_env, 3, actions)
    rollout(first_env, 99, actions[:10])  # something else in between
    again = rollout(first_env, 3, actions)
    other = rollout(second_env, 3, actions)
    for a, b, c in zip(first, again, other):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    assert not np.array_equal(first[0], rollout(first_env, 4, actions[:1])[0]), "seeds must matter"
    first_env.close()
    second_env.close()


def test_non_finite_actions_are_refused_and_large_ones_clipped():
    env = make("PickPlace")
    env.reset(seed=0)
    for bad in ([np.nan, 0, 0, 0], [0, np.inf, 0, 0], [0, 0, 0]):
        with pytest.raises(EnvError, match="action"):
            env.step(np.array(bad, dtype=float))
    obs_big, *_ = env.step(np.array([50.0, -50.0, 50.0, 9.0]))
    env.reset(seed=0)
    obs_one, *_ = env.step(np.array([1.0, -1.0, 1.0, 1.0]))
    for key in obs_big:
        assert np.array_equal(obs_big[key], obs_one[key])
        assert np.all(np.isfinite(obs_big[key]))
    env.close()


def test_physics_blowup_truncates_with_a_flag_and_reset_recovers():
    env = make("PickPlace")
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    base.world.client.resetBaseVelocity(base.task.object_body, [1e5, 0, 1e5], [1e4, 0, 0])
    obs, reward, terminated, truncated, info = env.step(np.zeros(4))
    assert truncated and not terminated and info["physics_blowup"]
    for value in obs.values():
        assert np.all(np.isfinite(value)) and np.all(np.abs(value) < 100)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.zeros(4))
    assert not truncated and not info["physics_blowup"]
    env.close()


def _expert_successes(env, episodes: int = 50) -> int:
    """Episodes the task's scripted expert succeeds in, over seeds 0 to ``episodes - 1``."""
    expert = make_expert(env)
    successes = 0
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        expert.reset()
        for _ in itertools.count():
            obs, reward, terminated, truncated, info = env.step(expert(obs))
            if terminated or truncated:
                break
        successes += info["is_success"]
    env.close()
    return successes


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_scripted_expert_succeeds_95_percent(task):
    successes = _expert_successes(make(task))
    assert successes >= 48, f"{task}: expert succeeded in {successes}/50"


@pytest.mark.slow
def test_conveyor_expert_keeps_up_with_the_randomized_twin():
    # The demonstrations and DAgger labels of the ConveyorPick preset come from the
    # `standard`-randomized twin: latency, sensor bias and noise, belt speed, part size.
    successes = _expert_successes(make("ConveyorPick", randomization="standard"))
    assert successes >= 45, f"ConveyorPick expert under `standard`: {successes}/50"


def test_compute_reward_is_vectorized_for_her():
    env = make("PickPlace").unwrapped
    achieved = np.zeros((5, 3))
    desired = np.array([[0, 0, 0], [0.01, 0, 0], [0.1, 0, 0], [0, 0.049, 0], [1, 1, 1]])
    assert env.compute_reward(achieved, desired, [{}] * 5).tolist() == [0, 0, -1, 0, -1]
    dense = make("PickPlace", reward="dense").unwrapped
    assert np.allclose(dense.compute_reward(achieved, desired, None), -np.linalg.norm(desired, axis=1))
    env.close()
    dense.close()


def test_reset_judges_success_on_the_observation_as_step_and_her_do():
    env = make("PickPlace").unwrapped
    place = env.task.reset
    threshold = env.task.distance_threshold_m
    verdicts, exact = [], []
    # Goals within a few float32 steps of the threshold: where judging the float64 state and
    # the float32 observation (what step() and HER relabelling see) can disagree.
    for offset in threshold + np.arange(-4, 5) * 2e-9:
        def goal_beside_the_part(rng, to_base, offset=offset):
            place(rng, to_base)
            env.task.goal = env.reader.read()["object_position"] + np.array([offset, 0.0, 0.0])

        env.task.reset = goal_beside_the_part
        observation, info = env.reset(seed=0)
        reward = env.compute_reward(observation["achieved_goal"], observation["desired_goal"], {})
        verdicts.append(info["is_success"])
        assert info["is_success"] is bool(reward == 0.0)
        exact.append(bool(np.linalg.norm(env.reader.read()["object_position"] - env.task.goal)
                          < threshold))
    assert verdicts != exact  # the float64 view would have judged some of these otherwise
    env.close()


@pytest.mark.slow
def test_sac_her_trains_on_the_env():
    from stable_baselines3 import SAC, HerReplayBuffer

    env = make("Reach")
    model = SAC("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs={"n_sampled_goal": 4, "goal_selection_strategy": "future"},
                learning_starts=100, batch_size=64, seed=0, device="cpu")
    model.learn(300)
    assert model.replay_buffer.size() > 0
    env.close()


def test_info_carries_success_and_reward_terms():
    env = make("Reach", reward="dense")
    obs, info = env.reset(seed=0)
    assert "is_success" in info
    obs, reward, *_, info = env.step(np.zeros(3))
    assert set(info) >= {"is_success", "physics_blowup", "reward_terms"}
    assert reward == pytest.approx(-info["reward_terms"]["distance_m"], abs=1e-6)
    env.close()


@pytest.mark.parametrize("task", TASKS)
def test_tasks_that_never_open_the_gripper_hold_it_closed(task):
    env = make(task)
    unwrapped = env.unwrapped
    assert unwrapped.task.uses_gripper == (task in ("PickPlace", "ConveyorPick"))
    assert len(unwrapped.robot.gripper_joint_indices) == (2 if unwrapped.task.uses_gripper else 0)
    client, body = unwrapped.world.client, unwrapped.robot.body_id
    moving = [joint for joint in range(client.getNumJoints(body))
              if client.getJointInfo(body, joint)[2] != client.JOINT_FIXED]
    assert len(moving) == unwrapped.robot.dof + (2 if unwrapped.task.uses_gripper else 0)
    # A held gripper's opening says nothing: Push observes the object but not the fingers.
    assert ("gripper_width" in unwrapped.task.observation_terms) == unwrapped.task.uses_gripper
    obs, _ = env.reset(seed=0)
    assert obs["observation"].shape == {"Reach": (6,), "Push": (18,)}.get(task, (19,))
    env.close()


def test_cell_lacking_what_the_task_needs_is_a_clear_error():
    with pytest.raises(EnvError, match="needs a conveyor"):
        make("ConveyorPick", cell="table_top")
    with pytest.raises(EnvError, match="spawn region named 'nowhere'"):
        make("Reach", goal_region="nowhere")
    with pytest.raises(EnvError, match="no part 'prat'.*did you mean 'part'"):
        make("PickPlace", object="prat")
    with pytest.raises(EnvError, match="unknown reward"):
        make("Reach", reward="shaped")


@pytest.mark.parametrize("task, options, words", [
    ("PickPlace", {"place_in": "outfeed_tray"},
     ["celltwin/PickPlace-v0 takes no option 'place_in'",
      "PickPlace option (goal_region, object, pick, place)"]),
    ("Reach", {"contrl": "joint_delta"}, ["no option 'contrl'", "did you mean 'control'"]),
    ("Reach", {"object": "part"}, ["Reach option (goal_region)"]),
    ("ConveyorPick", {"place_in": ["outfeed_tray"]}, ["option 'place_in' names"]),
    ("Push", {"goal_region": 3}, ["option 'goal_region' names", "a non-empty name"]),
])
def test_an_option_the_task_does_not_take_is_a_typed_error(task, options, words):
    # Refused before a world is built; Python's TypeError never reaches the user.
    with pytest.raises(EnvError) as caught:
        make(task, **options)
    assert len(caught.value.problems) == 1
    message = str(caught.value)
    assert all(word in message for word in words), message


@pytest.mark.parametrize("task", TASKS)
def test_goal_bounds_hold_every_goal_the_task_draws(task):
    env = make(task)
    try:
        low, high = env.unwrapped.goal_bounds()
        assert np.all(low <= high)
        for seed in range(20):
            goal = env.reset(seed=seed)[0]["desired_goal"]
            assert np.all(goal >= low - 1e-5) and np.all(goal <= high + 1e-5), (seed, goal)
    finally:
        env.close()


def test_latency_delays_commands():
    def ee_after(steps, physics=None):
        env = make("Reach", physics=physics)
        obs, _ = env.reset(seed=0)
        start = obs["observation"][:3].copy()
        for _ in range(steps):
            obs, *_ = env.step(np.array([1.0, 0.0, 0.0]))
        env.close()
        return obs["observation"][0] - start[0]

    delayed = {"robots": {"arm": {"latency_steps": 2}}}
    # From rest the joint acceleration limits (core.joint_motion) let the TCP gather speed
    # over a few steps; with latency, the same motion starts two steps later.
    assert abs(ee_after(2, delayed)) < 1e-4 < 0.002 < ee_after(1)
    for steps in (1, 2, 3):
        assert ee_after(steps + 2, delayed) == pytest.approx(ee_after(steps), abs=1e-3)


@pytest.mark.parametrize("mass", [0.35, np.float32(0.35), np.float64(0.35)])
def test_physics_overrides_reach_the_world(mass):
    env = make("PickPlace", physics={"bodies": {"part": {"mass_kg": mass}}})
    world = env.unwrapped.world
    assert world.client.getDynamicsInfo(world.body("part"), -1)[0] == pytest.approx(0.35)
    env.close()


@pytest.mark.parametrize("mass", ["0.35", True, object(), np.array([0.3, 0.4]), float("nan")])
def test_a_physics_mapping_is_checked_as_strictly_as_a_file(mass):
    from celltwin.core.errors import PhysicsParamsError

    with pytest.raises(PhysicsParamsError) as error:
        make("PickPlace", physics={"bodies": {"part": {"mass_kg": mass}}})
    [problem] = error.value.problems
    assert problem.path == "bodies.part.mass_kg" and problem.file == "<physics argument>"


def test_rgb_array_rendering_and_human_without_display(monkeypatch):
    env = make("PickPlace", render_mode="rgb_array", render_width=96, render_height=64)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 96, 3) and frame.dtype == np.uint8 and frame.std() > 5
    env.close()
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(EnvError, match="display"):
        make("Reach", render_mode="human")


def test_every_registered_id_is_listed_and_typos_get_a_suggestion():
    assert set(ENV_IDS) == {f"celltwin/{t}-v0" for t in TASKS}
    assert TASKS == ("Reach", "Push", "PickPlace", "ConveyorPick")
    with pytest.raises(gym.error.Error, match="Reach"):
        gym.make("celltwin/Reech-v0")


@pytest.mark.parametrize("task", TASKS)
def test_experts_that_claim_to_be_reactive_answer_the_observation_alone(task):
    # What DAgger relies on: the same observation gets the same action, whatever came before.
    env = make(task)
    expert = make_expert(env)
    assert isinstance(expert, REGISTRY[task].expert)
    if not expert.markov:
        env.close()
        return
    obs, _ = env.reset(seed=4)
    expert.reset()
    record = []
    # Every step of the episode, on past a success, as demonstrations and DAgger record them:
    # the grasp, the carry, the release and what follows it.
    for _ in range(env.spec.max_episode_steps):
        action = expert(obs)
        record.append((obs, action))
        obs, *_ = env.unwrapped.step(action)
    env.reset(seed=4)
    fresh = make_expert(env)
    fresh.reset()
    for obs, action in reversed(record):  # another history: backwards through the episode
        np.testing.assert_array_equal(fresh(obs), action)
    env.close()

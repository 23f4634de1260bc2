"""A robot's actuation: set-point latency, joint-sensor noise, snapshots, and who honours them."""

from __future__ import annotations

import numpy as np
import pytest

from celltwin.physics import PhysicsParams
from celltwin.robots.actuation import Actuation
from celltwin.robots.errors import RobotError
from celltwin.world import World


def recording() -> tuple[Actuation, list]:
    """An actuation whose motor calls are recorded as ("arm"|"fingers", target)."""
    sent = []
    actuation = Actuation(lambda target: sent.append(("arm", list(target))),
                          lambda target: sent.append(("fingers", list(target))))
    return actuation, sent


def latency(steps: int, noise_rad: float = 0.0) -> PhysicsParams:
    return PhysicsParams.model_validate(
        {"robots": {"arm": {"latency_steps": steps, "joint_noise_std_rad": noise_rad}}})


# --- the actuation alone ----------------------------------------------------------------------


def test_zero_latency_sends_at_once_and_queues_nothing():
    actuation, sent = recording()
    actuation.command_arm([0.1, 0.2])
    actuation.command_fingers([0.04])
    actuation.command_fingers([0.04])  # the motor has it already: not sent again
    assert sent == [("arm", [0.1, 0.2]), ("fingers", [0.04])]
    assert not actuation.pending and actuation.arm_target == [0.1, 0.2]


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_latency_delays_by_exactly_that_many_steps(steps):
    actuation, sent = recording()
    actuation.latency_steps = steps
    actuation.command_arm([1.0])
    actuation.command_fingers([0.02])  # same step: travels with the arm set-point
    actuation.advance()  # the world calls this before each step's physics
    actuation.command_arm([2.0])  # one step later: arrives one step later
    for _ in range(steps - 1):
        actuation.advance()
    assert sent == [] and actuation.arm_target is None
    actuation.advance()
    assert sent == [("arm", [1.0]), ("fingers", [0.02])]
    actuation.advance()
    assert sent[-1] == ("arm", [2.0]) and not actuation.pending


def test_a_shorter_latency_never_reorders_set_points():
    actuation, sent = recording()
    actuation.latency_steps = 3
    actuation.command_arm([1.0])
    actuation.latency_steps = 0
    actuation.command_arm([2.0])  # waits behind the first one, then follows it at once
    for _ in range(4):
        actuation.advance()
    assert sent == [("arm", [1.0]), ("arm", [2.0])]
    actuation.command_arm([3.0])  # queue empty, no latency: straight to the motors
    assert sent[-1] == ("arm", [3.0])


def test_apply_now_and_cancel_drop_what_is_on_its_way():
    actuation, sent = recording()
    actuation.latency_steps = 2
    actuation.command_arm([1.0])
    actuation.apply_now([0.5], [0.01])
    assert sent == [("arm", [0.5]), ("fingers", [0.01])] and not actuation.pending
    actuation.command_arm([1.0])
    actuation.cancel()
    for _ in range(3):
        actuation.advance()
    assert actuation.arm_target == [0.5]


def test_state_round_trip_restores_the_queue():
    actuation, sent = recording()
    actuation.apply_now([0.0], [0.04])
    actuation.latency_steps = 2
    actuation.command_arm([1.0])
    actuation.advance()
    actuation.command_arm([2.0])
    saved = actuation.state()
    actuation.advance()
    actuation.advance()
    actuation.advance()
    assert actuation.arm_target == [2.0]
    sent.clear()
    actuation.restore(saved)
    assert actuation.arm_target == [0.0] and sent == [("arm", [0.0]), ("fingers", [0.04])]
    delivered = []
    for _ in range(3):
        actuation.advance()
        delivered.append(actuation.arm_target)
    assert delivered == [[0.0], [1.0], [2.0]]  # each as far from its due step as when saved


def test_noise_has_the_set_standard_deviation_and_none_draws_nothing():
    actuation, _ = recording()
    actuation.rng = np.random.default_rng(3)
    exact = np.arange(7.0)
    untouched = actuation.rng.bit_generator.state
    assert actuation.measured(exact.copy()).tolist() == exact.tolist()
    assert actuation.rng.bit_generator.state == untouched  # the noiseless path draws nothing
    actuation.joint_noise_std_rad = 0.01
    errors = np.array([actuation.measured(exact.copy()) - exact for _ in range(4000)])
    assert errors.std() == pytest.approx(0.01, rel=0.03)
    assert abs(errors.mean()) < 3 * 0.01 / np.sqrt(errors.size)


@pytest.mark.parametrize("field, value", [("latency_steps", -1), ("latency_steps", 1.5),
                                          ("joint_noise_std_rad", float("nan")),
                                          ("joint_noise_std_rad", -0.1)])
def test_invalid_parameters_are_refused_with_the_value(field, value):
    actuation, _ = recording()
    with pytest.raises(RobotError, match="invalid"):
        setattr(actuation, field, value)


# --- in a world ---------------------------------------------------------------------------------


def test_world_applies_reads_and_steps_the_latency():
    with World("reach_table", physics=latency(3, 0.002)) as world:
        robot = world.robot("arm")
        assert robot.actuation.latency_steps == 3 == world.latency_steps("arm")
        assert world.physics_params().robots["arm"].joint_noise_std_rad == 0.002
        before = robot.motor_targets()[0]
        robot.command_joint_positions(np.array(before) + 0.1)
        for _ in range(3):
            world.step()
            assert robot.motor_targets()[0] == before
        world.step()
        np.testing.assert_allclose(robot.motor_targets()[0], np.array(before) + 0.1)


def test_snapshot_includes_set_points_on_their_way():
    with World("reach_table", physics=latency(3)) as world:
        robot = world.robot("arm")
        home = robot.joint_positions()
        robot.command_joint_positions(home + 0.2)
        world.step()
        robot.command_joint_positions(home - 0.2)
        snapshot = world.snapshot()

        def run() -> list:
            trace = []
            for _ in range(8):
                world.step()
                trace.append(robot.joint_positions().tolist())
            return trace

        first = run()
        world.restore(snapshot)
        assert run() == first  # bit-exact: the queue came back with the bodies
        world.restore(snapshot)
        robot.actuation.cancel()
        assert run() != first  # and it mattered: without it the arm stays home


def test_env_noise_and_latency_replay_from_the_seed():
    import gymnasium as gym

    import celltwin.envs  # noqa: F401

    physics = {"robots": {"arm": {"latency_steps": 2, "joint_noise_std_rad": 0.01}}}
    env = gym.make("celltwin/Reach-v0", control="joint_delta", physics=physics)
    actions = np.random.default_rng(0).uniform(-1, 1, (15, env.action_space.shape[0]))

    def episode(seed):
        observations = [env.reset(seed=seed)[0]["observation"]]
        observations += [env.step(action)[0]["observation"] for action in actions]
        return np.array(observations)

    first, again, other = episode(4), episode(4), episode(5)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[1:], other[1:])
    env.close()


def test_randomized_latency_and_noise_reach_the_actuation_per_episode():
    import gymnasium as gym

    import celltwin.envs  # noqa: F401

    def term(parameter, values):
        return {"target": "{robot}", "parameter": parameter, "operation": "set",
                "when": "reset", "distribution": {"type": "choice", "values": values}}

    env = gym.make("celltwin/Reach-v0", randomization=[
        term("latency_steps", [0, 2, 4]), term("joint_noise_std_rad", [0.0, 0.01])]).unwrapped
    actuation = env.robot.actuation
    drawn = set()
    for seed in range(12):
        _, info = env.reset(seed=seed)
        values = info["randomization"]
        drawn.add((actuation.latency_steps, actuation.joint_noise_std_rad))
        assert actuation.latency_steps == values["arm.latency_steps"] == env.world.latency_steps("arm")
        assert actuation.joint_noise_std_rad == pytest.approx(values["arm.joint_noise_std_rad"])
        assert env.world.physics_params().robots["arm"].latency_steps == actuation.latency_steps
        env.step(env.action_space.sample())
    assert len(drawn) > 2
    env.set_randomization(None)
    env.reset(seed=0)
    assert (actuation.latency_steps, actuation.joint_noise_std_rad) == (0, 0.0)
    env.close()

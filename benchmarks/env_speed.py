"""Step and reset rates of celltwin's envs against panda-gym 3.0.7, measured in one run.

Pairs: ``celltwin/Reach-v0`` vs ``PandaReach-v3`` and ``celltwin/PickPlace-v0`` vs
``PandaPickAndPlace-v3``. Both sides: Panda, end-effector control, 1/500 s timestep x 20
substeps, pybullet's default solver (50 iterations), ``env.unwrapped`` (no wrappers; panda-gym
fails Gymnasium's checker, so its wrapper stack is skipped for both). The same pre-drawn random
actions drive both, in 50-step episodes (the reset between them is not timed as stepping).
Rounds alternate between the two so drift on a shared machine hits both. Reach never opens
the gripper: panda-gym holds its fingers closed with their motors, celltwin welds them shut
(``robots/held_gripper.py``); PickPlace simulates working fingers on both sides.

Time inside bullet's own stepping is measured by timing every ``stepSimulation`` call of the
env's client (the timer's own cost counts against the env, not for it).

    pip install panda-gym==3.0.7   # or: bash scripts/setup.sh bench
    python benchmarks/env_speed.py [--steps 2000] [--resets 2000] [--rounds 3]
                                   [--tasks Reach PickPlace Push]

Targets (issue 3): step rate >= 1.25x the peer's, reset rate >= 2x, >= 85% of step time inside
stepSimulation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

# Each task's panda-gym peer. The two pairs are the default; Push (gripper held closed
# on both sides) on request.
PEERS = {"Reach": "PandaReach-v3", "PickPlace": "PandaPickAndPlace-v3", "Push": "PandaPush-v3"}


class SteppingTimer:
    """Wraps a BulletClient's stepSimulation to add up the time spent inside it."""

    def __init__(self, client):
        self.seconds = 0.0
        self._inner = client.stepSimulation
        client.stepSimulation = self  # instance attribute wins over BulletClient.__getattr__

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        result = self._inner(*args, **kwargs)
        self.seconds += time.perf_counter() - started
        return result


def make(env_id: str):
    if env_id.startswith("celltwin/"):
        import celltwin.envs  # noqa: F401

        env = gym.make(env_id).unwrapped
        timer = SteppingTimer(env.world.client)
        env.world._step = env.world.client.stepSimulation  # World binds it once at build
    else:
        import panda_gym  # noqa: F401

        env = gym.make(env_id, disable_env_checker=True).unwrapped
        timer = SteppingTimer(env.sim.physics_client)
    return env, timer


def measure(env, timer, actions: np.ndarray, resets: int, horizon: int = 50) -> dict:
    """Step in episodes of ``horizon`` steps (both envs' episode length), as training does.

    Only ``step`` calls are timed for the step rate: an unbroken random walk of thousands of
    steps drifts into whatever arm configuration the action sequence leads to, and the physics
    cost of that pose, not the env, would decide the ratio.
    """
    step_s = physics_s = 0.0
    for index, action in enumerate(actions):
        if index % horizon == 0:
            env.reset(seed=index)
            timer.seconds = 0.0
            started = time.perf_counter()
        env.step(action)
        if index % horizon == horizon - 1 or index == len(actions) - 1:
            step_s += time.perf_counter() - started
            physics_s += timer.seconds
    started = time.perf_counter()
    for seed in range(resets):
        env.reset(seed=seed)
    reset_s = time.perf_counter() - started
    return {"steps_per_s": len(actions) / step_s, "resets_per_s": resets / reset_s,
            "physics_share": physics_s / step_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--resets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", nargs="+", choices=sorted(PEERS), default=["Reach", "PickPlace"])
    args = parser.parse_args()

    from celltwin.envs.tasks import TASKS

    for ours_id, peer_id in ((TASKS[task].env_id, PEERS[task]) for task in args.tasks):
        ours, ours_timer = make(ours_id)
        peer, peer_timer = make(peer_id)
        assert ours.action_space.shape == peer.action_space.shape, (ours.action_space, peer.action_space)
        actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, ours.action_space.shape[0]))
        results = {"ours": [], "peer": []}
        for round_index in range(args.rounds):
            order = [("ours", ours, ours_timer), ("peer", peer, peer_timer)]
            for name, env, timer in (order if round_index % 2 == 0 else order[::-1]):
                results[name].append(measure(env, timer, actions, args.resets))
        summary = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                   for name, runs in results.items()}
        o, p = summary["ours"], summary["peer"]
        print(f"{ours_id} vs {peer_id} ({args.steps} steps, {args.resets} resets, "
              f"median of {args.rounds} rounds)")
        print(f"  steps/s   celltwin {o['steps_per_s']:8.0f}   panda-gym {p['steps_per_s']:8.0f}   "
              f"ratio {o['steps_per_s'] / p['steps_per_s']:.2f}x (target >= 1.25x)")
        print(f"  resets/s  celltwin {o['resets_per_s']:8.0f}   panda-gym {p['resets_per_s']:8.0f}   "
              f"ratio {o['resets_per_s'] / p['resets_per_s']:.2f}x (target >= 2x)")
        print(f"  time in stepSimulation  celltwin {100 * o['physics_share']:.0f}%   "
              f"panda-gym {100 * p['physics_share']:.0f}% (target >= 85%)")
        ours_physics_us = 1e6 * o["physics_share"] / o["steps_per_s"]
        peer_physics_us = 1e6 * p["physics_share"] / p["steps_per_s"]
        # With the same engine, settings and scene, bullet's own work per step bounds the ratio:
        # even an env with no Python at all could not beat the peer by more than this.
        print(f"  stepSimulation per step  celltwin {ours_physics_us:.0f} us   panda-gym "
              f"{peer_physics_us:.0f} us; ceiling with zero env overhead "
              f"{1e6 / ours_physics_us / p['steps_per_s']:.2f}x")
        ours.close()
        peer.close()


if __name__ == "__main__":
    main()

"""Overhead of stepping a cell through ``celltwin.World`` against bare pybullet calls.

Both loops drive the same bodies in the same pybullet client, from the same snapshot, with the
same per-control-step work: command the arm's joint targets, let the conveyor carry what lies on
it, advance one control period (timestep x substeps), read the arm's joint positions. The bare
loop makes those pybullet calls directly; the World loop goes through ``Robot`` and
``World.step``. Rounds alternate between the two so drift on a shared machine hits both.

    python benchmarks/world_overhead.py [--cell pick_station] [--steps 500] [--rounds 9]

Target (issue 2): World overhead <= 10%, i.e. ratio world/bare <= 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pybullet

from celltwin.conveyor import CONTACT_DISTANCE_M
from celltwin.world import World


def world_loop(world: World, targets: np.ndarray) -> float:
    robot = world.robot()
    started = time.perf_counter()
    for q in targets:
        robot.command_joint_positions(q)
        world.step()
        robot.joint_positions()
    return time.perf_counter() - started


def bare_loop(world: World, targets: np.ndarray) -> float:
    cid = world.client._client
    robot = world.robot()
    body, joints = robot.body_id, list(robot.arm_joint_indices)
    forces = list(robot.arm_force_limits)
    kp, kd = [robot.position_gain] * len(joints), [robot.velocity_gain] * len(joints)
    belts = [(c.body_id, c.direction, c.speed_mps, c.carried) for c in world.conveyors.values()]
    lower, upper = robot.arm_lower, robot.arm_upper
    substeps = range(world.physics_params().substeps)
    started = time.perf_counter()
    for q in targets:
        pybullet.setJointMotorControlArray(body, joints, pybullet.POSITION_CONTROL,
                                           targetPositions=np.clip(q, lower, upper).tolist(),
                                           forces=forces, positionGains=kp, velocityGains=kd,
                                           physicsClientId=cid)
        for belt, direction, speed, carried in belts:
            on_belt = [part for part in sorted(carried) if pybullet.getClosestPoints(
                belt, part, CONTACT_DISTANCE_M, physicsClientId=cid)]
            for part in on_belt:
                linear, angular = pybullet.getBaseVelocity(part, physicsClientId=cid)
                linear = np.asarray(linear)
                linear = linear + (speed - float(linear @ direction)) * direction
                pybullet.resetBaseVelocity(part, linear.tolist(), angular, physicsClientId=cid)
        for _ in substeps:
            pybullet.stepSimulation(physicsClientId=cid)
        np.array([s[0] for s in pybullet.getJointStates(body, joints, physicsClientId=cid)])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="pick_station")
    parser.add_argument("--steps", type=int, default=500, help="control steps per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    with World(args.cell) as world:
        robot = world.robot()
        rng = np.random.default_rng(0)
        home = robot.joint_positions()
        # A slow random walk around home keeps the arm moving (real solver work) but safe.
        targets = home + np.cumsum(rng.normal(0, 0.01, (args.steps, robot.dof)), axis=0)
        start = world.snapshot()
        world_times, bare_times = [], []
        for round_index in range(args.rounds):
            order = (("world", world_loop), ("bare", bare_loop))
            if round_index % 2:
                order = order[::-1]
            for name, loop in order:
                world.restore(start)
                elapsed = loop(world, targets)
                (world_times if name == "world" else bare_times).append(elapsed)
        period = world.control_period_s
        world_med, bare_med = statistics.median(world_times), statistics.median(bare_times)
        ratio = world_med / bare_med
        print(f"cell {args.cell}: {args.steps} control steps x {args.rounds} rounds, "
              f"{world.physics_params().substeps} substeps of {world.physics_params().timestep_s:g} s")
        print(f"bare pybullet: {args.steps / bare_med:8.1f} control steps/s "
              f"({args.steps * period / bare_med:.1f}x real time)")
        print(f"celltwin.World:    {args.steps / world_med:8.1f} control steps/s "
              f"({args.steps * period / world_med:.1f}x real time)")
        print(f"ratio world/bare: {ratio:.3f}  (overhead {100 * (ratio - 1):+.1f}%, target <= +10%)")


if __name__ == "__main__":
    main()

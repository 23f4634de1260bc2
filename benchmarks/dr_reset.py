"""Cost of a reset with domain randomization against a plain reset of the same env.

Both envs are ``celltwin/PickPlace-v0`` on the same cell; one has a randomization preset. Rounds
alternate between them so drift on a shared machine hits both. For scale, panda-gym 3.0.7's
``PandaPickAndPlace-v3`` reset (teleporting the robot and the object) is measured in the same
run when panda-gym is installed.

    python benchmarks/dr_reset.py [--preset standard] [--resets 2000] [--rounds 5]

Target (issue 4): a reset with the ``standard`` preset costs <= 2x a plain reset.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym

from celltwin.envs.tasks import TASKS  # registers the ids too


def resets_per_s(env, count: int, seed: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        env.reset(seed=seed + index)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--task", default="PickPlace", choices=sorted(TASKS))
    parser.add_argument("--resets", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    env_id = TASKS[args.task].env_id
    envs = {"plain": gym.make(env_id).unwrapped,
            args.preset: gym.make(env_id, randomization=args.preset).unwrapped}
    try:
        import panda_gym  # noqa: F401

        envs["panda-gym"] = gym.make("PandaPickAndPlace-v3", disable_env_checker=True).unwrapped
    except ImportError:
        pass
    for env in envs.values():
        env.reset(seed=0)
    rates: dict[str, list[float]] = {name: [] for name in envs}
    for round_index in range(args.rounds):
        names = list(envs) if round_index % 2 == 0 else list(envs)[::-1]
        for name in names:
            rates[name].append(resets_per_s(envs[name], args.resets, 1000 * round_index))
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, rate in median.items():
        print(f"{name:>12}: {rate:8.0f} resets/s  ({1e6 / rate:6.1f} us per reset)")
    ratio = median["plain"] / median[args.preset]
    print(f"reset cost {args.preset} / plain: {ratio:.2f}x (target <= 2x)")
    if "panda-gym" in median:
        print(f"reset cost {args.preset} / panda-gym plain reset: "
              f"{median['panda-gym'] / median[args.preset]:.2f}x")
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()

"""Gymnasium environments on cell twins, registered as ``celltwin/<Task>-v0``.

Importing this module registers them::

    import gymnasium as gym
    import celltwin.envs  # noqa: F401

    env = gym.make("celltwin/PickPlace-v0", robot="kuka_iiwa", reward="dense")

or, without the import, ``gym.make("celltwin.envs:celltwin/PickPlace-v0")``.
"""

from __future__ import annotations

import gymnasium as gym

from celltwin.envs.cell_env import DEFAULT_CELLS, CellEnv
from celltwin.observation import ObservationLayout

# Episode lengths [control steps at 25 Hz]: panda-gym's 50 for the bench-top tasks; the part
# on the conveyor needs time to come within reach.
MAX_EPISODE_STEPS = {"Reach": 50, "Push": 50, "PickPlace": 50, "ConveyorPick": 150}

ENV_IDS = tuple(f"celltwin/{task}-v0" for task in MAX_EPISODE_STEPS)

for _task, _steps in MAX_EPISODE_STEPS.items():
    _id = f"celltwin/{_task}-v0"
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="celltwin.envs.cell_env:CellEnv", kwargs={"task": _task},
                     max_episode_steps=_steps)

__all__ = ["CellEnv", "DEFAULT_CELLS", "ENV_IDS", "MAX_EPISODE_STEPS", "ObservationLayout"]

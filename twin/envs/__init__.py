"""Gymnasium environments on cell twins, registered as ``celltwin/<Task>-v0``.

Importing this module registers one id per task of :data:`celltwin.envs.tasks.TASKS`::

    import gymnasium as gym
    import celltwin.envs  # noqa: F401

    env = gym.make("celltwin/PickPlace-v0", robot="kuka_iiwa", reward="dense")

or, without the import, ``gym.make("celltwin.envs:celltwin/PickPlace-v0")``.

:class:`CellEnv` (pybullet, the world) loads on first use (PEP 562): registering the ids and
reading the task registry, as the CLI does to list tasks, stays light.
"""

from __future__ import annotations

import importlib

from celltwin.envs.tasks import TASKS, Task, register_task, task_class  # registers the ids
from celltwin.observation import ObservationLayout

__all__ = ["CellEnv", "ENV_IDS", "TASKS", "ObservationLayout", "Task", "register_task",
           "task_class"]


def __getattr__(name: str):
    if name == "CellEnv":
        return importlib.import_module("celltwin.envs.cell_env").CellEnv
    if name == "ENV_IDS":  # a view of the registry, current whenever it is read
        return tuple(cls.env_id for cls in TASKS.values())
    raise AttributeError(f"module 'celltwin.envs' has no attribute '{name}'")

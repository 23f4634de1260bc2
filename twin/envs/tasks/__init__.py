"""The tasks celltwin's environments host: the one registry of them, by name.

:data:`TASKS` maps each task's name to its class, and the class carries everything else about
the task (id, episode length, default cell, expert, preset, success test, what it needs of a
cell; see :class:`Task`). Gymnasium's registration, training configs, the CLI, export and the
benchmarks all read it; adding a task is a class and one :func:`register_task` call.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from celltwin.core.errors import EnvError, Problem, did_you_mean, one_of
from celltwin.envs.tasks.base import Task
from celltwin.envs.tasks.conveyor_pick import ConveyorPickTask
from celltwin.envs.tasks.object_tasks import PickPlaceTask, PushTask
from celltwin.envs.tasks.reach import ReachTask

ENTRY_POINT = "celltwin.envs.cell_env:CellEnv"

TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Add a task class to :data:`TASKS` and register its id with Gymnasium.

    Registering the same class again does nothing; another class under a name or id already
    taken is an :class:`EnvError`. Usable as a class decorator.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task)) or not cls.name or not cls.env_id:
        raise EnvError(Problem("a task to register must be a Task subclass with a name",
                               value=getattr(cls, "__name__", repr(cls)),
                               expected="a subclass of celltwin.envs.tasks.Task setting `name`"))
    taken = TASKS.get(cls.name)
    if taken is not None and taken is not cls:
        raise EnvError(Problem(f"task name '{cls.name}' is taken by {taken.__qualname__}",
                               value=cls.__qualname__, expected="a new task name"))
    registered = gym.registry.get(cls.env_id)
    if registered is not None and registered.kwargs.get("task") != cls.name:
        raise EnvError(Problem(f"id '{cls.env_id}' is registered already", value=cls.env_id,
                               expected="a new id"))
    TASKS[cls.name] = cls
    if registered is None:
        gym.register(id=cls.env_id, entry_point=ENTRY_POINT, kwargs={"task": cls.name},
                     max_episode_steps=cls.max_episode_steps)
    return cls


def task_class(name: str, *, error: type[Exception] = EnvError, path: str = "task") -> type[Task]:
    """The registered task called ``name``; an unknown name is ``error`` with a suggestion."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise error(Problem(f"unknown task '{name}'" + did_you_mean(name, TASKS), path=path,
                            value=name, expected=one_of(TASKS))) from None


@dataclass(frozen=True)
class TaskSupport:
    """Whether a cell hosts one task, and what the task uses there or why it cannot."""

    task: str
    ok: bool
    detail: str


def hosting(world, robot_name: str | None = None) -> list[TaskSupport]:
    """Every registered task built on ``world`` by the cell conventions (docs/cells.md): what
    it uses there, or why the cell cannot host it. ``robot_name``: the acting robot (default:
    the cell's first)."""
    robot = world.robot(robot_name or world.spec.robots[0].name)
    found = []
    for name, cls in TASKS.items():
        try:
            task = cls(world, robot)
        except EnvError as error:
            found.append(TaskSupport(name, False, "; ".join(p.message for p in error.problems)))
        else:
            found.append(TaskSupport(name, True, task.describe()))
    return found


for _cls in (ReachTask, PushTask, PickPlaceTask, ConveyorPickTask):
    register_task(_cls)

__all__ = ["TASKS", "Task", "TaskSupport", "hosting", "register_task", "task_class", "ReachTask",
           "PushTask", "PickPlaceTask", "ConveyorPickTask"]

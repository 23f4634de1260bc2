"""The tasks celltwin's environments host, by name."""

from celltwin.envs.tasks.base import Task
from celltwin.envs.tasks.conveyor_pick import ConveyorPickTask
from celltwin.envs.tasks.object_tasks import PickPlaceTask, PushTask
from celltwin.envs.tasks.reach import ReachTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in
                                (ReachTask, PushTask, PickPlaceTask, ConveyorPickTask)}

__all__ = ["TASKS", "Task", "ReachTask", "PushTask", "PickPlaceTask", "ConveyorPickTask"]

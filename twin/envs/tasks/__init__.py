"""The tasks celltwin's environments host, by name."""

from twin.envs.tasks.base import Task
from twin.envs.tasks.conveyor_pick import ConveyorPickTask
from twin.envs.tasks.object_tasks import PickPlaceTask, PushTask
from twin.envs.tasks.reach import ReachTask

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in
                                (ReachTask, PushTask, PickPlaceTask, ConveyorPickTask)}

__all__ = ["TASKS", "Task", "ReachTask", "PushTask", "PickPlaceTask", "ConveyorPickTask"]

"""Scripted experts for celltwin's environments, acting on the env's own observations.

``make_expert(env)`` returns a callable ``expert(observation) -> action`` for the env's task,
the expert its task class names (``Task.expert``). An expert reads positions out of the
observation with the env's observation layout (robot base frame, as the ``ee_delta``
controller's actions are), so it works from live observations and from recorded ones alike.
Used for demos, line planning, smoke tests and demonstrations. This module holds the experts
of the simple tasks (Reach, Push); the reactive pick experts have modules of their own.
"""

from __future__ import annotations

import numpy as np

from celltwin.experts.base import Expert


class ReachExpert(Expert):
    """Straight to the goal."""

    markov = True

    def __call__(self, observation) -> np.ndarray:
        ee = self.term(observation, "ee_position")
        return self.finish(np.append(self.delta(ee, self.goal(observation)), -1.0))


class PushExpert(Expert):
    """Get behind the object (as seen from the goal), lower, and push it along the line.

    Args:
        contact_gap_m: how far behind the object's centre the TCP lines up [m].
        misalignment_m: sideways error that sends the TCP back to line up again [m].
        push_height_m: TCP height above the object's centre while pushing [m]; keeps the
            fingertips (which reach below the TCP) off the table.
    """

    def __init__(self, env, contact_gap_m: float = 0.045, misalignment_m: float = 0.02,
                 push_height_m: float = 0.008):
        super().__init__(env)
        self.contact_gap_m = contact_gap_m
        self.misalignment_m = misalignment_m
        self.push_height_m = push_height_m
        self.pushing = False

    def reset(self) -> None:
        self.pushing = False

    def __call__(self, observation) -> np.ndarray:
        ee = self.term(observation, "ee_position")
        self._ee_velocity = self.term(observation, "ee_velocity")
        obj = self.term(observation, "object_position")
        goal = self.goal(observation)
        line = goal[:2] - obj[:2]
        if np.linalg.norm(line) < 1e-6:
            return self.finish(np.array([0.0, 0.0, 0.0, -1.0]))
        direction = np.append(line / np.linalg.norm(line), 0.0)
        behind = obj - self.contact_gap_m * direction
        behind[2] = obj[2] + self.push_height_m
        offset = ee - behind
        sideways = np.linalg.norm(offset[:2] - (offset[:2] @ direction[:2]) * direction[:2])
        if self.pushing and sideways > self.misalignment_m:
            self.pushing = False
        if not self.pushing:
            above = behind + np.array([0.0, 0.0, 0.06])
            if np.linalg.norm((ee - above)[:2]) > 0.01 and ee[2] < obj[2] + 0.04:
                target = ee + np.array([0.0, 0.0, 0.05])   # lift before moving sideways
            elif np.linalg.norm((ee - above)[:2]) > 0.01:
                target = above
            else:
                if abs(ee[2] - behind[2]) < 0.01:
                    self.pushing = True
                delta = np.clip((behind - ee) / self.scale_m, -0.4, 0.4)  # gently onto the table
                return self.finish(np.append(delta, -1.0))
            return self.finish(np.append(self.delta(ee, target), -1.0))
        # Push: aim past the contact point along the line, scaled down near the goal.
        remaining = np.linalg.norm(line)
        target = ee + direction * min(remaining, self.scale_m)
        target[2] = behind[2]
        # The target runs ahead of the TCP; the push brakes for the goal, not for it.
        return self.finish(np.append(self.delta(ee, target, stop_m=remaining), -1.0))


def make_expert(env) -> Expert:
    """Return the scripted expert of ``env``'s task (an ``ee_delta`` env).

    Which expert, with which options, is the task's to say (its ``expert`` and
    ``expert_options``, see :class:`celltwin.envs.tasks.Task`); a robot with a suction cup
    gets the task's ``suction_expert`` when the task grips.
    """
    base = env.unwrapped
    task = base.task
    if task.uses_gripper and base.robot.model.suction is not None:
        if task.suction_expert is None:
            raise ValueError(f"no scripted expert for task '{task.name}' with a suction cup")
        return task.suction_expert(env, **task.suction_expert_options)
    if task.expert is None:
        raise ValueError(f"no scripted expert for task '{task.name}'")
    return task.expert(env, **task.expert_options)

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
        goal = np.array(self.goal(observation), dtype=float)
        # Down to a goal below the TCP only once above it: a straight line slanting down can
        # press the hand onto whatever lies under it (a bin's rim, the table) and stall there.
        across = float(np.linalg.norm(goal[:2] - ee[:2]))
        if goal[2] < ee[2] and across > self.slant_m:
            goal[2] = ee[2] - (ee[2] - goal[2]) * self.slant_m / across
        return self.finish(np.append(self.delta(ee, goal), -1.0))

    slant_m = 0.02
    """Horizontal distance [m] within which the TCP goes straight down to the goal."""


class PushExpert(Expert):
    """Get behind the object (as seen from the goal), lower, and push it along the line.

    Args:
        contact_gap_m: how far behind the object's centre the TCP lines up [m].
        misalignment_m: sideways error that sends the TCP back to line up again [m]; below it
            the push steers back onto the line.
        push_height_m: TCP height above the object's centre while pushing [m]; keeps the
            fingertips (which reach below the TCP) off the table.
    """

    def __init__(self, env, contact_gap_m: float = 0.045, misalignment_m: float = 0.03,
                 push_height_m: float = 0.015):
        super().__init__(env)
        self.contact_gap_m = contact_gap_m
        self.misalignment_m = misalignment_m
        self.push_height_m = push_height_m
        self.pushing = False

    # Share of the sideways error steered off per step while pushing (times ``gain``).
    steer = 1.0
    # Fastest descent onto the push height, a fraction of the full action [-].
    descend_speed = 0.4
    # The push speeds up by at most this much per second [m/s^2], from the TCP's measured
    # speed along the line, up to push_speed_mps. The arm's set-points are bounded per joint
    # (celltwin.core.joint_motion); a push that asks for more than they let through has its
    # straight line bent into an arc by the clipping, drifts sideways off the object and
    # starts over. Measured, seeds 0-49 / 1000-1049 / 2000-2049: 50/45/- at 4, 49/50/49
    # at 5, 49/49/49 at 6, 49/49/47 at 7 (the push
    # that asked for full speed at once and restarted at 2 cm off the line: 43/41).
    push_accel_mps2 = 6.0
    push_speed_mps = 0.6

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
        along = float(offset[:2] @ direction[:2])
        lateral = offset[:2] - along * direction[:2]
        sideways = float(np.linalg.norm(lateral))
        # Over or beside the object rather than behind it: pass above it, not through it.
        near_object = along - self.contact_gap_m > -0.03 and sideways < 0.05
        if self.pushing and (sideways > self.misalignment_m or near_object
                             or ee[2] > behind[2] + 0.03):
            self.pushing = False
        if not self.pushing:
            off_line = float(np.linalg.norm(offset[:2]))
            if off_line < 0.01 and abs(offset[2]) < 0.01:
                self.pushing = True
            elif near_object and ee[2] < obj[2] + 0.04:
                target = ee + np.array([0.0, 0.0, 0.05])   # lift before moving sideways
                return self.finish(np.append(self.delta(ee, target), -1.0))
            else:
                # A funnel onto the contact point: the further off it horizontally, the higher
                # (a sideways drift on the way down steers back instead of starting over).
                rise = 1.0 if near_object else min(1.0, max(0.0, (off_line - 0.01) / 0.03))
                target = behind + np.array([0.0, 0.0, 0.06 * rise])
                speed = 1.0 if rise > 0.5 else self.descend_speed
                return self.finish(np.append(self.delta(ee, target, speed), -1.0))
        # Push: aim past the contact point along the line, scaled down near the goal, and
        # steer the TCP back onto the line behind the object. Forward only as far down as
        # the push height, and speeding up no faster than the arm follows in a straight line.
        remaining = float(np.linalg.norm(line))
        low = min(1.0, max(0.0, 1.0 - (offset[2] - 0.005) / 0.015))
        forward = max(0.0, float(self._ee_velocity[:2] @ direction[:2]))
        speed = min(forward + self.push_accel_mps2 * self.period_s, self.push_speed_mps,
                     np.sqrt(2.0 * self.braking_mps2 * remaining))
        step = direction * low * speed * self.period_s
        step[:2] -= self.gain * self.steer * lateral
        step[2] = self.gain * (behind[2] - ee[2])
        return self.finish(np.append(np.clip(step / self.scale_m, -1.0, 1.0), -1.0))


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

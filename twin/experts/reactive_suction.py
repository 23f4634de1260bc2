"""Pick experts for a suction cup, whose action depends on the current observation alone.

A suction cup grips from above: it comes down on the part's top face with the vacuum on and
seals (:mod:`celltwin.robots.suction`). Its gripper observation is its state, as a vacuum
sensor gives it: closed while it holds a part, half open with the vacuum on and nothing held,
open with the vacuum off. Like :class:`~celltwin.experts.reactive_pick.ReactivePickExpert`,
these experts read every decision off the observation (TCP, part, cup state, goal), so the
same state always gets the same action: behaviour cloning has one target per state and
DAgger can relabel.

Per episode they keep constants read at reset, not history: the part's half height (startup
randomization may have resized it; the top face is that far above its centre) and the height
it rests at.
"""

from __future__ import annotations

import numpy as np

from celltwin.experts.base import Expert

VACUUM_ON, VACUUM_OFF = -1.0, 1.0


class ReactiveSuctionExpert(Expert):
    """Pick the task's part with a suction cup and hold it at the goal (PickPlace).

    Args:
        env: a ``celltwin`` PickPlace env (``ee_delta`` control) whose robot has a suction cup.
        clearance_m: height above the part's top the approach funnels down from [m].
        align_m: horizontal TCP-to-part distance within which it comes down on the part [m].
        seal_zone_m: height above the top face from which the vacuum is on [m]: the cup
            seals as it gets there (within its seal tolerance) instead of pushing the part.
        press_m: how far below the observed top face it aims while sealing [m]: observed
            positions are off by millimetres, and a cup held short of the face never seals.
        descend_speed: fastest descent within ``clearance_m`` of the part's top, a fraction of
            the full action [-] (sideways it moves at full speed).
        lift_speed: fraction of the full action while the part is still near its rest height:
            a fast first lift pulls a heavy part off the cup.
        lift_clear_m: how far above its rest height the part is lifted straight up before it
            moves sideways [m].
        carry_speed: fraction of the full action while carrying [-].
        carry_over_m: how far above the goal the part is carried while it is still off to the
            side [m].
        funnel_m: how much further than ``align_m / 2`` off horizontally the approach aims the
            full clearance above the part [m].
    """

    markov = True

    def __init__(self, env, clearance_m: float = 0.05, align_m: float = 0.01,
                 seal_zone_m: float = 0.01, press_m: float = 0.006, descend_speed: float = 0.3,
                 lift_speed: float = 0.4, lift_clear_m: float = 0.04,
                 carry_speed: float = 0.7, carry_over_m: float = 0.08,
                 funnel_m: float = 0.03):
        super().__init__(env)
        self.env = env.unwrapped
        if self.env.robot.model.suction is None:
            raise ValueError(f"{type(self).__name__} drives a suction cup; robot "
                             f"'{self.env.robot.model.name}' has none")
        self.clearance_m = clearance_m
        self.align_m = align_m
        self.seal_zone_m = seal_zone_m
        self.press_m = press_m
        self.descend_speed = descend_speed
        self.lift_speed = lift_speed
        self.lift_clear_m = lift_clear_m
        self.carry_speed = carry_speed
        self.carry_over_m = carry_over_m
        self.funnel_m = funnel_m
        closed, opened = self.env.robot.model.gripper_width_range_m
        # The cup's state from its reported opening: below the first threshold it holds a
        # part, below the second its vacuum is on (see celltwin.robots.suction).
        self.held_below_m = closed + 0.25 * (opened - closed)
        self.vacuum_below_m = closed + 0.75 * (opened - closed)
        self.reset()

    def reset(self) -> None:
        env = self.env
        geometry = env.world.part_geometries[env.task.object_name]
        self.half_height_m = float(geometry.half_height_m)
        state = env.reader.read()  # after env.reset: the part at rest
        self.rest_z = float(state["object_position"][2])

    def __call__(self, observation) -> np.ndarray:
        ee = self.term(observation, "ee_position")
        part = self.term(observation, "object_position")
        width = float(self.term(observation, "gripper_width")[0])
        goal = self.goal(observation)
        if width < self.held_below_m:
            if part[2] < self.rest_z + self.lift_clear_m:
                # Straight up off what it rests on first: dragged across a table or a belt,
                # friction (and the belt) would shear it off the cup's face.
                return self.act(ee, ee + [0.0, 0.0, 0.05], VACUUM_ON, self.lift_speed)
            # Then aim the part, not the TCP, at the goal, coming down on it from above: the
            # further off horizontally, the higher above the goal (a goal in a box is reached
            # over its wall, not through it).
            off = float(np.linalg.norm(part[:2] - goal[:2]))
            over = self.carry_over_m * min(1.0, max(0.0, (off - 0.03) / 0.05))
            return self.act(ee, ee + (goal + [0.0, 0.0, over] - part), VACUUM_ON,
                            self.carry_speed)
        return self.pick(ee, part, width)

    def pick(self, ee: np.ndarray, part: np.ndarray, width: float,
             follow: np.ndarray | None = None) -> np.ndarray:
        """The action that brings the cup down on ``part``'s top face and seals there.

        Args:
            follow: a normalized action added to every move (a moving part's own motion).
        """
        top = part + [0.0, 0.0, self.half_height_m]
        horizontal = float(np.linalg.norm(ee[:2] - top[:2]))
        gap = float(ee[2] - top[2])
        if horizontal < self.align_m and gap < self.seal_zone_m:
            # On the face: vacuum on, pressing gently until it seals.
            return self.act(ee, top - [0.0, 0.0, self.press_m], VACUUM_ON, follow=follow,
                            down=self.descend_speed)
        # A funnel, as ReactivePickExpert's: the further off horizontally, the higher above
        # the top face it aims; continuous, so that a clone of it does not hover.
        offset = min(1.0, max(0.0, (horizontal - 0.5 * self.align_m) / self.funnel_m))
        height = max(self.clearance_m * offset, 0.5 * self.seal_zone_m)
        return self.act(ee, top + [0.0, 0.0, height], VACUUM_OFF, follow=follow,
                        down=self.descend_speed if gap < self.clearance_m else 1.0)

    def act(self, ee: np.ndarray, target: np.ndarray, vacuum: float, speed: float = 1.0,
            follow: np.ndarray | None = None, down: float | None = None) -> np.ndarray:
        """Towards ``target`` at most ``speed`` (normalized) per step, and down at most
        ``down``, with ``vacuum``."""
        delta = self.gain * (np.asarray(target) - ee) / self.scale_m
        if follow is not None:
            delta = delta + follow
        delta = np.clip(delta, -speed, speed)
        if down is not None:
            delta[2] = max(delta[2], -down)
        return self.finish(np.append(delta, vacuum))


class ReactiveSuctionConveyorExpert(ReactiveSuctionExpert):
    """Take a part off the running belt with a suction cup and drop it into the tray
    (ConveyorPick), reactively: :class:`~celltwin.experts.reactive_conveyor.
    ReactiveConveyorExpert`'s interception with a cup's grip.

    Args:
        env: a ``celltwin`` ConveyorPick env (``ee_delta`` control) with a suction cup.
        reach_radius_m: until the part is this close to the robot base horizontally, wait
            above the belt where it will come into reach [m].
        lead_s: how far ahead of the moving part to aim [s]: one control step of latency.
        release_align_m: horizontal part-to-goal distance within which it lets go [m].
        release_height_m: part height above its resting place in the tray at which it lets
            go [m] (below the tray's rim: the part falls in, not onto the wall).
        carry_height_m: height above the goal at which the part is carried over [m]; at least
            high enough for the part to clear the container's walls by 3 cm.
        options: the settings of :class:`ReactiveSuctionExpert`.
    """

    def __init__(self, env, reach_radius_m: float = 0.68, lead_s: float = 0.04,
                 release_align_m: float = 0.015, release_height_m: float = 0.02,
                 carry_height_m: float = 0.08, **options):
        # Set before the base's __init__, which calls reset().
        self.reach_radius_m = reach_radius_m
        self.lead_s = lead_s
        self.release_align_m = release_align_m
        self.release_height_m = release_height_m
        self.min_carry_height_m = carry_height_m
        self.period_s = env.unwrapped.world.control_period_s
        super().__init__(env, **options)

    def reset(self) -> None:
        super().reset()
        task = self.env.task  # a deep bin's walls: the part's bottom clears them by 3 cm
        self.carry_height_m = max(self.min_carry_height_m, task.wall_height_over_goal_m()
                                  + self.half_height_m + 0.03)

    def __call__(self, observation) -> np.ndarray:
        ee = self.term(observation, "ee_position")
        part = self.term(observation, "object_position")
        velocity = self.term(observation, "object_velocity")
        width = float(self.term(observation, "gripper_width")[0])
        goal = self.goal(observation)
        to_goal = float(np.linalg.norm(part[:2] - goal[:2]))
        belt = velocity.copy()
        belt[2] = 0.0  # the belt carries the part sideways; a falling part is not followed
        if width < self.held_below_m:
            return self._carry(ee, part, goal, to_goal, belt)
        if to_goal < 0.06 and part[2] < goal[2] + 0.06:  # in the tray, or dropping in: leave
            return self.act(ee, [ee[0], ee[1], goal[2] + self.carry_height_m], VACUUM_OFF)
        ahead = part + self.lead_s * belt
        reach = float(np.linalg.norm(ahead[:2]))
        if reach > self.reach_radius_m and belt @ belt > 0.02 ** 2:
            # Riding towards the robot: wait where it will come into reach.
            wait = ahead.copy()
            wait[:2] *= self.reach_radius_m / reach
            wait[2] += self.half_height_m + self.clearance_m
            return self.act(ee, wait, VACUUM_OFF)
        # Down on it while riding along: the belt's motion over one control step on top of
        # the correction, so the cup keeps pace with the part instead of trailing it.
        return self.pick(ee, ahead, width, follow=belt * self.period_s / self.scale_m)

    def _carry(self, ee: np.ndarray, part: np.ndarray, goal: np.ndarray, to_goal: float,
               belt: np.ndarray) -> np.ndarray:
        if to_goal < self.release_align_m and part[2] < goal[2] + self.release_height_m:
            return self.finish(np.array([0.0, 0.0, 0.0, VACUUM_OFF]))  # over the tray: let go
        if part[2] < self.rest_z + 0.03 and to_goal > 0.05:
            # Off the belt first, straight up and riding along: the belt drags the part while
            # it touches it, and a cup that stands still shears it off its face.
            return self.act(ee, ee + [0.0, 0.0, 0.05], VACUUM_ON, self.lift_speed,
                            follow=belt * self.period_s / self.scale_m)
        # Over the goal, coming down as it gets close, aiming the part a centimetre below the
        # release height so that it gets there instead of creeping up on it.
        descent = min(1.0, max(0.0, (to_goal - self.release_align_m) / 0.05))
        height = self.release_height_m - 0.01 + (self.carry_height_m + 0.01) * descent
        target = goal + [0.0, 0.0, height]
        return self.act(ee, ee + (target - part), VACUUM_ON, self.carry_speed)

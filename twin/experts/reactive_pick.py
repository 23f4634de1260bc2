"""A pick-and-hold expert whose action depends on the current observation alone.

The phase machine of :mod:`celltwin.experts.pick_place` remembers where it is in the cycle
(grasp timers, the grasp point). A learner that sees only observations cannot tell those
phases apart, so cloning it is ambiguous, and relabelling the learner's own states with it
(DAgger, Ross et al. 2011) gives labels that contradict the demonstrations: the phase the
expert is in depends on a history the learner did not follow. This expert reads its decision
off the observation (TCP and part positions, gripper opening, goal), so the same state always
gets the same action: behaviour cloning has one target per state, and DAgger works.

Per episode it keeps two constants read at reset, not history: the part's width (startup
randomization may have resized it) and the height it rests at.
"""

from __future__ import annotations

import numpy as np

from celltwin.experts.base import Expert


class ReactivePickExpert(Expert):
    """Pick the task's part and hold it at the goal (PickPlace), reactively.

    Args:
        env: a ``celltwin`` PickPlace env (``ee_delta`` control).
        clearance_m: height above the part the approach funnels down from [m].
        align_m: horizontal TCP-to-part distance within which it closes [m] (twice that
            while the fingers are already closing); the approach aims at the part itself
            from half of it on.
        grasp_height_m: vertical TCP-to-part distance within which it closes [m] (2.5 times
            that while the fingers are already closing).
        lift_speed: fraction of the full action while the part is still near the table:
            a fast first lift tears a heavy, slippery part out of a grip that is still
            building up (measured: 94% instead of 96% on the shifted-physics twin).
        carry_speed: fraction of the full action while carrying [-].
        funnel_m: how much further than ``align_m / 2`` off horizontally the approach aims the
            full clearance above the part [m].
    """

    markov = True

    def __init__(self, env, clearance_m: float = 0.05, align_m: float = 0.008,
                 grasp_height_m: float = 0.008, lift_speed: float = 0.25,
                 carry_speed: float = 0.7, funnel_m: float = 0.03):
        super().__init__(env)
        self.env = env.unwrapped
        self.clearance_m = clearance_m
        self.align_m = align_m
        self.grasp_height_m = grasp_height_m
        self.lift_speed = lift_speed
        self.carry_speed = carry_speed
        self.funnel_m = funnel_m
        self.open_m = float(self.env.robot.model.gripper_width_range_m[1])
        self.reset()

    def reset(self) -> None:
        env = self.env
        geometry = env.world.part_geometries[env.task.object_name]
        self.part_width_m = 2 * min(geometry.half_extents_m[:2])
        state = env.reader.read()  # after env.reset: the part at rest
        self.rest_z = float(state["object_position"][2])

    def __call__(self, observation) -> np.ndarray:
        ee = self.term(observation, "ee_position")
        self._ee_velocity = self.term(observation, "ee_velocity")
        part = self.term(observation, "object_position")
        width = float(self.term(observation, "gripper_width")[0])
        goal = self.goal(observation)
        horizontal = float(np.linalg.norm(ee[:2] - part[:2]))
        vertical = abs(float(ee[2] - part[2]))
        # Closed on the part: narrower than open, wider than half the part (a yawed part
        # holds the fingers wider than its side).
        clamped = 0.5 * self.part_width_m < width < self.open_m - 0.008
        if clamped and horizontal < 0.03 and vertical < 0.03:
            speed = self.lift_speed if part[2] < self.rest_z + 0.01 else self.carry_speed
            return self.act(ee, goal, -1.0, speed)
        if width <= 0.5 * self.part_width_m:  # closed on nothing: open, back above the part
            return self.act(ee, part + [0.0, 0.0, self.clearance_m], 1.0)
        # Fingers already on their way shut near the grasp point keep closing: with actuation
        # latency the TCP is seen a step late, and reopening on that stale view made the
        # gripper chatter open-shut until the episode ran out. (The width alone cannot tell
        # closing from reopening after a miss; a reopening gripper that is this close to the
        # part closes again in place, which is rare: see the figures in experts.py.)
        closing = width < self.open_m - 0.002
        if ((horizontal < self.align_m and vertical < self.grasp_height_m)
                or (closing and horizontal < 2 * self.align_m
                    and vertical < 2.5 * self.grasp_height_m)):
            return self.finish(np.array([0.0, 0.0, 0.0, -1.0]))  # at the grasp point: close
        # A funnel: the further off horizontally, or the less open the fingers, the higher
        # above the part it aims. Continuous on purpose: a clone blurs every switch in its
        # expert, and a switch between "stay above" and "go down" blurred is a hover that
        # never reaches the grasp point (seen: 5 of 100 cloned episodes stalled 1-3 cm off).
        return self.act(ee, part + [0.0, 0.0, self.funnel_height(horizontal, width)], 1.0)

    def funnel_height(self, horizontal: float, width: float) -> float:
        """How high above the part the approach aims [m], at ``horizontal`` TCP-to-part
        distance [m] with the fingers ``width`` [m] open."""
        offset = min(1.0, max(0.0, (horizontal - 0.5 * self.align_m) / self.funnel_m))
        closed = min(1.0, max(0.0, (self.open_m - 0.004 - width) / 0.01))
        return self.clearance_m * max(offset, closed)

    def act(self, ee: np.ndarray, target: np.ndarray, grip: float,
            speed: float = 1.0) -> np.ndarray:
        """Towards ``target`` at most ``speed`` (normalized) per step, with gripper ``grip``."""
        return self.finish(np.append(self.delta(ee, target, speed), grip))

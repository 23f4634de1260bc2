"""A layout run's cycle worked by a learned policy instead of the scripted expert.

The policy (an exported bundle's, given by the caller: ``celltwin layout run --policy
BUNDLE`` hands it :class:`celltwin.policies.bundle_policy.BundlePolicy`) drives the robot the
scripted cycle drove, through the same end-effector-delta controller, on the observation its
env built in training (:class:`celltwin.envs.state.StateReader` and the one observation
builder, with the part being worked as the object). A PickPlace policy picks the part and
holds it at a goal; a cell must then put it down, so the cycle is:

1. **policy** (reported as phase ``approach`` until the part is lifted off its rest, then
   ``carry``): the policy acts until the part is within its success distance of the hold
   goal: the place target, moved into the region of goals the policy was trained on where it
   lies outside (typically: above the tray, not in it);
2. **lower, release, retreat**: the scripted expert's last phases put the part down at the
   place target, as a cell program does after the policy's hold.

A policy that has not reached the hold goal after ``2 x`` its training episode length opens
and retreats; the run then judges the part (placed, retried or dropped) as for the expert.
After each cycle the arm returns to its home pose, where every training episode started.
The policy is only asked to pick parts at rest: a robot that intercepts parts on a moving
belt is refused, since no PickPlace episode showed one.
"""

from __future__ import annotations

import numpy as np

from celltwin.core.errors import Problem
from celltwin.envs.state import StateReader
from celltwin.experts.pick_place import Phase, PickPlaceExpert
from celltwin.layout.jobs import LayoutError
from celltwin.observation import ObservationLayout

LIFTED_M = 0.01            # the part this far above where it rested is being carried [m]
EPISODES_PER_CYCLE = 2     # policy steps allowed per cycle, in training episode lengths


class PolicyCycle:
    """One robot's cycle worked by ``policy``, in the expert's phase vocabulary.

    Args:
        policy: acts on a goal-conditioned observation (``observation``, ``achieved_goal``,
            ``desired_goal``) with a normalized end-effector-delta action; has
            ``observation_terms``, ``achieved_goal_term``, ``control``, ``robot_model``,
            ``success_threshold_m``, ``goal_bounds`` (base frame, or ``None``),
            ``max_episode_steps`` and ``reset()``, as a bundle policy does.
        worker: the robot's :class:`celltwin.layout.worker.Worker`.
        placer: the scripted expert whose lower, release and retreat phases end the cycle.

    Attributes:
        hold_goal: where the policy is asked to hold the part, robot base frame [m].
    """

    def __init__(self, policy, worker, placer: PickPlaceExpert):
        self.policy = policy
        self.worker = worker
        self.placer = placer
        self.layout = ObservationLayout(policy.observation_terms)
        self.hold_goal = hold_goal(policy, worker)
        self.max_steps = EPISODES_PER_CYCLE * int(policy.max_episode_steps)
        self.reset()

    @property
    def phase(self) -> Phase:
        return self._phase if self._phase is not None else self.placer.phase

    def reset(self) -> None:
        """Start a new cycle (the runner has set the worker's part)."""
        self._phase: Phase | None = Phase.APPROACH
        self.steps = 0
        self.reader: StateReader | None = None
        self.rest_z: float | None = None
        self.placer.reset()
        self.policy.reset()

    def act(self, ee_position, part_position, goal_position) -> np.ndarray:
        """The action of this control step (positions in the base frame, as for the expert;
        the policy reads its own, fuller observation)."""
        if self._phase is not None:
            action = self._policy_step()
            if action is not None:
                return action
        return self.placer.act(ee_position, part_position, goal_position)

    def _policy_step(self) -> np.ndarray | None:
        """The policy's action, or ``None`` once the scripted place takes over."""
        worker = self.worker
        if self.reader is None:
            self.reader = StateReader(worker.world, worker.robot, worker.body,
                                      terms=self.policy.observation_terms)
        state = self.reader.read()
        achieved = np.asarray(state[self.policy.achieved_goal_term], dtype=float)
        if self.rest_z is None:
            self.rest_z = float(achieved[2])
        if achieved[2] > self.rest_z + LIFTED_M:
            self._phase = Phase.CARRY
        if np.linalg.norm(achieved - self.hold_goal) < self.policy.success_threshold_m:
            self._hand_over(Phase.LOWER)
            return None
        if self.steps >= self.max_steps:
            self._hand_over(Phase.RELEASE)  # given up: open, retreat; the run judges the part
            return None
        self.steps += 1
        observation = {"observation": self.layout.build(state),
                       "achieved_goal": achieved.astype(np.float32),
                       "desired_goal": self.hold_goal.astype(np.float32)}
        return np.asarray(self.policy(observation), dtype=float)

    def _hand_over(self, phase: Phase) -> None:
        self.placer.phase = phase
        self._phase = None


def hold_goal(policy, worker) -> np.ndarray:
    """The place target in the worker's base frame, moved into the policy's goal region.

    Raises:
        LayoutError: the place target lies beside the region horizontally by more than the
            run's place tolerance: the policy cannot bring the part above it.
    """
    goal = np.asarray(worker.goal_in_base, dtype=float)
    if policy.goal_bounds is None:
        return goal
    low, high = (np.asarray(corner, dtype=float) for corner in policy.goal_bounds)
    held = np.clip(goal, low, high)
    off = float(np.linalg.norm(held[:2] - goal[:2]))
    if off > worker.options.place_tolerance_m:
        region = ", ".join(f"{axis} {lo:.3f}..{hi:.3f}" for axis, lo, hi in zip("xyz", low, high))
        raise LayoutError(Problem(
            f"place target '{worker.job.place.name}' of robot '{worker.job.robot}' lies "
            f"{off:.3f} m beside the goals the policy was trained on ({region} m, robot base "
            f"frame; the target is at {', '.join(f'{v:.3f}' for v in goal)})",
            path="--policy", expected="a policy trained with goals over the place target, or "
                                      "another --place"))
    return held


def check_policy(policy, worker) -> list[Problem]:
    """What keeps ``policy`` from working ``worker``'s robot (empty when it fits)."""
    job, robot = worker.job, worker.robot
    problems = []
    if policy.robot_model != robot.model.name:
        problems.append(Problem(f"the policy drives a {policy.robot_model}; robot "
                                f"'{job.robot}' is a {robot.model.name}", path="--policy",
                                expected=f"a policy trained on {robot.model.name}, or "
                                         f"--robot {policy.robot_model}"))
    if policy.control != "ee_delta":
        problems.append(Problem(f"the policy acts in {policy.control}; a layout cycle moves "
                                "the TCP (ee_delta)", path="--policy",
                                expected="a policy trained with control ee_delta"))
    if not policy.achieved_goal_term.startswith("object_"):
        problems.append(Problem("the policy moves no object (its goal is "
                                f"{policy.achieved_goal_term})", path="--policy",
                                expected="a policy that picks a part and holds it at a goal "
                                         "(PickPlace)"))
    if worker.intercepts:
        problems.append(Problem(f"robot '{job.robot}' picks parts moving on belt "
                                f"'{job.feed.conveyor}' at '{job.pick.name}'; a learned policy "
                                "picks parts at rest", path="--pick", value=job.pick.name,
                                expected="a pick target of a bin, a fixture or a belt's end"))
    return problems

"""CellEnv: a goal-conditioned Gymnasium environment hosted on a cell twin.

Composition, not inheritance: a :class:`celltwin.world.World` (physics), one
:class:`celltwin.robots.Robot` with a controller (actions), a task (goals, rewards, episode start), a
:class:`StateReader` and the :class:`ObservationLayout` (observations).

Episodes and their end:
    * ``reset`` restores the snapshot taken right after the world was built (bit-exact), then
      the task places its object and draws a goal from ``self.np_random``. The same seed and the
      same actions therefore give identical observations. The robot's joint-sensor noise
      (``robots.<name>.joint_noise_std_rad``, on measured joints: what the joint controllers
      start from) draws from ``self.np_random`` too.
    * Actuation latency (``robots.<name>.latency_steps``) is the robot's: the controller's
      set-points reach the motors that many steps later (:mod:`celltwin.robots.actuation`).
    * ``terminated`` is True when the task succeeds (goal reached), as in panda-gym v3.
    * ``truncated`` is True when physics blows up (non-finite state or runaway speed;
      ``info["physics_blowup"]`` says so). The time limit (``max_episode_steps`` of the
      registration) is added by Gymnasium's ``TimeLimit`` wrapper, which also truncates.
    * Actions outside the action space are clipped; non-finite actions raise :class:`EnvError`
      rather than reaching the physics.

Observations are a ``Dict`` (observation, achieved_goal, desired_goal) for goal-conditioned
learning with HER. For algorithms that want one vector (PPO), wrap the env in Gymnasium's
``FlattenObservation``: flattening is a wrapper's job, not the env's.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from celltwin.robots.controllers import make_controller
from celltwin.observation import ObservationLayout
from celltwin.envs.state import StateReader
from celltwin.envs.tasks import task_class
from celltwin.envs.tasks.base import goal_distance
from celltwin.core.errors import EnvError, Problem, did_you_mean, one_of
from celltwin.physics import PhysicsParams
from celltwin.randomization import RandomizationConfig, Randomizer, load_randomization
from celltwin.randomization import ADR
from celltwin.randomization.looks import Looks
from celltwin.randomization.sensing import SensorModel
from celltwin.render import render_view
from celltwin.spec import CellSpec, load_cell
from celltwin.world import World

MAX_EE_SPEED_MPS = 10.0       # far beyond any arm; only a numerical explosion gets there
MAX_OBJECT_SPEED_MPS = 20.0
GRIPPER_CLOSED = -1.0


class CellEnv(gym.Env):
    """Goal-conditioned robot task on a cell twin.

    Args:
        task: a task name of :data:`celltwin.envs.tasks.TASKS` (``Reach``, ``PickPlace``...).
        cell: cell file, example name or CellSpec (default: the task's ``default_cell``).
        robot: swap the cell's robots for this registered model.
        control: ``ee_delta``, ``joint_delta`` or ``joint_position``.
        reward: ``sparse`` (-1 until success, then 0) or ``dense`` (-distance [m]).
        physics: physics overrides: a PhysicsParams, a YAML file, or a mapping.
        render_mode: ``rgb_array`` (offscreen) or ``human`` (pybullet's GUI; needs a display).
        render_width, render_height: image size for ``rgb_array`` [px].
        robot_name: which robot of a multi-robot cell acts (default: the first).
        randomization: domain randomization: a preset (``none``, ``light``, ``standard``,
            ``aggressive``), a YAML file, or terms; sampled values are in ``info`` at reset.
        adr: an :class:`celltwin.randomization.ADR` that widens and narrows the uniform terms.
        workspace_low_m, workspace_high_m: box the TCP target stays in under ``ee_delta``, in
            the robot base frame [m]; by default the target stays above the task's work
            surface (the lowest point of its regions less 2 cm), as panda-gym's above its table.
        **task_options: passed to the task: ``object``, ``pick``, ``place``, ``goal_region``
            (names of the cell's parts, spawn regions, targets, bins; each task takes those it
            uses, and finds the others by the conventions of docs/cells.md).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 25}

    def __init__(self, task: str = "Reach", cell: str | Path | CellSpec | None = None,
                 robot: str | None = None, control: str = "ee_delta", reward: str = "sparse",
                 physics: PhysicsParams | str | Path | dict | None = None,
                 render_mode: str | None = None,
                 render_width: int = 480, render_height: int = 480,
                 robot_name: str | None = None, randomization=None, adr=None,
                 workspace_low_m=None, workspace_high_m=None, **task_options):
        task_cls = task_class(task)
        _check_task_options(task_cls, task_options)
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise EnvError(Problem(f"unknown render mode '{render_mode}'", path="render_mode",
                                   expected=one_of(self.metadata["render_modes"])))
        if render_mode == "human" and not os.environ.get("DISPLAY"):
            raise EnvError(Problem("render_mode 'human' opens pybullet's window and needs a "
                                   "display; none is set (DISPLAY)", path="render_mode",
                                   expected="'rgb_array' on a headless machine"))
        spec = cell if isinstance(cell, CellSpec) else load_cell(cell or task_cls.default_cell)
        if robot is not None:
            spec = spec.with_robot_model(robot)
        self.render_mode = render_mode
        self.render_size = (_pixels(render_width, "render_width"),
                            _pixels(render_height, "render_height"))
        self._twin_options = {"spec": spec, "physics": _physics(physics), "robot_name": robot_name,
                              "task": task_cls, "reward": reward, "task_options": task_options,
                              "control": control, "workspace": (workspace_low_m, workspace_high_m)}
        self._build_twin()
        self.layout = ObservationLayout(self.task.observation_terms)
        self.sensors = SensorModel(self.layout)
        self._steps = 0
        self._last_success: bool | None = None
        self._define_spaces()
        self.set_randomization(randomization, adr)
        self._last_obs = None

    def _build_twin(self) -> None:
        """Build the world and what acts on it (robot, task, controller, state reader)."""
        options = self._twin_options
        spec = options["spec"]
        name = options["robot_name"] or spec.robots[0].name
        # A task that never opens the gripper holds it closed, welded shut: the same robot,
        # about 30% less physics time per step (robots/held_gripper.py).
        # (A robot name the cell lacks is left to world.robot() below to report.)
        held = (name,) if not options["task"].uses_gripper and \
            name in {robot.name for robot in spec.robots} else ()
        self.world = World(spec, physics=options["physics"], gui=self.render_mode == "human",
                           held_grippers=held)
        try:
            self.robot = self.world.robot(name)
            self.task = options["task"](self.world, self.robot, options["reward"],
                                        **options["task_options"])
            self.controller = self._make_controller(options["control"], *options["workspace"])
        except BaseException:
            self.world.close()
            raise
        self._follow_rebuilt_parts()
        self.looks = Looks(self.world)  # colours and textures, kept across randomizers
        self._goal_marker = self._add_goal_marker() if self.render_mode else None
        self._nominal = self._snapshot = self.world.snapshot()

    def _follow_rebuilt_parts(self) -> None:
        """Point the task and the state reader at the world's current part bodies."""
        self.task.follow_rebuilt_parts()
        name = self.task.object_name
        com = self.world.part_geometries[name].com_m if name is not None else (0.0, 0.0, 0.0)
        self.reader = StateReader(self.world, self.robot, self.task.object_body,
                                  self.task.observation_terms, com)
        self._revision = self.world.revision

    def _make_controller(self, control: str, low, high):
        period = self.world.control_period_s  # the joint motion limits are judged over it
        if control != "ee_delta":
            return make_controller(control, self.robot, control_period_s=period)
        surface = self.task.work_surface_z()
        if low is None and surface is not None:
            # Keep the TCP target above the task's work surface (in the base frame).
            floor = surface - float(self.robot.base_xyz[2])
            low = (-np.inf, -np.inf, floor)
        return make_controller(control, self.robot, workspace_low_m=low, workspace_high_m=high,
                               control_period_s=period)

    # ----------------------------------------------------------------------------- spaces
    def _define_spaces(self) -> None:
        low, high = self.controller.action_low, self.controller.action_high
        if not self.task.uses_gripper:
            low, high = low[:-1], high[:-1]
        self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                       dtype=np.float32)
        goal = spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "observation": spaces.Box(-np.inf, np.inf, shape=(self.layout.size,), dtype=np.float32),
            "achieved_goal": goal, "desired_goal": goal})

    def _add_goal_marker(self) -> int:
        client = self.world.client
        visual = client.createVisualShape(client.GEOM_SPHERE, radius=0.02, rgbaColor=[0.1, 0.9, 0.1, 0.5])
        return client.createMultiBody(0.0, -1, visual, [0, 0, -1])

    def goal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The box of desired goals this env draws, in the robot base frame [m]: ``(low, high)``.

        What a policy trained here has seen; export records it in a bundle's manifest, and
        deployment and evaluation refuse goals far outside it.
        """
        return self.task.goal_bounds(self.reader.to_base)

    def set_randomization(self, randomization=None, adr=None) -> None:
        """Switch domain randomization (``None`` for the nominal twin); applies from the next reset.

        Startup terms of the previous setting are dropped: the world returns to the snapshot
        taken right after it was built. If a startup term rebuilt a part (size, shape, centre
        of mass), the twin is built again from its cell instead: pybullet restores saved states
        onto bodies by their order, and the order of bodies also decides the order contacts
        are solved in, so only a fresh build is exactly the nominal twin. ``world``,
        ``robot``, ``task`` and ``controller`` are then new objects. Colours and textures are
        not part of a snapshot; they go back to nominal either way.
        """
        config, strict = load_randomization(randomization)
        if self.world.revision:
            self.world.close()
            self._build_twin()
        else:
            self.world.restore(self._nominal)
            self.looks.restore()
        self._snapshot = self._nominal
        try:
            self.randomizer = Randomizer(self.world, self.robot, config, self.task.object_name,
                                         strict, adr, self.looks)
        except BaseException:
            # Stay a usable nominal twin, not one whose randomizer drives a closed world.
            self.randomizer = Randomizer(self.world, self.robot, RandomizationConfig(name="none"),
                                         looks=self.looks)
            self._dr_overwritten = frozenset()
            raise
        self._dr_overwritten = self.randomizer.overwritten

    def adr_state(self) -> dict | None:
        """The ADR state (ranges, queues' history) as plain data, or None without ADR.

        A method rather than an attribute so that vectorized envs in subprocesses can be asked
        for it (``VecEnv.env_method``) when a training run saves a checkpoint.
        """
        adr = self.randomizer.adr
        return None if adr is None else adr.to_dict()

    def load_adr_state(self, state: dict) -> None:
        """Continue ADR from a state saved by :meth:`adr_state` (a resumed training run)."""
        self.randomizer.adr = ADR.from_dict(state)

    # ----------------------------------------------------------------------------- episode
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._last_success is not None:
            self.randomizer.report(self._last_success)  # the episode that just ended
        if self.randomizer.startup_pending:
            self.world.restore(self._snapshot)
            # Drawn from a copy, so the episode's own draws do not depend on startup terms.
            self.randomizer.apply_startup(copy.deepcopy(self.np_random))
            if self.world.revision != self._revision:
                self._follow_rebuilt_parts()
            self._snapshot = self.world.snapshot()
        self.robot.actuation.rng = self.np_random  # joint-sensor noise, seeded by reset(seed)
        self._steps = 0
        self._last_success = False
        with self.world.motor_batch():  # restored targets and new gains/limits sent once
            self.world.restore(self._snapshot, self._dr_overwritten)
            self.task.reset(self.np_random, self.reader.to_base)
            values = self.randomizer.reset(self.np_random) if self.randomizer.active else {}
        self.sensors.reset()
        if self.render_mode == "human":
            self.looks.show()  # pybullet's window draws by itself; rgb_array waits for render()
        if self._goal_marker is not None:
            self.world.client.resetBasePositionAndOrientation(
                self._goal_marker, self.reader.to_world(self.task.goal).tolist(), [0, 0, 0, 1])
        state = self.reader.read()
        observation = self._observation(state)
        self._last_obs = observation
        success = self.task.is_success(self._goal_distance(observation))
        return observation, {"is_success": success,
                             "randomization": values}

    def step(self, action):
        action = np.asarray(action, dtype=float).reshape(-1)
        if action.shape != self.action_space.shape or not np.isfinite(action).all():
            raise EnvError(Problem("action is not finite or has the wrong size", path="action",
                                   value=action.tolist(),
                                   expected=f"{self.action_space.shape[0]} finite numbers"))
        action = np.clip(action, self.action_space.low, self.action_space.high)
        if not self.task.uses_gripper:
            action = np.append(action, GRIPPER_CLOSED)
        if self.randomizer.active:
            action = self._disturb(action)
        self.controller.apply(action)  # the robot's actuation applies any latency
        if self.render_mode == "human":
            self.looks.show()  # an interval texture term may have drawn a new texture
        self.world.step()
        state = self.reader.read()
        blowup = not self._physics_sane(state)
        if blowup:
            # Never hand NaN or garbage to a learner: repeat the last sane observation.
            observation = {key: value.copy() for key, value in self._last_obs.items()}
        else:
            observation = self._observation(state)
            self._last_obs = observation
        distance = self._goal_distance(observation)
        success = bool(not blowup and self.task.is_success(distance))
        self._last_success = success
        reward = self.task.reward_from_distance(distance)
        info = {"is_success": success, "physics_blowup": blowup,
                "reward_terms": {"distance_m": distance, "success": float(success)}}
        return observation, reward, success, blowup, info

    @staticmethod
    def _goal_distance(observation: dict) -> float:
        # On the observation's float32 goals: the distance compute_reward sees when HER
        # relabels, so reset, step and relabelling judge success alike.
        return float(goal_distance(observation["achieved_goal"], observation["desired_goal"]))

    def _disturb(self, action: np.ndarray) -> np.ndarray:
        """Actuation randomization: interval terms, action scale error and action noise."""
        self._steps += 1
        self.randomizer.step(self._steps, self.np_random)
        effects = self.randomizer.effects
        arm = action[:-1] * effects.action_scale
        if effects.action_noise_std > 0:
            arm = arm + self.np_random.normal(0.0, effects.action_noise_std, arm.shape)
        return np.append(np.clip(arm, self.controller.action_low[:-1], self.controller.action_high[:-1]),
                         action[-1])

    def _physics_sane(self, state: dict) -> bool:
        # A NaN or inf anywhere makes the sum non-finite; comparisons with NaN are False.
        if not math.isfinite(np.concatenate(tuple(state.values())).sum()):
            return False
        ee_velocity = state["ee_velocity"]
        if not ee_velocity @ ee_velocity <= MAX_EE_SPEED_MPS ** 2:
            return False
        velocity = state.get("object_velocity")
        return velocity is None or velocity @ velocity <= MAX_OBJECT_SPEED_MPS ** 2

    def _observation(self, state: dict):
        vector = self.layout.build(state)
        if self.randomizer.active:
            vector = self.sensors.apply(vector, self.randomizer.effects, self.np_random)
        return {"observation": vector,
                "achieved_goal": np.asarray(self.task.achieved_goal(state), dtype=np.float32),
                "desired_goal": self.task.goal.astype(np.float32)}

    def compute_reward(self, achieved_goal, desired_goal, info=None) -> np.ndarray:
        """Vectorized reward for HER: -1/0 (sparse) or -distance (dense)."""
        return self.task.compute_reward(achieved_goal, desired_goal, info)

    # ----------------------------------------------------------------------------- rendering
    def render(self):
        if self.render_mode == "rgb_array":
            width, height = self.render_size
            self.looks.show()  # textures drawn since the last picture; none before the first
            effects = self.randomizer.effects  # light and camera randomization, if any
            return render_view(self.world, view="perspective", width=width, height=height,
                               light_direction=effects.light_direction,
                               camera_offset_m=effects.camera_offset_m)
        return None

    def close(self) -> None:
        self.world.close()


MAX_RENDER_PX = 4096


def _pixels(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
            or not 1 <= value <= MAX_RENDER_PX:
        raise EnvError(Problem(f"{name} must be a whole number of pixels", path=name,
                               value=value, expected=f"an integer from 1 to {MAX_RENDER_PX}"))
    return int(value)


def _check_task_options(task_cls, options: dict) -> None:
    """Refuse an option the task does not take, or a value that is not a name.

    Every option reaches the task's constructor; without this a typo or another task's option
    (``place_in`` on PickPlace) would end in Python's TypeError.
    """
    parameters = dict(inspect.signature(task_cls.__init__).parameters)
    for taken in ("self", "world", "robot", "reward"):
        parameters.pop(taken, None)
    accepted = sorted(parameters)
    env_options = sorted(name for name in inspect.signature(CellEnv.__init__).parameters
                         if name not in ("self", "task_options"))
    problems = []
    for name, value in options.items():
        if name not in parameters:
            problems.append(Problem(
                f"{task_cls.env_id} takes no option '{name}'"
                + did_you_mean(name, accepted + env_options), path=name, value=value,
                expected=(f"a {task_cls.name} option ({', '.join(accepted)}) or an env "
                          f"option ({', '.join(env_options)})" if accepted else
                          f"an env option ({', '.join(env_options)}); {task_cls.name} takes "
                          "no options of its own")))
        elif not (isinstance(value, str) and value) and \
                not (value is None and parameters[name].default is None):
            problems.append(Problem(f"{task_cls.env_id}: option '{name}' names a body or "
                                    "region of the cell", path=name, value=value,
                                    expected="a non-empty name (text)"))
    if problems:
        raise EnvError(problems)


def _physics(physics) -> PhysicsParams | None:
    if physics is None or isinstance(physics, PhysicsParams):
        return physics
    if isinstance(physics, (str, Path)):
        return PhysicsParams.load(physics)
    if isinstance(physics, dict):
        return PhysicsParams.from_mapping(physics)
    raise EnvError(Problem("physics must be a PhysicsParams, a YAML file or a mapping",
                           path="physics", value=type(physics).__name__))

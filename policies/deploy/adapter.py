"""The deployment adapter: a verified bundle driving a robot controller, behind a safety layer.

Each control step, on a monotonic clock at the bundle's control period:

1. read the controller's state (the watchdog stops when that fails, when the state's
   ``stamp_s`` has not advanced for ``stale_state_periods`` periods, counted in steps as they
   were due, or when the safety layer
   finds the state no real robot's: a non-finite value, joints far past their limits or
   faster than they can move; :meth:`SafetyLayer.measurement_fault`);
2. stop if an emergency or protective stop is active or the mode is not an automatic one;
3. build the observation with :mod:`celltwin.observation` (:class:`Observer`);
4. run the ONNX policy; its action is already in controller units;
5. turn it into joint targets as the twin's controller does: ``ee_delta`` moves the TCP target
   from the *measured* TCP (numpy damped-least-squares IK from the measured joints, the TCP
   orientation held); ``joint_delta`` adds to the *measured* joints (the env's controller adds
   to measured positions, so the policy learned corrections relative to them; adding to the
   last command instead would let a lagging robot accumulate the commands it has not yet
   followed); ``joint_position`` uses the targets as they are;
6. pass them through the :class:`SafetyLayer` and send the result;
7. write one telemetry line (flushed).

Stops are latched: after any stop the adapter sends nothing (the controller holds its last
set-point) until :meth:`Adapter.rearm` is called explicitly; re-arming needs a readable
controller in an automatic mode with no stop active (and restarts the watchdog, so state that
stays stale stops it again). Nothing resumes by itself: not after a stop is cleared, not after
the controller comes back.

numpy and onnxruntime only (plus the light celltwin modules): it runs on a controller PC.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from celltwin.policies.bundle import Bundle, check_compatible, load_bundle
from celltwin.policies.deploy.observer import Observer
from celltwin.policies.deploy.runtime import OnnxPolicy, Pacer
from celltwin.policies.deploy.safety import SafetyLayer, SafetyLimits
from celltwin.policies.deploy.telemetry import TelemetryWriter
from celltwin.controller.interface import MOVING_MODES, Controller, ControllerState
from celltwin.controller.errors import ControllerError
from celltwin.policies.kinematics import KinematicChain, quat_to_matrix
from celltwin.core.errors import CelltwinError, Problem

IDLE, RUNNING, STOPPED = "idle", "running", "stopped"


@dataclass
class StepResult:
    """What one control step did.

    Attributes:
        sent: a set-point went to the controller.
        command: the set-point [rad] (``None`` when nothing was computed).
        success: the achieved goal is within the success threshold of the goal.
        distance_m: achieved-to-desired goal distance [m] (``None`` without state).
        flags: safety limits that acted.
        stop_reason: why the adapter stopped at this step (``None`` if it did not).
    """

    sent: bool
    command: np.ndarray | None = None
    success: bool = False
    distance_m: float | None = None
    flags: tuple[str, ...] = ()
    stop_reason: str | None = None


@dataclass
class RunSummary:
    """Outcome of :meth:`Adapter.run`."""

    steps: int
    success: bool
    stop_reason: str | None
    overruns: int
    final_distance_m: float | None
    safety_counts: dict = field(default_factory=dict)


class Adapter:
    """Runs a policy bundle against a controller (see the module docstring).

    Args:
        bundle: a loaded :class:`Bundle` or the bundle folder (loaded and verified here).
        controller: anything implementing :class:`~celltwin.controller.interface.Controller`.
        goal: desired goal in the robot base frame [m] (e.g. the Reach target).
        telemetry: JSON-lines file to append one record per step to (``None``: none).
        reduced_mode: cap TCP speed at the manifest's reduced-mode speed (0.25 m/s).
        dry_run: do everything but send set-points.
        period_s: control period [s]; default the bundle's (the period the policy was
            trained at; another one changes what its actions mean per second).
        object_name: tracked object the policy observes (default: the manifest's).
        paced: keep real time; ``False`` runs steps back to back (lock-step controllers in
            tests), with the watchdog counting steps as periods.
        protective_stop_on_fault: on a watchdog, link, observation or send fault, ask the
            controller for a protective stop (when its transport has ``raise_protective_stop``).

    Raises:
        BundleError: the bundle fails verification or is for another robot or joint order.
    """

    def __init__(self, bundle: Bundle | str | os.PathLike, controller: Controller,
                 goal: Sequence[float], *, telemetry: str | os.PathLike | None = None,
                 reduced_mode: bool = False, dry_run: bool = False,
                 period_s: float | None = None, object_name: str | None = None,
                 paced: bool = True, protective_stop_on_fault: bool = True):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        manifest = self.bundle.manifest
        check_compatible(manifest, controller)
        self.controller = controller
        self.manifest = manifest
        robot, control = manifest["robot"], manifest["control"]
        self.chain = KinematicChain.from_manifest(robot["kinematics"], robot["joint_names"])
        self.policy = OnnxPolicy(self.bundle.onnx_bytes, manifest)
        self.observer = Observer(manifest, self.chain, object_name)
        self.period_s = float(period_s if period_s is not None else control["period_s"])
        self.limits = SafetyLimits.from_manifest(manifest)
        self.safety = SafetyLayer(self.limits, self.chain, self.period_s, reduced_mode)
        self.mode = control["mode"]
        self.arm_size = manifest["action"]["arm_size"]
        self.ik_damping = float(control["ik_damping"])
        quat = control.get("tcp_orientation_quat_xyzw")
        self.tcp_rotation = quat_to_matrix(quat) if quat is not None else None
        self.threshold_m = float(manifest["observation"]["success_threshold_m"])
        self.stale_periods = int(manifest["safety"]["stale_state_periods"])
        self.goal = self._goal(goal)
        self.open_run(telemetry, reduced_mode=reduced_mode, dry_run=dry_run, paced=paced,
                       protective_stop_on_fault=protective_stop_on_fault,
                       header={"bundle": str(self.bundle.path),
                               "task": manifest["training"]["task"]})

    def open_run(self, telemetry, *, reduced_mode: bool, dry_run: bool, paced: bool,
                  protective_stop_on_fault: bool, header: dict) -> None:
        """Set the state every run starts from and write the telemetry's header record:
        ``header`` (what is run) and what every adapter's header says. Called once, by the
        constructor of this class or of an adapter built on it (a program player)."""
        self.dry_run = bool(dry_run)
        self.paced = bool(paced)
        self.protective_stop_on_fault = bool(protective_stop_on_fault)
        self.telemetry = TelemetryWriter(telemetry)
        self.state = IDLE
        self.stop_reason: str | None = None
        self.pacer = Pacer(self.period_s)
        self.steps = 0
        self._last_stamp: float | None = None
        self._last_advance: float | None = None
        self._t0 = time.monotonic()
        self._virtual_now = 0.0
        robot = self.manifest["robot"]
        self.telemetry.write({
            "type": "header", **header, "robot_model": robot["model"],
            "joint_names": robot["joint_names"], "control_mode": self.mode,
            "period_s": self.period_s, "goal": self.goal, "dry_run": self.dry_run,
            "reduced_mode": bool(reduced_mode),
            "manifest_sha256": self.manifest["manifest_sha256"], "wall_time": time.time()},
            sync=True)

    # --- arming ----------------------------------------------------------------------------

    def set_goal(self, goal: Sequence[float]) -> None:
        """Change the desired goal (base frame [m])."""
        self.goal = self._goal(goal)

    # Joint speed under which the robot counts as standing still for arming [rad/s].
    STILL_RAD_S = 0.05

    def stop(self, reason: str = "stopped by the caller") -> None:
        """Stop sending (latched, like any stop); the controller holds its last set-point."""
        self._stop(reason)

    def rearm(self, settle_timeout_s: float = 2.0) -> None:
        """Arm the adapter (first start, or after a stop): the only way to (re)start motion.

        Reads the controller; requires an automatic mode, no emergency or protective stop, and
        a robot standing still (waits up to ``settle_timeout_s`` for it to come to rest): the
        safety layer restarts from rest at the measured joints, which is only true then.

        Raises:
            ControllerError: already armed, the controller cannot be read or reports an
                implausible state, is not ready to move, the robot keeps moving, or it stands
                outside the safety limits.
        """
        if self.state == RUNNING:
            raise ControllerError(Problem("the adapter is armed already",
                                          expected="stop() before arming again"))
        deadline = time.monotonic() + settle_timeout_s
        while True:
            asked_at = self._now()
            state = self._read_for_arming()
            fault = self.safety.measurement_fault(state)
            if fault:
                raise ControllerError(Problem(f"cannot arm: {fault}",
                                              expected="a plausible controller state"))
            velocities = np.abs(np.asarray(state.joint_velocities, dtype=float))
            speed = float(velocities.max()) if velocities.size else 0.0
            if speed <= self.STILL_RAD_S or time.monotonic() >= deadline:
                break
            time.sleep(min(self.period_s, 0.02))
        if speed > self.STILL_RAD_S:
            raise ControllerError(Problem("cannot arm: the robot is still moving",
                                          value=f"{speed:.3f} rad/s",
                                          expected=f"standing still (<= {self.STILL_RAD_S} rad/s)"))
        blocked = self._blocking_reason(state)
        if blocked:
            raise ControllerError(Problem(f"cannot arm: {blocked}",
                                          expected="an automatic mode (AUTOMATIC, "
                                                   "AUTOMATIC_EXTERNAL) and no active stop"))
        self.safety.reset(state.joint_positions, state.gripper_width_m)
        self.observer.reset()
        self._last_stamp = state.stamp_s
        self._last_advance = asked_at
        self.state = RUNNING
        self.stop_reason = None
        self.telemetry.write({"type": "event", "event": "armed", "t": self._elapsed(),
                              "stamp_s": state.stamp_s, "q_measured": state.joint_positions},
                             sync=True)

    arm = rearm

    def _read_for_arming(self) -> ControllerState:
        try:
            return self.controller.read_state()
        except CelltwinError:
            raise
        except Exception as exc:  # transports should raise ControllerError; be safe anyway
            raise ControllerError(Problem(f"cannot read the controller to arm: {exc}")) from None

    # --- one step --------------------------------------------------------------------------

    def step(self, *, lateness_s: float = 0.0, overrun: bool = False) -> StepResult:
        """Run one control step (see the module docstring); never raises for controller faults.

        A fault stops the adapter (latched) and is reported in the result and telemetry.
        """
        self.steps += 1
        if not self.paced:
            self._virtual_now += self.period_s  # a step stands for a period
        started = time.perf_counter()
        # When this step was due: the watchdog's clock (see _watchdog).
        due = self._now() - lateness_s
        record = {"type": "step", "step": self.steps, "t": self._elapsed(),
                  "lateness_ms": 1e3 * lateness_s, "overrun": overrun,
                  "overruns": self.pacer.overruns}
        try:
            state = self.controller.read_state()
        except Exception as exc:  # noqa: BLE001  (any transport failure stops the robot)
            reason = f"controller unreachable: {_one_line(exc)}"
            return self._finish(record, started, self._stop(reason, fault=True), state=None)
        read_done = time.perf_counter()
        record.update(_state_fields(state))
        if self.state == RUNNING:
            fault = self.safety.measurement_fault(state) or self._watchdog(state, due)
            reason = fault or self._blocking_reason(state)
            if reason:
                return self._finish(record, started, self._stop(reason, fault=bool(fault)),
                                    state=state)
        try:
            return self._act(record, started, read_done, state)
        except Exception as exc:  # noqa: BLE001  (policy, IK, telemetry: any fault latches a stop)
            result = self._stop(f"internal error: {_one_line(exc)}", fault=True)
            record["internal_error"] = _one_line(exc)
            try:
                return self._finish(record, started, result, state=state)
            except Exception:  # noqa: BLE001  (telemetry itself failed; the stop stands)
                return result

    def _act(self, record: dict, started: float, read_done: float, state) -> StepResult:
        """Observe, infer, filter through the safety layer and send (one step after the read)."""
        try:
            observation = self.observer.observe(state, self.goal)
        except ControllerError as exc:
            result = self._stop(f"observation failed: {_one_line(exc)}", fault=True) \
                if self.state == RUNNING else StepResult(sent=False)
            return self._finish(record, started, result, state=state)
        distance = float(np.linalg.norm(observation.achieved_goal - self.goal))
        record.update(tcp_measured=observation.tcp_position,
                      achieved_goal=observation.achieved_goal,
                      distance_m=distance, success=distance < self.threshold_m)
        if self.state != RUNNING:
            result = StepResult(sent=False, distance_m=distance,
                                success=distance < self.threshold_m)
            return self._finish(record, started, result, state=state)

        infer_start = time.perf_counter()
        action = self.policy(observation.vector)
        record["infer_ms"] = 1e3 * (time.perf_counter() - infer_start)
        record["action"] = action
        target = self._joint_target(action, state, observation)
        # The last output is the gripper opening (the closed width when the task had none).
        command = self.safety.filter(target, float(action[self.arm_size]))
        record.update(q_target=target, q_command=command.positions,
                      gripper_command=command.gripper_width_m, tcp_command=command.tcp_position,
                      safety_flags=list(command.flags))
        sent = False
        if not self.dry_run:
            try:
                self.controller.send_joint_targets(command.positions, command.gripper_width_m)
                sent = True
            except Exception as exc:  # noqa: BLE001
                result = self._stop(f"send failed: {_one_line(exc)}", fault=True)
                result.command = command.positions
                return self._finish(record, started, result, state=state)
        record["read_ms"] = 1e3 * (read_done - started)
        result = StepResult(sent=sent, command=command.positions,
                            success=distance < self.threshold_m,
                            distance_m=distance, flags=command.flags)
        return self._finish(record, started, result, state=state)

    # --- the loop --------------------------------------------------------------------------

    def run(self, max_steps: int, *, stop_on_success: bool = True) -> RunSummary:
        """Arm (if idle) and run up to ``max_steps`` paced steps; ends early on a stop or success.

        Returns a summary; a stop is reported there (and in telemetry), not raised.
        """
        if self.state == IDLE:
            self.rearm()
        counts: dict[str, int] = {}
        result = StepResult(sent=False)
        done = 0
        if self.paced:
            self.pacer.start()
        for done in range(1, int(max_steps) + 1):
            lateness, overrun = self.pacer.wait() if self.paced and done > 1 else (0.0, False)
            result = self.step(lateness_s=lateness, overrun=overrun)
            for flag in result.flags:
                counts[flag] = counts.get(flag, 0) + 1
            if self.state == STOPPED or (stop_on_success and result.success):
                break
        return RunSummary(steps=done, success=bool(result.success), stop_reason=self.stop_reason,
                          overruns=self.pacer.overruns, final_distance_m=result.distance_m,
                          safety_counts=counts)

    def close(self) -> None:
        """Write the closing event and close telemetry (the controller is the caller's)."""
        self.telemetry.write({"type": "event", "event": "closed", "t": self._elapsed(),
                              "steps": self.steps, "overruns": self.pacer.overruns,
                              "state": self.state, "stop_reason": self.stop_reason}, sync=True)
        self.telemetry.close()

    def __enter__(self) -> "Adapter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _joint_target(self, action: np.ndarray, state: ControllerState, observation) -> np.ndarray:
        q = np.asarray(state.joint_positions, dtype=float)
        arm = action[:self.arm_size]
        if not np.isfinite(arm).all():
            # Handed on as NaN, so that the safety layer brakes and reports it, rather than
            # IK quietly answering "stay" for a target it cannot use.
            return np.full_like(q, np.nan)
        if self.mode == "joint_position":
            return arm.copy()
        if self.mode == "joint_delta":
            return q + arm
        target = observation.tcp_position + arm
        # The twin's controller clips the TCP target into its workspace; the safety box is
        # the deployed workspace, so the target is clipped to it before IK.
        target = np.clip(target, self.limits.workspace_low, self.limits.workspace_high)
        return self.chain.ik(q, target, self.tcp_rotation, damping=self.ik_damping,
                             lower=self.limits.lower, upper=self.limits.upper)

    def _watchdog(self, state: ControllerState, due: float) -> str | None:
        """Why ``state`` is stale, if it is; ``due``: when the step that read it was due.

        The stamp is checked once per step, so staleness is known in whole periods: it is
        measured between the times the steps were due (not when their reads were answered,
        a latency that varies by milliseconds from read to read) and counted to the nearest
        period. By the answer times, a first read answered 2 ms later than the third after it
        put the stop a step late.
        """
        if self._last_stamp is None or state.stamp_s > self._last_stamp:
            self._last_stamp = state.stamp_s
            self._last_advance = due
            return None
        stale = due - self._last_advance
        if stale >= (self.stale_periods - 0.5) * self.period_s:
            return (f"stale controller state: stamp {state.stamp_s:.3f} s has not advanced for "
                    f"{stale:.3f} s ({self.stale_periods} periods allowed)")
        return None

    @staticmethod
    def _blocking_reason(state: ControllerState) -> str | None:
        if state.emergency_stop:
            return "emergency stop active"
        if state.protective_stop:
            return "protective stop active"
        if state.operational_mode not in MOVING_MODES:
            return f"operational mode is {state.operational_mode}, not an automatic mode"
        return None

    def _stop(self, reason: str, fault: bool = False) -> StepResult:
        """Latch a stop. On a fault of the link or the data (not a stop the controller itself
        reports), also ask the controller for a protective stop where its transport offers one,
        so that it holds under its own certified functions, not just for lack of set-points."""
        if self.state != RUNNING:
            return StepResult(sent=False)
        self.state = STOPPED
        self.stop_reason = reason
        event = {"type": "event", "event": "stopped", "t": self._elapsed(), "reason": reason}
        escalate = getattr(self.controller, "raise_protective_stop", None)
        if fault and self.protective_stop_on_fault and escalate is not None:
            try:
                escalate()
                event["protective_stop_requested"] = True
            except Exception as exc:  # noqa: BLE001  (an unreachable controller cannot be told)
                event["protective_stop_requested"] = f"failed: {_one_line(exc)}"
        self.telemetry.write(event, sync=True)
        return StepResult(sent=False, stop_reason=reason)

    def _finish(self, record: dict, started: float, result: StepResult, state) -> StepResult:
        record.update(state_name=self.state, sent=result.sent, stop_reason=result.stop_reason,
                      step_ms=1e3 * (time.perf_counter() - started))
        self.telemetry.write(record)
        return result

    def _now(self) -> float:
        return time.monotonic() if self.paced else self._virtual_now

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _goal(self, goal: Sequence[float]) -> np.ndarray:
        size = int(self.manifest["observation"]["goal_size"])
        vector = np.asarray(goal, dtype=float).reshape(-1)
        if vector.shape != (size,) or not np.isfinite(vector).all():
            raise ControllerError(Problem("goal is invalid", path="goal", value=vector.tolist(),
                                          expected=f"{size} finite numbers in the robot base "
                                                   "frame [m]"))
        return vector


def _state_fields(state: ControllerState) -> dict:
    return {"stamp_s": state.stamp_s, "q_measured": state.joint_positions,
            "qd_measured": state.joint_velocities, "gripper_measured": state.gripper_width_m,
            "operational_mode": state.operational_mode, "emergency_stop": state.emergency_stop,
            "protective_stop": state.protective_stop,
            "objects": {name: np.asarray(p) for name, p in state.objects.items()}}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

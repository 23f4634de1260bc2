"""The twin as a :class:`~celltwin.controller.interface.Controller` in the same process.

The deployment adapter talks to a real cell through OPC UA; in tests and commissioning it can
talk to the twin directly through this class, with the same protocol and no sockets. Two clocks:

- lock-step (default): every :meth:`send_joint_targets` advances the twin ``ticks_per_command``
  control periods, so a policy step and a twin step line up exactly and runs are deterministic
  and as fast as the physics. Reading state never advances time.
- real time (``realtime=True``): a background thread ticks the twin once per control period of
  wall-clock time, as a controller's cycle does; commands and reads interleave with it the way
  they do on a real controller, so timing bugs (stale state, missed cycles) show up here first.

Thread-safe: the wrapped :class:`VirtualController` serializes every call.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from celltwin.controller.interface import ControllerState
from celltwin.controller.errors import ControllerError
from celltwin.core.errors import Problem
from celltwin.serve.virtual_controller import VirtualController


class InProcessController:
    """A Controller over a :class:`VirtualController`, lock-step or in real time.

    Args:
        controller: the twin to drive.
        realtime: tick on a background thread at the control period instead of per command.
        ticks_per_command: control periods one command advances in lock-step mode.
        owns_controller: close ``controller`` in :meth:`close`.

    Attributes:
        robot_model: the robot model name (``panda``).
        joint_names: arm joints, in the order of every joint array.
        virtual: the wrapped controller, for raising stops or stalling it in tests.
        overruns: real-time cycles that started more than one period late (skipped, not
            made up for: a controller that falls behind does not speed up).
    """

    def __init__(self, controller: VirtualController, *, realtime: bool = False,
                 ticks_per_command: int = 1, owns_controller: bool = True):
        if int(ticks_per_command) < 1:
            raise ControllerError(Problem("ticks per command must be at least 1",
                                          path="ticks_per_command", value=ticks_per_command,
                                          expected="an integer >= 1"))
        self.virtual = controller
        self.robot_model = controller.robot_model
        self.joint_names = controller.joint_names
        self.realtime = realtime
        self.overruns = 0
        self._ticks_per_command = int(ticks_per_command)
        self._owns = owns_controller
        self._closed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if realtime:
            self._thread = threading.Thread(target=self._run, name="celltwin-virtual-controller",
                                            daemon=True)
            self._thread.start()

    def read_state(self) -> ControllerState:
        """The controller's latest state sample."""
        self._check_open()
        return self.virtual.state()

    def send_joint_targets(self, positions: np.ndarray,
                           gripper_width_m: float | None = None) -> None:
        """Command joint set-points [rad]; in lock-step mode, then advance the twin."""
        self._check_open()
        self.virtual.command(positions, gripper_width_m)
        if not self.realtime:
            self.virtual.tick(self._ticks_per_command)

    def close(self) -> None:
        """Stop the clock (joining its thread) and release the twin. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._owns:
            self.virtual.close()

    def __enter__(self) -> "InProcessController":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        period = self.virtual.control_period_s
        deadline = time.monotonic()
        while not self._stop.is_set():
            deadline += period
            delay = deadline - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    return
            elif delay < -period:
                self.overruns += 1
                deadline = time.monotonic()
            try:
                self.virtual.tick()
            except ControllerError:
                return  # closed underneath us: nothing left to tick

    def _check_open(self) -> None:
        if self._closed:
            raise ControllerError(Problem(
                f"in-process controller of robot '{self.virtual.robot_name}' is closed",
                expected="a controller that is still open"))

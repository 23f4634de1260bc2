"""The adapter's two runtime pieces: the ONNX policy and the control-loop clock.

:class:`OnnxPolicy` runs a bundle's ``policy.onnx`` in onnxruntime, single-threaded: one
observation per step is far too small for threads to pay, and a second thread on a controller
PC competes with the communication stack for cores.

:class:`Pacer` keeps the loop on a monotonic clock at a fixed period: each step starts at its
deadline (sleep, then a short spin for the last fraction of a millisecond, as ``time.sleep``
wakes up late by tens to hundreds of microseconds). A step whose work runs past the next
deadline is an *overrun*: counted; when the loop falls more than a whole period behind, the
schedule restarts from now instead of firing the missed steps in a burst, which would command
motion faster than the policy was trained for.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from celltwin.policies.errors import BundleError
from celltwin.core.errors import Problem

_SPIN_S = 0.0005


class OnnxPolicy:
    """The exported policy: raw observation vector in, controller-unit action out.

    Args:
        onnx_bytes: the verified model bytes of a bundle.
        manifest: the bundle's manifest (input/output names and sizes are checked against it).
    """

    def __init__(self, onnx_bytes: bytes, manifest: dict):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(onnx_bytes, options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BundleError(Problem(f"onnxruntime cannot load the policy: {exc}",
                                      path="policy.onnx_file")) from None
        spec = manifest["policy"]
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [spec["input"]["name"]] or \
                inputs[0].shape[-1] != spec["input"]["size"]:
            raise BundleError(Problem("the ONNX model's input is not the manifest's",
                                      path="policy.input",
                                      value=[(i.name, i.shape) for i in inputs],
                                      expected=f"{spec['input']['name']} of size {spec['input']['size']}"))
        if outputs[0].name != spec["output"]["name"] or outputs[0].shape[-1] != spec["output"]["size"]:
            raise BundleError(Problem("the ONNX model's output is not the manifest's",
                                      path="policy.output",
                                      value=[(o.name, o.shape) for o in outputs],
                                      expected=f"{spec['output']['name']} of size {spec['output']['size']}"))
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self._batch = np.zeros((1, spec["input"]["size"]), dtype=np.float32)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        """Action (float64, controller units) for one observation vector."""
        self._batch[0] = observation
        out = self.session.run([self.output_name], {self.input_name: self._batch})[0]
        return out[0].astype(np.float64)


class Pacer:
    """Deadlines every ``period_s`` on a monotonic clock; counts overruns.

    Args:
        period_s: loop period [s].
        clock: monotonic clock [s] (injectable for tests).
        sleep: sleep function [s].
    """

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.period_s = float(period_s)
        self._clock = clock
        self._sleep = sleep
        self._deadline: float | None = None
        self.overruns = 0

    def start(self) -> float:
        """Begin the schedule now; returns the first deadline."""
        self._deadline = self._clock()
        return self._deadline

    def wait(self) -> tuple[float, bool]:
        """Wait for the next deadline.

        Returns:
            (lateness of this step's start past its deadline [s], whether the previous step
            overran: its work ended after this step's deadline).
        """
        if self._deadline is None:
            self.start()
            return 0.0, False
        self._deadline += self.period_s
        remaining = self._deadline - self._clock()
        overrun = remaining < 0.0
        if overrun:
            self.overruns += 1
            if remaining < -self.period_s:
                # More than a whole period behind: skip the missed steps rather than burst.
                self._deadline = self._clock()
        elif remaining > _SPIN_S:
            self._sleep(remaining - _SPIN_S)
        while self._clock() < self._deadline:
            pass
        return self._clock() - self._deadline, overrun

"""Sensor disturbances on the observation vector: noise, per-episode bias, drops and delays.

Applied to the ``observation`` entry only; achieved and desired goals stay exact because the
reward is computed from the true state (what a real cell's success check would measure).
"""

from __future__ import annotations

from collections import deque

import numpy as np


class SensorModel:
    """Turns true observation vectors into what the disturbed sensors report.

    Args:
        layout: the env's observation layout (term slices).
    """

    def __init__(self, layout):
        self.layout = layout
        self._history: deque = deque(maxlen=51)
        # term name -> its slices; "*" (every term) -> all of them
        self._by_key = {name: (layout.slices[name],) for name in layout.names}
        self._by_key["*"] = tuple(layout.slices[name] for name in layout.names)
        self._last: np.ndarray | None = None  # what the sensors reported last step

    def reset(self) -> None:
        self._history.clear()
        self._last: np.ndarray | None = None

    def apply(self, vector: np.ndarray, effects, rng: np.random.Generator) -> np.ndarray:
        """Return the reported vector for this step (``vector``, the true one, is kept)."""
        self._history.append(vector)
        reported = vector.copy()
        slices = self._by_key
        for key, steps in effects.sensor_delay_steps.items():
            if steps > 0:
                past = self._history[max(0, len(self._history) - 1 - steps)]
                for part in slices.get(key, ()):
                    reported[part] = past[part]
        if self._last is not None:
            for key, probability in effects.sensor_drop_probability.items():
                if probability > 0 and rng.random() < probability:
                    for part in slices.get(key, ()):
                        reported[part] = self._last[part]  # a dropped reading repeats the last one
        for key, bias in effects.sensor_bias.items():
            for part in slices.get(key, ()):
                reported[part] += bias
        normal = rng.normal
        for key, std in effects.sensor_noise_std.items():
            if std > 0:
                for part in slices.get(key, ()):
                    reported[part] += normal(0.0, std, part.stop - part.start)
        self._last = reported
        return reported.copy()

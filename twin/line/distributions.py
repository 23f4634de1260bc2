"""Random durations of a line model: the typed ``dist`` models and a batched sampler.

A duration in a line file is either a bare number (a constant) or a mapping whose ``dist`` key
picks the kind. Every kind knows its expected value (``expected_value()``) and draws a batch of
values from a numpy ``Generator`` (``draw()``). All draws are strictly positive: a normal is
truncated at zero by redrawing, which keeps its shape for the usual ``std << mean``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Protocol, Union, get_args

import numpy as np
from pydantic import BeforeValidator, Discriminator, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from celltwin.core.documents import FROM_YAML
from celltwin.spec.primitives import PositiveFloat, SpecModel

NonNegativeFloat = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class _Dist(SpecModel):
    """Base of the duration models: an expected value and a batched draw, in the file's unit."""

    def expected_value(self) -> float:
        """Expected value of a draw [same unit as the parameters]."""
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Return ``size`` independent draws, each > 0."""
        raise NotImplementedError


class Constant(_Dist):
    """Always the same value."""

    dist: Literal["constant"] = "constant"
    value: PositiveFloat
    """the value"""

    def expected_value(self) -> float:
        return self.value

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)


class Normal(_Dist):
    """Normal, truncated to values > 0 (a draw <= 0 is drawn again)."""

    dist: Literal["normal"] = "normal"
    mean: PositiveFloat
    """mean before truncation"""
    std: NonNegativeFloat
    """standard deviation before truncation"""

    def expected_value(self) -> float:
        if self.std == 0:
            return self.mean
        # Mean of a normal truncated below at 0: mu + sigma * phi(a) / (1 - Phi(a)), a = -mu/sigma.
        a = -self.mean / self.std
        pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
        tail = 0.5 * math.erfc(a / math.sqrt(2))
        return self.mean + self.std * pdf / tail

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values = rng.normal(self.mean, self.std, size)
        bad = values <= 0
        while bad.any():  # mean > 0, so each redraw keeps at least half
            values[bad] = rng.normal(self.mean, self.std, int(bad.sum()))
            bad = values <= 0
        return values


class LogNormal(_Dist):
    """Log-normal given by the mean and standard deviation of the value itself (not of its log)."""

    dist: Literal["lognormal"] = "lognormal"
    mean: PositiveFloat
    """mean of the value"""
    std: NonNegativeFloat
    """standard deviation of the value"""

    def expected_value(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        sigma2 = math.log1p((self.std / self.mean) ** 2)
        mu = math.log(self.mean) - sigma2 / 2
        return rng.lognormal(mu, math.sqrt(sigma2), size)


class Uniform(_Dist):
    """Uniform between ``low`` and ``high``."""

    dist: Literal["uniform"] = "uniform"
    low: NonNegativeFloat
    """smallest value"""
    high: PositiveFloat
    """largest value"""

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.low > self.high:
            raise PydanticCustomError(
                "dist_order", "uniform needs low <= high, got low {low} > high {high}",
                {"low": self.low, "high": self.high, "expected": "low <= high"})
        return self

    def expected_value(self) -> float:
        return (self.low + self.high) / 2

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values = rng.uniform(self.low, self.high, size)
        return np.maximum(values, np.nextafter(0.0, 1.0))  # low = 0 may give exactly 0


class Triangular(_Dist):
    """Triangular between ``low`` and ``high`` with its peak at ``mode``."""

    dist: Literal["triangular"] = "triangular"
    low: NonNegativeFloat
    """smallest value"""
    mode: NonNegativeFloat
    """most likely value"""
    high: PositiveFloat
    """largest value"""

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise PydanticCustomError(
                "dist_order", "triangular needs low <= mode <= high and low < high, "
                "got low {low}, mode {mode}, high {high}",
                {"low": self.low, "mode": self.mode, "high": self.high,
                 "expected": "low <= mode <= high, low < high"})
        return self

    def expected_value(self) -> float:
        return (self.low + self.mode + self.high) / 3

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values = rng.triangular(self.low, self.mode, self.high, size)
        return np.maximum(values, np.nextafter(0.0, 1.0))


class Exponential(_Dist):
    """Exponential (memoryless), e.g. the gaps between random arrivals."""

    dist: Literal["exponential"] = "exponential"
    mean: PositiveFloat
    """mean"""

    def expected_value(self) -> float:
        return self.mean

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        values = rng.exponential(self.mean, size)
        return np.maximum(values, np.nextafter(0.0, 1.0))


class Empirical(_Dist):
    """Resampled with replacement from measured values, e.g. cycle times of physics cell runs."""

    dist: Literal["empirical"] = "empirical"
    samples: Annotated[tuple[PositiveFloat, ...], FROM_YAML] = Field(min_length=1)
    """the measured values, at least one"""

    def expected_value(self) -> float:
        return float(np.mean(self.samples))

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(np.asarray(self.samples, dtype=float), size)


DIST_KINDS: tuple[type[_Dist], ...] = (Constant, Normal, LogNormal, Uniform, Triangular,
                                       Exponential, Empirical)
DIST_NAMES: tuple[str, ...] = tuple(get_args(kind.model_fields["dist"].annotation)[0]
                                    for kind in DIST_KINDS)


def _number_or_mapping(value):
    # `cycle_time_s: 45` is the common case; anything else but a mapping gets a message that
    # names both accepted forms (pydantic's own would only name the mapping).
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"dist": "constant", "value": value}
    if not isinstance(value, dict):
        raise PydanticCustomError(
            "dist_type", "must be a number or a mapping with 'dist', got {got}",
            {"got": repr(value), "expected": "a number > 0, or a mapping with 'dist' one of: "
                                             + ", ".join(sorted(DIST_NAMES))})
    return value


Distribution = Annotated[
    Union[Constant, Normal, LogNormal, Uniform, Triangular, Exponential, Empirical],
    Discriminator("dist"), BeforeValidator(_number_or_mapping)]
"""A random duration: a bare number (constant) or a mapping with ``dist`` and its parameters."""


class Drawable(Protocol):
    """Anything that draws a batch of numbers from a generator (every distribution does)."""

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray: ...


class Sampler:
    """Draws from one distribution with one generator, a batch at a time (one numpy call per
    batch instead of one per value; the sequence is fixed by the generator's seed).

    Args:
        dist: what to draw.
        rng: the generator; the sampler owns it from now on.
        scale: factor applied to every draw (unit conversion, e.g. 3600 for hours to seconds).
        batch: values drawn per numpy call.
    """

    def __init__(self, dist: Drawable, rng: np.random.Generator, *, scale: float = 1.0,
                 batch: int = 1024):
        self._dist, self._rng, self._scale, self._batch = dist, rng, scale, batch
        self._values: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._values):
            self._values = (self._dist.draw(self._rng, self._batch) * self._scale).tolist()
            self._next = 0
        value = self._values[self._next]
        self._next += 1
        return value

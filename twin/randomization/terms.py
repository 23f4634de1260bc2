"""Declarative domain-randomization terms (Isaac Lab's event terms, in YAML or Python).

A term names its target, the parameter, a distribution, an operation (``scale``/``add``/``set``
applied to the parameter's nominal value) and when it applies (``startup``, ``reset``, or
``interval`` every N control steps)::

    terms:
      - target: part                 # a body, body/link, robot, robot/joint, robot/*,
        parameter: mass_kg           #   conveyor, sensor, sensor/<term>, camera or light
        distribution: {type: uniform, low: 0.5, high: 2.0}
        operation: scale
        when: reset

Which parameters exist for which target, and how each is applied, lives in
:mod:`celltwin.randomization.knobs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from celltwin.core.documents import DOCUMENT_CONFIG, load_model
from celltwin.core.errors import CelltwinError

_CONFIG = ConfigDict(**DOCUMENT_CONFIG, frozen=True)


class RandomizationError(CelltwinError):
    """A randomization file, term or preset is malformed or names something the cell lacks."""


class Uniform(BaseModel):
    """Uniform on [low, high]."""

    model_config = _CONFIG
    type: Literal["uniform"] = "uniform"
    low: float
    """lower bound (in the parameter's unit, or a factor for ``scale``)"""
    high: float
    """upper bound"""

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return self.low + (self.high - self.low) * rng.random(n)


class LogUniform(Uniform):
    """Uniform in log space on [low, high]; both > 0 (ratios such as mass x[0.25, 4])."""

    type: Literal["log_uniform"] = "log_uniform"

    @model_validator(mode="after")
    def _positive(self):
        if self.low <= 0:
            raise ValueError("log_uniform needs low > 0")
        return self

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return np.exp(np.log(self.low) + (np.log(self.high) - np.log(self.low)) * rng.random(n))


class Gaussian(BaseModel):
    """Normal with ``mean`` and ``std``."""

    model_config = _CONFIG
    type: Literal["gaussian"] = "gaussian"
    mean: float = 0.0
    """mean"""
    std: Annotated[float, Field(ge=0.0)]
    """standard deviation"""

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        return rng.normal(self.mean, self.std, n)


class Choice(BaseModel):
    """One of ``values``, equally likely: numbers, or names (a part's ``shape``, a ``texture``)."""

    model_config = _CONFIG
    type: Literal["choice"] = "choice"
    values: Union[Annotated[list[float], Field(min_length=1)],
                  Annotated[list[str], Field(min_length=1)]]
    """the values to choose from: all numbers or all names"""

    @property
    def names(self) -> bool:
        """Whether the values are names rather than numbers."""
        return isinstance(self.values[0], str)

    def sample(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        # Index from one uniform draw: Generator.integers costs several times more, and
        # this runs at every randomized reset. random() < 1, so the index stays in range.
        picks = (rng.random(n) * len(self.values)).astype(np.intp)
        # Names stay Python strings (object array), so reports hold "box", not numpy scalars.
        return np.asarray(self.values, dtype=object if self.names else float)[picks]


Distribution = Annotated[Union[Uniform, LogUniform, Gaussian, Choice], Field(discriminator="type")]


class Term(BaseModel):
    """One randomized parameter."""

    model_config = _CONFIG
    name: str | None = None
    """label in reports; default ``target.parameter``"""
    target: str
    """what to randomize: body, body/link, robot, robot/joint, robot/*, conveyor, sensor,
    sensor/<observation term>, camera or light"""
    parameter: str
    """which property of the target (see docs/randomization.md)"""
    distribution: Distribution
    """where samples come from"""
    operation: Literal["scale", "add", "set"] = "scale"
    """how a sample combines with the nominal value"""
    when: Literal["startup", "reset", "interval"] = "reset"
    """startup: once per env; reset: every episode; interval: every ``every_n_steps``"""
    every_n_steps: Annotated[int, Field(ge=1)] | None = None
    """period for ``when: interval`` [control steps]"""

    @model_validator(mode="after")
    def _interval(self):
        if self.when == "interval" and self.every_n_steps is None:
            raise ValueError("when: interval needs every_n_steps")
        return self

    @property
    def label(self) -> str:
        return self.name or f"{self.target}.{self.parameter}"

    def combine(self, nominal, sample):
        """The parameter value(s) for ``sample`` given the nominal value(s) (arrays work)."""
        if self.operation == "scale":
            return nominal * sample
        if self.operation == "add":
            return nominal + sample
        return sample


class RandomizationConfig(BaseModel):
    """A list of terms (a preset or a user's file)."""

    model_config = _CONFIG
    name: str = "custom"
    """label in reports"""
    description: str = ""
    """what it is for, and where its ranges come from"""
    terms: list[Term] = Field(default_factory=list)
    """the randomized parameters"""
    center: str | None = None
    """a physics file (``celltwin calibrate fit``'s ``physics.yaml``) whose values the terms'
    ranges go around (docs/calibration.md, "Centre training on the fit")"""

    @classmethod
    def load(cls, path: str | Path) -> "RandomizationConfig":
        """Read a randomization YAML file, reporting every problem at once."""
        return load_model(path, cls, error=RandomizationError, what="randomization")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True), sort_keys=False)

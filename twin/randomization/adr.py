"""Automatic domain randomization in the style of OpenAI et al. 2019 (arXiv 1910.07113).

Each uniform term gets a current range, starting from the term's own ``[low, high]``. On a
share of resets (``boundary_probability``, 40% in the paper) one term is pinned at one boundary
of its range; the outcome of that episode goes into that boundary's queue. When a queue holds
``queue_size`` results (256 in the paper) its mean success decides: above ``high_threshold``
the boundary moves outwards by ``step``, below ``low_threshold`` inwards (never past the other
boundary), always within the term's hard limits. Every change is logged, and the state saves to
and loads from JSON with the run.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from celltwin.core.atomic import atomic_write_text
from celltwin.randomization.terms import RandomizationConfig, Uniform


@dataclass
class ADRSettings:
    """How ADR moves the ranges.

    Attributes:
        boundary_probability: share of resets that pin one boundary [-].
        queue_size: results per boundary before it is judged [-].
        high_threshold: mean success above which a boundary widens [-].
        low_threshold: mean success below which it narrows [-].
        step_fraction: step as a share of each term's hard range [-].
        limit_factor: hard limits = initial range widened by this factor of its span on
            each side, unless the term gives them [-].
    """

    boundary_probability: float = 0.4
    queue_size: int = 256
    high_threshold: float = 0.8
    low_threshold: float = 0.4
    step_fraction: float = 0.05
    limit_factor: float = 2.0


@dataclass
class ADR:
    """Current ranges, queues and history of one ADR run."""

    ranges: dict[str, list[float]]
    limits: dict[str, tuple[float, float]]
    steps: dict[str, float]
    settings: ADRSettings = field(default_factory=ADRSettings)
    history: list[dict] = field(default_factory=list)
    episodes: int = 0

    def __post_init__(self):
        self.queues = {(label, side): deque(maxlen=self.settings.queue_size)
                       for label in self.ranges for side in ("low", "high")}

    @classmethod
    def from_config(cls, config: RandomizationConfig, settings: ADRSettings | None = None,
                    limits: dict[str, tuple[float, float]] | None = None) -> "ADR":
        """ADR over every uniform ``reset``/``interval`` term of ``config``.

        Other distributions stay as they are, and so do ``startup`` terms: they are drawn once
        per env, so a reset that pins one of their boundaries would test nothing.
        """
        settings = settings or ADRSettings()
        ranges, hard, steps = {}, {}, {}
        for term in config.terms:
            if type(term.distribution) is not Uniform or term.when == "startup":
                continue
            low, high = term.distribution.low, term.distribution.high
            span = max(high - low, abs(high) * 0.1, 1e-3)
            limit = (limits or {}).get(term.label, (low - settings.limit_factor * span,
                                                    high + settings.limit_factor * span))
            if term.operation == "scale" or term.parameter.endswith(("friction", "mass_kg")):
                limit = (max(limit[0], 0.0), limit[1])
            ranges[term.label] = [low, high]
            hard[term.label] = tuple(limit)
            steps[term.label] = settings.step_fraction * (limit[1] - limit[0])
        return cls(ranges, hard, steps, settings)

    def pin(self, rng: np.random.Generator) -> tuple[str, str] | None:
        """Decide whether this episode evaluates a boundary, and which."""
        self.episodes += 1
        if not self.ranges or rng.random() >= self.settings.boundary_probability:
            return None
        labels = sorted(self.ranges)
        return labels[int(rng.integers(len(labels)))], ("low", "high")[int(rng.integers(2))]

    def record(self, label: str, side: str, success: bool) -> None:
        """Add an episode outcome to a boundary's queue, moving the boundary when it is full."""
        queue = self.queues[(label, side)]
        queue.append(1.0 if success else 0.0)
        if len(queue) < self.settings.queue_size:
            return
        rate = float(np.mean(queue))
        queue.clear()
        low, high = self.ranges[label]
        step = self.steps[label]
        hard_low, hard_high = self.limits[label]
        if rate >= self.settings.high_threshold:
            low, high = (max(low - step, hard_low), high) if side == "low" else (low, min(high + step, hard_high))
        elif rate <= self.settings.low_threshold:
            low, high = (min(low + step, high), high) if side == "low" else (low, max(high - step, low))
        else:
            return
        self.ranges[label] = [low, high]
        self.history.append({"episode": self.episodes, "term": label, "side": side,
                             "success": rate, "low": low, "high": high})

    def to_dict(self) -> dict:
        return {"ranges": self.ranges, "limits": {k: list(v) for k, v in self.limits.items()},
                "steps": self.steps, "settings": self.settings.__dict__, "history": self.history,
                "episodes": self.episodes}

    def save(self, path: str | Path) -> Path:
        """Write the ADR state as JSON, atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "ADR":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, data: dict) -> "ADR":
        """The inverse of :meth:`to_dict` (boundary queues start empty)."""
        return cls({k: list(v) for k, v in data["ranges"].items()},
                   {k: tuple(v) for k, v in data["limits"].items()}, data["steps"],
                   ADRSettings(**data["settings"]), list(data["history"]), data["episodes"])

"""Samples randomization terms from the env's generator and applies them to the twin.

Every episode starts from the world's snapshot, which holds the nominal physics; the
randomizer then applies this episode's samples. With randomization off nothing is applied, so
the nominal values come back exactly on every reset, however many episodes ran before.

Each term is sampled as one vector over all the targets it matched (``{robot}/*`` draws one
value per joint in one call), in the order of the terms, so the same seed gives the same
values and resets stay cheap.

``startup`` terms are drawn once, at the env's first reset, from a copy of its generator (so
the episode draws are the same whether or not startup terms exist), applied, and then become
part of the env's snapshot: later resets neither redo nor revert them. This is also why Isaac
Lab randomizes masses at startup: it is the expensive kind of change. Part geometry (size,
shape, centre of mass) can only be a startup term: it builds the part's body again, before the
other terms apply so that they reach the new body.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from celltwin.randomization.knobs import (NAMED_VALUES, EpisodeEffects, Knob, apply_pose_offsets,
                                          resolve)
from celltwin.randomization.center import center_entries, constant_terms, load_center, set_reference
from celltwin.randomization.looks import Looks
from celltwin.randomization.plan import ResetPlan
from celltwin.randomization.terms import RandomizationConfig, Term, Uniform


@dataclass
class TermGroup:
    """The knobs one term resolved to, with their nominal values as one array."""

    term: Term
    knobs: list[Knob]
    nominal: np.ndarray
    low: np.ndarray
    high: np.ndarray
    integer: bool
    names: bool
    """values are names (``shape``, ``texture``), passed through as drawn"""
    label: str
    """the term's name in reports, with ``{robot}``/``{object}`` filled in"""

    def __post_init__(self):
        self.labels = ([self.label] if len(self.knobs) == 1
                       else [f"{self.label}[{knob.key}]" for knob in self.knobs])
        self.kind = self.knobs[0].kind

    @property
    def size(self) -> int:
        return len(self.knobs)

    @classmethod
    def of(cls, term: Term, knobs: list[Knob], label: str) -> "TermGroup":
        def bound(index, fill):
            return np.array([fill if k.bounds[index] is None else k.bounds[index] for k in knobs], float)

        integer = knobs[0].parameter in ("latency_steps", "delay_steps")
        names = knobs[0].parameter in NAMED_VALUES
        nominal = np.zeros(len(knobs)) if names else np.array([k.nominal for k in knobs], float)
        return cls(term, knobs, nominal, bound(0, -np.inf), bound(1, np.inf), integer, names, label)

    def values(self, samples: np.ndarray) -> np.ndarray:
        if self.names:
            return np.asarray(samples, dtype=object)
        values = np.minimum(np.maximum(self.term.combine(self.nominal, samples), self.low), self.high)
        return np.rint(values).astype(int) if self.integer else values


class UniformBatch:
    """Draws every uniform term of one phase with a single generator call (resets are hot).

    Other distributions are drawn one term at a time, after the batch, in term order; turning
    draws into parameter values is the reset plan's (celltwin.randomization.plan).
    """

    def __init__(self, groups: list[tuple[int, TermGroup]]):
        self.uniform = [(i, g) for i, g in groups if type(g.term.distribution) is Uniform]
        self.others = [(i, g) for i, g in groups if type(g.term.distribution) is not Uniform]
        self.sizes = [g.size for _, g in self.uniform]
        ends = np.cumsum(self.sizes).tolist()
        self.slices = [slice(end - size, end) for end, size in zip(ends, self.sizes)]
        self.low = np.repeat([g.term.distribution.low for _, g in self.uniform], self.sizes)
        self.span = np.repeat([g.term.distribution.high - g.term.distribution.low
                               for _, g in self.uniform], self.sizes)

    def sample(self, rng: np.random.Generator, adr=None) -> dict[int, np.ndarray]:
        if not self.uniform:
            return np.zeros(0)
        low, span = self.low, self.span
        if adr is not None:  # ADR moves the ranges between episodes
            ranges = [adr.ranges.get(g.term.label, (g.term.distribution.low, g.term.distribution.high))
                      for _, g in self.uniform]
            low = np.repeat([r[0] for r in ranges], self.sizes)
            span = np.repeat([r[1] - r[0] for r in ranges], self.sizes)
        return low + span * rng.random(low.size)

    def split(self, raw: np.ndarray) -> dict[int, np.ndarray]:
        return {i: raw[part] for (i, _), part in zip(self.uniform, self.slices)}


class Randomizer:
    """Domain randomization of one env.

    Args:
        world: the env's world.
        robot: the acting robot (``{robot}`` in targets).
        config: the terms.
        object_name: the task's object (``{object}`` in targets), if any.
        strict: unmatched targets are errors (user files); presets pass False so a conveyor
            term does not fail on a cell without conveyors.
        adr: automatic domain randomization state that widens/narrows uniform terms.
        looks: the colours and textures of the world's bodies; an env passes the one it keeps
            across randomizers, so that switching back to nominal undoes what this one drew.
    """

    def __init__(self, world, robot, config: RandomizationConfig, object_name: str | None = None,
                 strict: bool = True, adr=None, looks: Looks | None = None):
        self.world = world
        self.looks = Looks(world) if looks is None else looks
        self.config = config
        self.adr = adr
        self.groups: list[TermGroup] = []
        for index, term in enumerate(config.terms):
            knobs = resolve(term, index, world, robot, object_name, required=strict)
            if knobs:
                target = term.target.replace("{robot}", robot.name).replace("{object}", object_name or "")
                self.groups.append(TermGroup.of(term, knobs, term.name or f"{target}.{term.parameter}"))
        if config.center is not None:
            self._center_on(load_center(config.center), world, robot, object_name)
        self.startup_values: dict[str, float] | None = None
        self._batches: dict[tuple, UniformBatch] = {}
        self.effects = EpisodeEffects()
        self.values: dict[str, float] = {}
        self.pinned: tuple[str, str] | None = None
        self._plan: ResetPlan | None = None  # built at the first reset, after startup terms

    def _center_on(self, center, world, robot, object_name) -> None:
        """Move every term's range onto the centre's values (celltwin.randomization.center)."""
        entries = center_entries(center)
        covered = set()
        for group in self.groups:
            if group.kind != "physics":
                continue
            values = [entries.get((k.section, k.key, k.parameter)) for k in group.knobs]
            if all(value is None for value in values):
                continue
            covered.update((k.section, k.key, k.parameter)
                           for k, value in zip(group.knobs, values) if value is not None)
            if group.term.operation == "set":   # a range starting at the centre
                reference = set_reference(group.term)
                group.term = group.term.model_copy(update={"operation": "add"})
                group.nominal = np.array([0.0 if value is None else value - reference
                                          for value in values])
            else:
                group.nominal = np.array([nominal if value is None else value
                                          for nominal, value in zip(group.nominal, values)])
        start = len(self.config.terms)
        for index, term in enumerate(constant_terms(entries, covered), start=start):
            knobs = resolve(term, index, world, robot, object_name, required=True)
            self.groups.append(TermGroup.of(term, knobs, term.label))

    @property
    def active(self) -> bool:
        return bool(self.groups)

    @property
    def overwritten(self) -> frozenset:
        """Physics entries every reset sets anew: a restore need not revert them first."""
        return frozenset((k.section, k.key, k.parameter) for g in self.groups
                         if g.term.when == "reset" for k in g.knobs if k.kind == "physics")

    @property
    def startup_pending(self) -> bool:
        """True until the startup terms were drawn and applied (at the first reset)."""
        return self.startup_values is None and any(g.term.when == "startup" for g in self.groups)

    def apply_startup(self, rng: np.random.Generator) -> dict[str, float]:
        """Draw and apply the startup terms once; the caller snapshots the world afterwards."""
        self.startup_values = self._apply(self._sample(("startup",), rng))
        return self.startup_values

    def distribution(self, term: Term):
        """The distribution ``term`` draws from now: its ADR range when ADR adapts it."""
        if self.adr is not None and term.label in self.adr.ranges:
            low, high = self.adr.ranges[term.label]
            return Uniform(low=low, high=high)
        return term.distribution

    def _batch(self, when: tuple[str, ...]) -> "UniformBatch":
        if when not in self._batches:
            self._batches[when] = UniformBatch([(i, g) for i, g in enumerate(self.groups)
                                                if g.term.when in when])
        return self._batches[when]

    def _sample(self, when: tuple[str, ...], rng: np.random.Generator) -> dict[int, np.ndarray]:
        """Raw samples per term index: the uniform terms in one draw, then the others."""
        batch = self._batch(when)
        samples = batch.split(batch.sample(rng, self.adr))
        for index, group in batch.others:
            samples[index] = self.distribution(group.term).sample(rng, group.size)
        return samples

    def reset(self, rng: np.random.Generator) -> dict[str, float]:
        """Sample and apply the reset (and first interval) terms; return every value in force."""
        if not self.groups:
            return {}
        self.pinned = self.adr.pin(rng) if self.adr is not None else None
        if self._plan is None or self._plan.revision != self.world.revision:
            # Built after the startup terms (a part rebuild changes body ids), and again
            # whenever the world rebuilt a part since.
            self._plan = ResetPlan(self, self._batch(("reset", "interval")))
        values = self._plan.draw(rng)
        self.effects = EpisodeEffects()
        report = self._plan.apply(values)  # a new dict each reset, free to extend
        self.values = {**self.startup_values, **report} if self.startup_values else report
        return self.values

    def step(self, step_index: int, rng: np.random.Generator) -> None:
        """Re-sample the interval terms due at this control step."""
        due = {index: self.distribution(group.term).sample(rng, len(group.knobs))
               for index, group in enumerate(self.groups)
               if group.term.when == "interval" and step_index % group.term.every_n_steps == 0}
        if due:
            self.values.update(self._apply(due))

    def _apply(self, samples: dict[int, np.ndarray]) -> dict[str, float]:
        return self.apply_values({index: self.groups[index].values(sample).tolist()
                                  for index, sample in samples.items()})

    def apply_values(self, all_values: dict[int, list]) -> dict[str, float]:
        """Apply values per term index (as the terms' groups give them); return the report."""
        sections: dict[str, dict[str, dict]] = {"bodies": {}, "joints": {}, "robots": {}}
        offsets: dict = {}
        # Rebuilt parts first: the terms that follow (mass, friction, colour) then reach the
        # new bodies, and the rebuild carries over what was on record before.
        report = self._rebuild_parts(all_values)
        effects = self.effects
        for index, values in all_values.items():
            group = self.groups[index]
            kind = group.kind
            if kind == "part_geometry":
                continue
            report.update(zip(group.labels, values))
            if kind == "physics":
                for knob, value in zip(group.knobs, values):
                    sections[knob.section].setdefault(knob.key, {})[knob.parameter] = value
                continue
            for knob, value in zip(group.knobs, values):
                if kind == "actuator":
                    setattr(effects, knob.parameter, value)
                elif kind == "sensor":
                    getattr(effects, f"sensor_{knob.parameter}")[knob.key] = value
                elif kind == "light":
                    effects.light_direction["xyz".index(knob.parameter[-1])] += value
                elif kind == "camera":
                    effects.camera_offset_m["xyz".index(knob.parameter[4])] += value
                elif kind == "visual":
                    self.looks.recolour(knob.key, value)
                elif kind == "texture":
                    self.looks.set_texture(knob.key, value)  # shown when the env renders
                elif kind == "conveyor":
                    self.world.conveyors[knob.key].speed_mps = value
                else:  # base or part pose offsets, applied together below
                    offsets.setdefault((kind, knob.key), {})[knob.parameter] = value
        if any(sections.values()):
            # Names were resolved against this world and values clamped to each parameter's
            # range: the checked fast path is safe and keeps resets cheap.
            self.world.apply_physics_entries({}, sections)
        apply_pose_offsets(self.world, offsets)
        return report

    def _rebuild_parts(self, all_values: dict[int, list]) -> dict:
        """Rebuild every part a geometry term drew for; report the values the parts got."""
        settings: dict[str, dict] = {}
        labels: dict[tuple[str, str], str] = {}
        for index, values in all_values.items():
            group = self.groups[index]
            if group.kind == "part_geometry":
                for knob, label, value in zip(group.knobs, group.labels, values):
                    settings.setdefault(knob.key, {})[knob.parameter] = value
                    labels[knob.key, knob.parameter] = label
        report = {}
        for part, drawn in settings.items():
            com = [drawn.get(f"com_{axis}_m", 0.0) for axis in "xyz"]
            geometry = self.world.rebuild_part(part, drawn.get("shape"),
                                               drawn.get("size_scale", 1.0), com)
            built = {"shape": geometry.shape, **dict(zip(("com_x_m", "com_y_m", "com_z_m"),
                                                         geometry.com_m))}
            for parameter, value in drawn.items():
                # The COM as clamped into the part: what pybullet has, not what was drawn.
                report[labels[part, parameter]] = built.get(parameter, value)
        return report

    def report(self, success: bool) -> None:
        """Tell ADR how the episode that pinned a boundary ended."""
        if self.adr is not None and self.pinned is not None:
            self.adr.record(*self.pinned, success)
            self.pinned = None

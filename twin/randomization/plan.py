"""The reset phase of a randomizer, compiled once into flat arrays and direct calls.

A randomized reset happens once per episode in every env of a training run. Walking the terms
and their knobs generically (dicts per section, name lookups, one setter per parameter) cost
more than the pybullet calls themselves; this plan resolves all of that when it is built, so a
reset is one vector draw, one vector combine and a handful of calls. It draws exactly what the
generic path draws, in the same order, so the same seed gives the same values either way.
"""

from __future__ import annotations

import operator

import numpy as np

from celltwin.physics_io import EntryWriter
from celltwin.randomization.knobs import move_body

_DIRECT = ("physics", "actuator", "sensor", "base", "part_pose", "texture")


def _own(term):
    return term.distribution


class ResetPlan:
    """Draw and apply every reset/interval term of one randomizer.

    Args:
        randomizer: the :class:`~celltwin.randomization.Randomizer` this plan serves.
        batch: its uniform batch for the ``reset``/``interval`` phase.
    """

    def __init__(self, randomizer, batch):
        self.randomizer = randomizer
        self.batch = batch
        self.revision = randomizer.world.revision  # body ids below belong to this build
        # Terms that draw names (a texture) are never uniform. They are still drawn in term
        # order, among the others, but their values go last so the numeric pass skips them.
        self.numeric_others = [(i, g) for i, g in batch.others if not g.names]
        numeric = list(batch.uniform) + self.numeric_others
        order = numeric + [(i, g) for i, g in batch.others if g.names]
        # Per other term: None to sample its distribution, or the values of a choice to pick
        # from (names or numbers; ADR adapts uniform terms only, so a choice is its own).
        self._others = [(group, tuple(group.term.distribution.values)
                         if group.term.distribution.type == "choice" else None)
                        for _, group in batch.others]
        self.labels: list[str] = []
        self.integer: list[int] = []
        physics, self.actuator, self.sensor, self.pose, self.textures = [], [], [], [], []
        self.generic: list[tuple[int, int, int]] = []  # (group index, start, stop)
        position = 0
        for index, group in order:
            start = position
            self.labels += group.labels
            for knob in group.knobs:
                if group.integer:
                    self.integer.append(position)
                if group.kind == "physics":
                    physics.append(((knob.section, knob.key, knob.parameter), position))
                elif group.kind == "actuator":
                    self.actuator.append((knob.parameter, position))
                elif group.kind == "sensor":
                    self.sensor.append((f"sensor_{knob.parameter}", knob.key, position))
                elif group.kind in ("base", "part_pose"):
                    self.pose.append(((group.kind, knob.key), knob.parameter, position))
                elif group.kind == "texture":  # direct: a preset draws it at every reset
                    self.textures.append((knob.key, position))
                position += 1
            if group.kind not in _DIRECT:  # rare kinds (visual, light, camera, conveyor)
                self.generic.append((index, start, position))
        self.size = position
        # Every knob's value is clip(a * raw + b): scale is (nominal, 0), add (1, nominal) and
        # set (1, 0), exactly what Term.combine computes, for all terms in one vector pass.
        groups = [group for _, group in numeric]
        scale = [np.full(g.size, g.term.operation == "scale") for g in groups]
        add = [np.full(g.size, g.term.operation == "add") for g in groups]
        nominal = [g.nominal for g in groups]
        empty = [np.zeros(0)]  # a randomizer with startup terms only has no reset knobs
        self._a = np.concatenate(empty + [np.where(s_, n, 1.0) for s_, n in zip(scale, nominal)])
        self._b = np.concatenate(empty + [np.where(a_, n, 0.0) for a_, n in zip(add, nominal)])
        self._low = np.concatenate(empty + [g.low for g in groups])
        self._high = np.concatenate(empty + [g.high for g in groups])
        targets: dict[tuple[str, str], dict[str, int]] = {}
        for (kind, key), parameter, position in self.pose:  # base_x_m -> x_m, spawn_yaw_rad -> yaw_rad
            targets.setdefault((kind, key), {})[parameter.split("_", 1)[1]] = position
        self.moves = [(kind, key, found.get("x_m"), found.get("y_m"), found.get("yaw_rad"))
                      for (kind, key), found in targets.items()]
        self.writer = EntryWriter(randomizer.world, [entry for entry, _ in physics])
        positions = [position for _, position in physics]
        # itemgetter picks the writer's values in C; with one entry it returns a bare value.
        self._physics_values = (operator.itemgetter(*positions) if len(positions) > 1 else
                                (lambda values: (values[positions[0]],)) if positions else None)

    def draw(self, rng: np.random.Generator) -> list:
        """This episode's parameter values, in plan order (ints for integer parameters, then
        the names drawn for terms that choose names)."""
        randomizer, batch = self.randomizer, self.batch
        raw = batch.sample(rng, randomizer.adr)
        distribution = randomizer.distribution if randomizer.adr is not None else _own
        others, names = [], []
        for group, choices in self._others:
            if choices is None:
                others.append(distribution(group.term).sample(rng, group.size))
            else:  # Choice.sample's one uniform draw and index, without its arrays
                count = len(choices)
                picks = [choices[int(u * count)] for u in rng.random(group.size).tolist()]
                if group.names:
                    names += picks
                else:
                    others.append(picks)
        if randomizer.adr is not None and randomizer.pinned is not None:
            label, side = randomizer.pinned
            bound = randomizer.adr.ranges[label][0 if side == "low" else 1]
            for (_, group), part in zip(batch.uniform, batch.slices):
                if group.term.label == label:
                    raw[part] = bound
            others = [np.full(group.size, bound) if group.term.label == label else sample
                      for (_, group), sample in zip(self.numeric_others, others)]
        if others:
            raw = np.concatenate([raw, *others])
        # ndarray.clip is min(max()) in one call; np.clip's dispatch costs more than both.
        values = (raw * self._a + self._b).clip(self._low, self._high).tolist()
        for position in self.integer:
            values[position] = round(values[position])
        return values + names if names else values

    def apply(self, values: list) -> dict[str, float]:
        """Apply drawn values to the world and the episode's effects; return the report."""
        randomizer = self.randomizer
        if self._physics_values is not None:
            self.writer(self._physics_values(values))
        effects = randomizer.effects
        for name, position in self.actuator:
            setattr(effects, name, values[position])
        for name, key, position in self.sensor:
            getattr(effects, name)[key] = values[position]
        for key, position in self.textures:
            randomizer.looks.set_texture(key, values[position])
        for kind, key, x, y, yaw in self.moves:
            move_body(randomizer.world, kind, key, 0.0 if x is None else values[x],
                      0.0 if y is None else values[y], 0.0 if yaw is None else values[yaw])
        if self.generic:
            randomizer.apply_values({index: values[start:stop]
                                     for index, start, stop in self.generic})
        return dict(zip(self.labels, values))

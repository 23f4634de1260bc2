"""Discrete-event simulation of a serial line with SimPy: :func:`simulate`.

Each machine of a station is one SimPy process that repeats: take a part from the input buffer
(or the source), work on it for a sampled cycle time, put it into the output buffer. A machine
that finds its output buffer full holds the part and is blocked until there is room; one that
finds its input empty is starved (or waiting, when the empty input is the source's queue).

The simulation runs on the on-shift clock. Off shift the whole line is paused (no arrivals, no
work, no repairs) and picks up where it stopped at the start of the next shift, so the off-shift
hours only enter when times are mapped back to the calendar (calendar lead times, the
``off_shift`` hours of each station).

Failures follow the operating time of each machine: the time to the next failure (exponential,
mean ``mtbf_h``) runs down only while the machine works, so a starved or blocked machine does
not fail. A failure interrupts the part in work; after the repair (exponential, mean
``mttr_min``) the remaining work resumes.

Randomness comes from one numpy ``Generator`` per purpose and station, all derived from the
seed and the station's name: the same seed gives the same run, and a change to one station
leaves the random numbers of the others as they were (common random numbers, which keep
scenario comparisons from drowning in noise).
"""

from __future__ import annotations

import math
import time
import zlib
from collections import deque
from typing import Callable

import numpy as np
import simpy

from celltwin.core.errors import Problem
from celltwin.line.distributions import Exponential, Sampler
from celltwin.line.result import STATES, BufferStats, LeadTimeStats, LineResult, StationStats
from celltwin.line.spec import LineSpec, LineSpecError

DAY_S = 24 * 3600.0


class _Part:
    __slots__ = ("product", "released_s")

    def __init__(self, product: int, released_s: float):
        self.product, self.released_s = product, released_s


class _Level:
    """A count over time (parts in a buffer, in the line), integrated from ``start_s`` on."""

    def __init__(self, env: simpy.Environment, start_s: float, *, capacity: int | None = None,
                 trace: bool = False):
        self._env, self._start_s, self._capacity = env, start_s, capacity
        self.level, self.max_level = 0, 0
        self.area, self.full_time = 0.0, 0.0
        self._since = 0.0
        self.times: list[float] | None = [0.0] if trace else None
        self.levels: list[int] = [0]

    def change(self, delta: int) -> None:
        self._advance(self._env.now)
        self.level += delta
        if self._env.now >= self._start_s:
            self.max_level = max(self.max_level, self.level)
        if self.times is not None:
            self.times.append(self._env.now)
            self.levels.append(self.level)

    def close(self, end_s: float) -> None:
        self._advance(end_s)

    def _advance(self, now: float) -> None:
        begin = max(self._since, self._start_s)
        if now > begin:
            self.area += self.level * (now - begin)
            if self._capacity is not None and self.level >= self._capacity:
                self.full_time += now - begin
        if now >= self._start_s and self._since < self._start_s:
            self.max_level = max(self.max_level, self.level)  # level carried over the warm-up
        self._since = now


class _Buffer:
    """FIFO between two stations: ``capacity`` ``None`` never fills, ``0`` hands over directly.

    A ``put`` into a full buffer and a ``get`` from an empty one wait, first come first served.
    """

    def __init__(self, env: simpy.Environment, capacity: int | None, level: _Level):
        self._env, self.capacity, self.level = env, capacity, level
        self._items: deque[_Part] = deque()
        self._getters: deque[simpy.Event] = deque()
        self._putters: deque[tuple[simpy.Event, _Part]] = deque()

    def put(self, part: _Part) -> simpy.Event:
        event = self._env.event()
        if self._getters:  # someone is waiting, so the buffer is empty: hand over
            self._getters.popleft().succeed(part)
            event.succeed()
        elif self.capacity is None or len(self._items) < self.capacity:
            self._items.append(part)
            self.level.change(+1)
            event.succeed()
        else:
            self._putters.append((event, part))
        return event

    def get(self) -> simpy.Event:
        event = self._env.event()
        if self._items:
            event.succeed(self._items.popleft())
            if self._putters:  # the room just made goes to the first blocked machine
                put_event, part = self._putters.popleft()
                self._items.append(part)
                put_event.succeed()
            else:
                self.level.change(-1)
        elif self._putters:  # capacity 0: take straight from a blocked machine
            put_event, part = self._putters.popleft()
            put_event.succeed()
            event.succeed(part)
        else:
            self._getters.append(event)
        return event


class _Ledger:
    """Time one machine spent in each state, counted from ``start_s`` on."""

    __slots__ = ("_env", "_start_s", "state", "_since", "totals")

    def __init__(self, env: simpy.Environment, start_s: float, state: str):
        self._env, self._start_s, self.state, self._since = env, start_s, state, env.now
        self.totals = dict.fromkeys(STATES, 0.0)

    def enter(self, state: str) -> None:
        self.close(self._env.now)
        self.state = state

    def close(self, now: float) -> None:
        begin = max(self._since, self._start_s)
        if now > begin:
            self.totals[self.state] += now - begin
        self._since = now


class _StationTally:
    __slots__ = ("parts_finished", "work_s", "failures")

    def __init__(self):
        self.parts_finished, self.work_s, self.failures = 0, 0.0, 0


class _LineModel:
    """The SimPy processes of one run and the tallies they keep."""

    def __init__(self, spec: LineSpec, seed: int, start_s: float, trace: bool):
        self.spec, self.start_s = spec, start_s
        env = self.env = simpy.Environment()
        self.wip = _Level(env, start_s)
        self.exits: list[tuple[float, float, int]] = []  # (released, done, product)
        shares = np.array([p.share for p in spec.products])
        self._mix = Sampler(_MixIndex(shares / shares.sum()), _rng(seed, "mix"))
        self.source_queue: _Buffer | None = None
        if spec.source is not None:
            self.source_queue = _Buffer(env, None, _Level(env, start_s, trace=trace))
            env.process(self._arrivals(Sampler(spec.source.interarrival_s, _rng(seed, "arrivals"))))
        self.buffers = [_Buffer(env, spec.buffer_capacity(s.name),
                                _Level(env, start_s, capacity=spec.buffer_capacity(s.name),
                                       trace=trace))
                        for s in spec.stations[:-1]]
        self.ledgers: list[list[_Ledger]] = []
        self.tallies = [_StationTally() for _ in spec.stations]
        for index, station in enumerate(spec.stations):
            factors = [spec.time_factor(p, station.name) for p in spec.products]
            cycle = Sampler(station.cycle_time_s, _rng(seed, f"cycle/{station.name}"))
            if station.fails:
                to_failure = Sampler(Exponential(mean=station.mtbf_h), _rng(
                    seed, f"failure/{station.name}"), scale=3600.0)
                repair = Sampler(Exponential(mean=station.mttr_min), _rng(
                    seed, f"repair/{station.name}"), scale=60.0)
            else:
                to_failure = repair = None
            idle = "waiting" if index == 0 else "starved"
            machines = [_Ledger(env, start_s, idle) for _ in range(station.servers)]
            self.ledgers.append(machines)
            for ledger in machines:
                env.process(self._machine(index, ledger, idle, cycle, factors, to_failure, repair))

    # ------------------------------------------------------------------ processes
    def _release(self) -> _Part:
        self.wip.change(+1)
        return _Part(int(self._mix()), self.env.now)

    def _arrivals(self, interarrival: Sampler):
        while True:
            self.source_queue.put(self._release())
            yield self.env.timeout(interarrival())

    def _take(self, index: int) -> simpy.Event:
        if index > 0:
            return self.buffers[index - 1].get()
        if self.source_queue is not None:
            return self.source_queue.get()
        return self.env.event().succeed(self._release())  # unlimited: a part is always there

    def _hand_on(self, index: int, part: _Part) -> simpy.Event:
        if index < len(self.buffers):
            return self.buffers[index].put(part)
        self.wip.change(-1)
        if self.env.now >= self.start_s:
            self.exits.append((part.released_s, self.env.now, part.product))
        return self.env.event().succeed()

    def _machine(self, index: int, ledger: _Ledger, idle: str, cycle: Sampler,
                 factors: list[float], to_failure: Sampler | None, repair: Sampler | None):
        env, tally = self.env, self.tallies[index]
        until_failure = to_failure() if to_failure else math.inf  # operating time left [s]
        while True:
            ledger.enter(idle)
            part = yield self._take(index)
            ledger.enter("working")
            work_s = cycle() * factors[part.product]
            remaining_s = work_s
            while remaining_s > until_failure:
                yield env.timeout(until_failure)
                remaining_s -= until_failure
                ledger.enter("failed")
                if env.now >= self.start_s:
                    tally.failures += 1
                yield env.timeout(repair())
                ledger.enter("working")
                until_failure = to_failure()
            yield env.timeout(remaining_s)
            until_failure -= remaining_s
            if env.now >= self.start_s:
                tally.parts_finished += 1
                tally.work_s += work_s
            ledger.enter("blocked")
            yield self._hand_on(index, part)


class _MixIndex:
    """Index of a product drawn by the mix shares (a :class:`Drawable` for :class:`Sampler`)."""

    def __init__(self, shares: np.ndarray):
        self._shares = shares

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(len(self._shares), size, p=self._shares)


def _rng(seed: int, purpose: str) -> np.random.Generator:
    # One stream per purpose and station name: see the module docstring.
    return np.random.default_rng(np.random.SeedSequence(
        seed, spawn_key=(zlib.crc32(purpose.encode("utf-8")),)))


def simulate(spec: LineSpec, seed: int = 0, *, warmup_h: float = 0.0, days: int | None = None,
             trace_buffers: bool = True,
             progress: Callable[[int, int], None] | None = None) -> LineResult:
    """Simulate ``spec`` over its shift calendar and return what was measured.

    Args:
        spec: the line.
        seed: seed of every random stream (>= 0); the same seed gives the same result.
        warmup_h: on-shift time at the start left out of every statistic [h], so that a line
            starting empty does not bias the averages; must be shorter than the run.
        days: days to simulate instead of ``spec.shift.days``.
        trace_buffers: keep buffer levels over time for plots (``LineResult.buffer_traces``).
        progress: called as ``progress(day, days)`` after each simulated day.

    Raises:
        LineSpecError: a seed, warm-up or day count that cannot work.
    """
    days = spec.shift.days if days is None else days
    shift_s = spec.shift.hours_per_day * 3600.0
    _check_run(seed, warmup_h, days, spec.shift.hours_per_day)
    started = time.perf_counter()
    start_s, end_s = warmup_h * 3600.0, days * shift_s
    model = _LineModel(spec, seed, start_s, trace_buffers)
    for day in range(1, days + 1):
        model.env.run(until=day * shift_s)
        if progress is not None:
            progress(day, days)
    return _result(model, seed, days, start_s, end_s, time.perf_counter() - started)


def _check_run(seed: int, warmup_h: float, days: int, hours_per_day: float) -> None:
    problems = []
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        problems.append(Problem(f"seed must be an integer >= 0, got {seed!r}", path="seed",
                                value=seed, expected="an integer >= 0"))
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        problems.append(Problem(f"days must be an integer >= 1, got {days!r}", path="days",
                                value=days, expected="an integer >= 1"))
    elif not (isinstance(warmup_h, (int, float)) and 0 <= warmup_h < days * hours_per_day):
        problems.append(Problem(
            f"warm-up of {warmup_h!r} h leaves nothing to measure in {days} x "
            f"{hours_per_day:g} h", path="warmup_h", value=warmup_h,
            expected=f"a number >= 0 and < {days * hours_per_day:g} [h]"))
    if problems:
        raise LineSpecError(problems)


def _calendar_s(on_shift_s: np.ndarray, shift_s: float) -> np.ndarray:
    """Map times on the on-shift clock to the calendar (day k's shift starts at k x 24 h)."""
    day = np.floor(on_shift_s / shift_s)
    return day * DAY_S + (on_shift_s - day * shift_s)


def _result(model: _LineModel, seed: int, days: int, start_s: float, end_s: float,
            wall_time_s: float) -> LineResult:
    spec = model.spec
    shift_s = spec.shift.hours_per_day * 3600.0
    measured_s = end_s - start_s
    calendar_span_s = days * DAY_S - float(_calendar_s(np.array(start_s), shift_s))
    off_shift_h = (calendar_span_s - measured_s) / 3600.0
    stations = []
    for station, machines, tally in zip(spec.stations, model.ledgers, model.tallies):
        totals = dict.fromkeys(STATES, 0.0)
        for ledger in machines:
            ledger.close(end_s)
            for state, seconds in ledger.totals.items():
                totals[state] += seconds
        shares = {state: seconds / (station.servers * measured_s)
                  for state, seconds in totals.items()}
        hours = {state: seconds / station.servers / 3600.0 for state, seconds in totals.items()}
        hours["off_shift"] = off_shift_h
        busy = totals["working"] + totals["failed"]
        nominal_s = spec.mean_cycle_time_s(station)
        stations.append(StationStats(
            name=station.name, servers=station.servers, state_shares=shares, state_hours=hours,
            utilization=shares["working"], active_share=shares["working"] + shares["failed"],
            availability=totals["working"] / busy if busy > 0 else 1.0,
            parts_finished=tally.parts_finished, failures=tally.failures,
            mean_cycle_time_s=(tally.work_s / tally.parts_finished
                               if tally.parts_finished else None),
            nominal_cycle_time_s=nominal_s,
            capacity_per_h=station.servers * station.availability() * 3600.0 / nominal_s))
    traces: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    buffers = []
    for station, after_next, buffer in zip(spec.stations, spec.stations[1:], model.buffers):
        name = f"{station.name}->{after_next.name}"
        buffers.append(_buffer_stats(name, station.name, buffer, end_s, measured_s, traces))
    source_queue = None
    if model.source_queue is not None:
        source_queue = _buffer_stats(f"source->{spec.stations[0].name}", None,
                                     model.source_queue, end_s, measured_s, traces)
    model.wip.close(end_s)
    exits = np.array(model.exits, dtype=float).reshape(-1, 3)
    released, done = exits[:, 0], exits[:, 1]
    by_product = np.bincount(exits[:, 2].astype(int), minlength=len(spec.products))
    active = [s.active_share for s in stations]
    ranking = sorted(range(len(stations)), key=lambda i: -active[i])  # stable: flow order on ties
    return LineResult(
        line=spec.name, seed=seed, days=days, hours_per_day=spec.shift.hours_per_day,
        warmup_h=start_s / 3600.0, measured_h=measured_s / 3600.0,
        parts_completed=len(exits),
        parts_by_product={p.name: int(n) for p, n in zip(spec.products, by_product)},
        throughput_per_h=len(exits) / (measured_s / 3600.0), takt_s=spec.resolved_takt_s(),
        stations=tuple(stations), buffers=tuple(buffers), source_queue=source_queue,
        wip_mean=model.wip.area / measured_s,
        lead_time_s=LeadTimeStats.of(done - released),
        lead_time_calendar_s=LeadTimeStats.of(
            _calendar_s(done, shift_s) - _calendar_s(released, shift_s)),
        bottlenecks=tuple(stations[i].name for i in ranking),
        wall_time_s=wall_time_s, buffer_traces=traces)


def _buffer_stats(name: str, after: str | None, buffer: _Buffer, end_s: float, measured_s: float,
                  traces: dict) -> BufferStats:
    level = buffer.level
    level.close(end_s)
    if level.times is not None:
        traces[name] = (np.array(level.times + [end_s]) / 3600.0,
                        np.array(level.levels + [level.level]))
    full_share = level.full_time / measured_s if buffer.capacity is not None else 0.0
    return BufferStats(name=name, after=after, capacity=buffer.capacity,
                       mean_occupancy=level.area / measured_s, max_occupancy=level.max_level,
                       full_share=full_share)

"""The typed, frozen models of a line file: :class:`LineSpec` and one class per section.

A line is a serial chain of stations fed by a source, with a buffer between each pair of
neighbours. Times carry their unit in the key (``_s``, ``_min``, ``_h``). Models check what one
value or one section can know; checks across sections (names, references, product shares) live
in :mod:`celltwin.line.checks`. ``docs/line.md`` documents the same keys.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field, Strict, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from celltwin.core.documents import FROM_YAML, findings_to_problems
from celltwin.core.errors import CelltwinError, Problem, did_you_mean, one_of
from celltwin.line.checks import line_findings
from celltwin.line.distributions import Distribution
from celltwin.spec.primitives import Name, PositiveFloat, SpecModel

Share = Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)]
INFINITE_WORDS = ("inf", "infinite", "infinity", "unlimited")


class LineSpecError(CelltwinError):
    """A line file is malformed, refers to stations that do not exist, or cannot be simulated."""


class ShiftSpec(SpecModel):
    """The shift calendar: every day has one working period, the rest of the day is closed."""

    hours_per_day: Annotated[float, Strict(), Field(gt=0, le=24, allow_inf_nan=False)] = 24.0
    """working hours per day [h]; outside them the whole line is off shift"""
    days: Annotated[int, Strict(), Field(ge=1, le=3660)] = 1
    """days simulated [-]"""


class ProductSpec(SpecModel):
    """One product of the mix."""

    name: Name
    """unique name of the product"""
    share: Share
    """share of the arrivals; the shares of all products sum to 1 [-]"""
    time_factor: dict[Name, PositiveFloat] = Field(default_factory=dict)
    """cycle time factor per station name; stations not listed use 1 [-]"""


class SourceSpec(SpecModel):
    """Parts arrive at the first station one by one."""

    interarrival_s: Distribution
    """time between two arrivals [s]"""


class StationSpec(SpecModel):
    """One station: one or more identical machines working in parallel."""

    name: Name
    """unique name of the station"""
    cycle_time_s: Distribution
    """time to work on one part, failures excluded [s]"""
    servers: Annotated[int, Strict(), Field(ge=1, le=1000)] = 1
    """identical machines working in parallel; each fails on its own [-]"""
    mtbf_h: PositiveFloat | None = None
    """mean operating time between failures of one machine (exponential) [h]; none: never fails"""
    mttr_min: PositiveFloat | None = None
    """mean time to repair (exponential) [min]; needed with ``mtbf_h``"""

    @property
    def fails(self) -> bool:
        """Whether the station's machines break down."""
        return self.mtbf_h is not None

    def availability(self) -> float:
        """Nominal availability ``MTBF / (MTBF + MTTR)`` of one working machine [-]."""
        if self.mtbf_h is None or self.mttr_min is None:
            return 1.0
        return self.mtbf_h / (self.mtbf_h + self.mttr_min / 60)


class BufferSpec(SpecModel):
    """The buffer after a station, between it and the next one."""

    after: Name
    """the station the buffer follows (not the last one: the line's exit takes every part)"""
    capacity: Annotated[int, Strict(), Field(ge=0)] | None
    """parts it holds; ``0`` hands parts over directly, ``inf`` never fills [-]"""

    @field_validator("capacity", mode="before")
    @classmethod
    def _infinite(cls, value):
        if isinstance(value, float) and math.isinf(value) and value > 0:
            return None
        if isinstance(value, str):
            if value.strip().lower() in INFINITE_WORDS:
                return None
            raise PydanticCustomError(
                "capacity_word", "unknown capacity '{word}'{hint}",
                {"word": value, "hint": did_you_mean(value, ["inf"]),
                 "expected": "an integer >= 0, or inf"})
        return value

    @property
    def unbounded(self) -> bool:
        """Whether the buffer never fills."""
        return self.capacity is None


class LineSpec(SpecModel):
    """A serial production line: source, stations in flow order, buffers between them."""

    name: Name
    """name of the line"""
    description: Annotated[str, Strict()] = ""
    """free text for people"""
    shift: ShiftSpec = ShiftSpec()
    """shift calendar"""
    takt_s: PositiveFloat | None = None
    """target time between two finished parts [s]; default: the source's mean interarrival"""
    products: Annotated[tuple[ProductSpec, ...], FROM_YAML] = Field(
        default_factory=lambda: (ProductSpec(name="part", share=1.0),), min_length=1)
    """the product mix; default: one product ``part``"""
    source: SourceSpec | None = None
    """how parts arrive; ``unlimited`` (the default): the first station is never starved"""
    stations: Annotated[tuple[StationSpec, ...], FROM_YAML] = Field(min_length=1)
    """the stations in flow order, at least one"""
    buffers: Annotated[tuple[BufferSpec, ...], FROM_YAML] = ()
    """buffer capacities; a station not listed has a buffer of 1 after it"""

    @field_validator("products", "buffers", mode="before")
    @classmethod
    def _empty_section(cls, value, info: ValidationInfo):
        # `buffers:` with every entry commented out reads as null: mean "the default".
        if value is None:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @field_validator("source", mode="before")
    @classmethod
    def _unlimited(cls, value):
        if value is None or value == "unlimited":
            return None
        if isinstance(value, str):
            raise PydanticCustomError(
                "source_word", "unknown source '{word}'{hint}",
                {"word": value, "hint": did_you_mean(value, ["unlimited"]),
                 "expected": "unlimited, or a mapping with interarrival_s"})
        return value

    @model_validator(mode="after")
    def _references_hold(self, info: ValidationInfo) -> LineSpec:
        # The loader checks references on the raw document (to report them beside schema
        # errors); a spec built in Python gets the same checks here.
        if (info.context or {}).get("references_checked"):
            return self
        problems = findings_to_problems(line_findings(self.model_dump(mode="json")))
        if problems:
            raise LineSpecError(problems)
        return self

    @property
    def station_names(self) -> list[str]:
        """Station names in flow order."""
        return [station.name for station in self.stations]

    def station(self, name: str) -> StationSpec:
        """Return the station called ``name``."""
        for station in self.stations:
            if station.name == name:
                return station
        names = self.station_names
        raise LineSpecError(Problem(f"no station named '{name}'{did_you_mean(name, names)}",
                                    path="stations", value=name, expected=one_of(names)))

    def buffer_capacity(self, after: str) -> int | None:
        """Capacity of the buffer after station ``after``; ``None`` is unbounded."""
        for buffer in self.buffers:
            if buffer.after == after:
                return buffer.capacity
        return 1

    def time_factor(self, product: ProductSpec, station: str) -> float:
        """Cycle time factor of ``product`` at ``station`` [-]."""
        return product.time_factor.get(station, 1.0)

    def mean_cycle_time_s(self, station: StationSpec) -> float:
        """Mix-weighted expected cycle time of one part at ``station`` [s]."""
        factor = sum(p.share * self.time_factor(p, station.name) for p in self.products)
        return station.cycle_time_s.expected_value() * factor

    def resolved_takt_s(self) -> float | None:
        """``takt_s``, else the source's mean interarrival time, else ``None`` [s]."""
        if self.takt_s is not None:
            return self.takt_s
        return self.source.interarrival_s.expected_value() if self.source else None

    def to_yaml(self) -> str:
        """Serialize as YAML that :func:`celltwin.line.parse_line` reads back to an equal spec."""
        import yaml

        data = self.model_dump(mode="json", exclude_none=True)
        data["source"] = data.get("source", "unlimited")
        data["buffers"] = [{"after": buffer.after,
                            "capacity": "inf" if buffer.unbounded else buffer.capacity}
                           for buffer in self.buffers]
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)

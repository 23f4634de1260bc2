"""Checks across sections of a line file: unique names, references to stations, product shares.

These run on the raw document (plain dicts and lists, as YAML gave them), so a file with schema
errors still gets its broken references reported in the same pass. Anything malformed is
skipped here: the schema reports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from celltwin.core.errors import did_you_mean, one_of
from celltwin.core.problems import Finding, Loc
from celltwin.spec.references import entries as _entries  # one reader of raw YAML sections

SHARE_TOLERANCE = 1e-6


def line_findings(data: Any) -> list[Finding]:
    """Return every cross-section problem of a raw line document."""
    if not isinstance(data, Mapping):
        return []
    stations = list(dict.fromkeys(name for _, name in _names(data, "stations")))
    findings = _duplicates(data, "stations", "station")
    findings += _failure_pair_findings(data)
    findings += _duplicates(data, "products", "product")
    findings += _share_findings(data)
    for index, product in _entries(data, "products"):
        factors = product.get("time_factor")
        if isinstance(factors, Mapping):
            for station in factors:
                if isinstance(station, str) and station not in stations:
                    findings.append(_unknown_station(
                        ("products", index, "time_factor", station), station, stations,
                        at_key=True))
    findings += _buffer_findings(data, stations)
    return findings


def _names(data: Mapping, section: str) -> Iterator[tuple[int, str]]:
    for index, item in _entries(data, section):
        name = item.get("name")
        if isinstance(name, str) and name:
            yield index, name


def _duplicates(data: Mapping, section: str, noun: str) -> list[Finding]:
    first_use: dict[str, Loc] = {}
    findings = []
    for index, name in _names(data, section):
        loc = (section, index, "name")
        if name in first_use:
            findings.append(Finding(loc, f"duplicate {noun} name '{name}'; first used at {{first}}",
                                    value=name, expected=f"a {noun} name used once",
                                    first=first_use[name]))
        else:
            first_use[name] = loc
    return findings


def _share_findings(data: Mapping) -> list[Finding]:
    products = list(_entries(data, "products"))
    if not products or len(products) != len(data["products"]):
        return []
    shares = [product.get("share") for _, product in products]
    if not all(type(share) in (int, float) and math.isfinite(share) for share in shares):
        return []  # the schema reports the share that is not a number
    total = math.fsum(shares)
    if abs(total - 1.0) <= SHARE_TOLERANCE:
        return []
    return [Finding(("products",), f"product shares sum to {total:.6g}, not 1", value=total,
                    expected=f"shares that sum to 1 (within {SHARE_TOLERANCE:g})")]


def _buffer_findings(data: Mapping, stations: list[str]) -> list[Finding]:
    findings = []
    first_use: dict[str, Loc] = {}
    names = [name for _, name in _names(data, "stations")]
    last = names[-1] if names else None
    for index, buffer in _entries(data, "buffers"):
        after = buffer.get("after")
        loc = ("buffers", index, "after")
        if not isinstance(after, str) or not after:
            continue
        if after not in stations:
            findings.append(_unknown_station(loc, after, stations))
        elif after == last:
            others = [name for name in stations if name != last]
            findings.append(Finding(
                loc, f"'{after}' is the last station: the line's exit takes every part, there "
                     "is no buffer after it", value=after,
                expected=one_of(others) if others else "no buffers on a one-station line"))
        elif after in first_use:
            findings.append(Finding(
                loc, f"a second buffer after '{after}'; the first is at {{first}}", value=after,
                expected="one buffer entry per station", first=first_use[after]))
        else:
            first_use[after] = loc
    return findings


def _failure_pair_findings(data: Mapping) -> list[Finding]:
    findings = []
    for index, station in _entries(data, "stations"):
        has_mtbf, has_mttr = station.get("mtbf_h") is not None, station.get("mttr_min") is not None
        if has_mtbf != has_mttr:
            given, missing = ("mtbf_h", "mttr_min") if has_mtbf else ("mttr_min", "mtbf_h")
            findings.append(Finding(("stations", index, missing),
                                    f"{given} is given but {missing} is not",
                                    expected="both mtbf_h and mttr_min, or neither"))
    return findings


def _unknown_station(loc: Loc, name: str, stations: list[str], *, at_key: bool = False) -> Finding:
    expected = one_of(stations) if stations else "the name of a station (the line has none)"
    return Finding(loc, f"no station named '{name}'{did_you_mean(name, stations)}", value=name,
                   expected=expected, at_key=at_key)

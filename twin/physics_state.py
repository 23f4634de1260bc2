"""A world's record of its physics parameters: what was applied, cheaply, and how to undo it;
and a :class:`Snapshot` of a world's state.

Applying parameters happens on every randomized reset, so the record keeps what was applied
since the last full :class:`PhysicsParams` as plain dicts and builds the full object only when
someone asks for it. It also remembers every entry ever changed, so returning to a snapshot
re-applies just those instead of every body and link of the cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from celltwin.physics import SECTIONS, PhysicsParams
from celltwin.robots.actuation import ActuationState
from celltwin.robots.suction import SuctionState

_ENTRY_TYPES = {section: PhysicsParams.model_fields[section].annotation.__args__[1]
                for section in SECTIONS}


class PhysicsRecord:
    """Current physics parameters of one world.

    Args:
        params: the complete parameters read from the world after building.
    """

    def __init__(self, params: PhysicsParams):
        self._params = params
        self._pending_globals: dict = {}
        self._pending: dict[str, dict[str, dict]] = {section: {} for section in SECTIONS}
        self._touched_globals: set[str] = set()
        # (key, field) pairs ever changed, per section: what a return to a snapshot redoes.
        self._touched: dict[str, set[tuple[str, str]]] = {section: set() for section in SECTIONS}
        # (section, key, field) of every pending value, for cheap set arithmetic on restore.
        self._pending_fields: set[tuple[str, str, str]] = set()
        self.substeps = params.substeps

    def current(self) -> PhysicsParams:
        """The complete parameters as they are now."""
        if self._pending_globals or any(self._pending.values()):
            overrides = PhysicsParams.model_construct(**self._pending_globals, **{
                section: {key: _ENTRY_TYPES[section].model_construct(**fields)
                          for key, fields in entries.items()}
                for section, entries in self._pending.items()})
            self._params = self._params.merged(overrides)
            self._pending_globals = {}
            self._pending = {section: {} for section in SECTIONS}
            self._pending_fields = set()
        return self._params

    def record(self, globals_: dict, sections: dict) -> None:
        """Note values that were just applied to the world."""
        self._pending_globals.update(globals_)
        self._touched_globals.update(globals_)
        for section, entries in sections.items():
            pending = self._pending[section]
            touched = self._touched[section]
            changed = self._pending_fields
            for key, fields in entries.items():
                pending.setdefault(key, {}).update(fields)
                for field in fields:
                    triple = (section, key, field)
                    if triple not in changed:
                        changed.add(triple)
                        touched.add((key, field))
        if "substeps" in globals_:
            self.substeps = globals_["substeps"]

    def record_values(self, entries: tuple, values: list) -> None:
        """Note values just applied to fixed ``(section, key, field)`` entries (EntryWriter).

        The same as :meth:`record` with the sections built from ``entries``, without building
        them: the writer records the same entries every reset.
        """
        if not self._pending_fields.issuperset(entries):
            self._pending_fields.update(entries)
            for section, key, field in entries:
                self._touched[section].add((key, field))
        pending = self._pending
        for (section, key, field), value in zip(entries, values):
            entry = pending[section].get(key)
            if entry is None:
                entry = pending[section][key] = {}
            entry[field] = value

    def value_global(self, name: str):
        """One global field as it is now."""
        return self._pending_globals.get(name, getattr(self._params, name))

    def value(self, section: str, key: str, field: str):
        """One field as it is now, without building the full object."""
        pending = self._pending[section].get(key)
        if pending is not None and field in pending:
            return pending[field]
        return getattr(getattr(self._params, section)[key], field)

    def revert_to(self, params: PhysicsParams, skip=frozenset()) -> tuple[dict, dict] | None:
        """What to re-apply to return to ``params``; None when nothing can differ.

        Args:
            params: the parameters to return to.
            skip: ``(section, key, field)`` triples the caller overwrites right afterwards.
        """
        if params is self._params:
            # Returning to the record's own baseline: only what was applied since can differ,
            # and of that only what the caller does not set again right away.
            if not self._pending_globals and self._pending_fields <= skip:
                return None  # a randomized reset: everything applied is set again at once
            fields = self._pending_fields - skip if skip else self._pending_fields
            if not self._pending_globals and not fields:
                return None
            names = list(self._pending_globals)
            candidates = {section: [] for section in SECTIONS}
            for section, key, field in fields:
                candidates[section].append((key, field))
        else:
            names, candidates = self._touched_globals, self._touched
        globals_ = {name: getattr(params, name) for name in names
                    if self.value_global(name) != getattr(params, name)}
        sections = {}
        for section in SECTIONS:
            table = getattr(params, section)
            entries: dict[str, dict] = {}
            for key, field in candidates[section]:
                if (section, key, field) not in skip:
                    value = getattr(table[key], field)
                    if value is not None and self.value(section, key, field) != value:
                        entries.setdefault(key, {})[field] = value
            sections[section] = entries
        return globals_, sections

    def reset_to(self, params: PhysicsParams, kept=frozenset()) -> None:
        """Make ``params`` the current record (after re-applying :meth:`revert_to`).

        Args:
            params: the parameters the world was returned to.
            kept: ``(section, key, field)`` triples left as they were (the caller sets them
                again at once); their values stay on record instead of ``params``'.
        """
        if params is self._params and kept:
            for section, key, field in self._pending_fields - kept:
                entry = self._pending[section].get(key)
                if entry is not None:
                    entry.pop(field, None)
            self._pending_fields &= kept
        else:
            self._pending = {section: {} for section in SECTIONS}
            self._pending_fields = set()
        self._params = params
        self._pending_globals = {}
        self.substeps = params.substeps


@dataclass(frozen=True)
class Snapshot:
    """An in-memory copy of a world's state; restore with :meth:`celltwin.world.World.restore`."""

    state_id: int
    params: PhysicsParams
    conveyor_speeds: tuple[float, ...]
    actuation: tuple[ActuationState, ...]
    """Per robot: motor targets and the set-points still on their way (latency)."""
    suction: tuple[SuctionState, ...] = ()
    """Per suction cup: its vacuum and the part it holds (pybullet's state has no
    constraints)."""

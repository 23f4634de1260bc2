"""The parts of a layout run: spawned where they arrive, removed when they leave.

A part in the world costs the physics time on every step (0.3-0.6 ms per control step for one
resting in pick_station, about 5 microseconds even for a static one parked out of the way), so
a run does not build all the parts it feeds up front. The run cell has no parts at all; the
runner builds each part with :func:`celltwin.scene.add_part` (exactly as a world builds a cell's
parts) when it arrives, at its spawn region's centre, and removes it from the world when it
leaves: placed (it goes on with the outfeed), dropped or missed (it is cleared away). Only the
parts in the cell are simulated.

Parts are named after their type and arrival order: ``can_0``, ``can_1``, ... (``can`` when a
run feeds one).

By default a part is built as a *rigid body in maximal coordinates* (:func:`add_rigid_part`):
the same shape, mass, friction and colour as :func:`celltwin.scene.add_part` gives it, but solved
by Bullet's rigid-body path instead of as a one-link multibody. For a single free body the
dynamics are the same; the solver is cheaper: pick_station runs about 20 % faster (measured:
cycle times within 0.01 s of the multibody's). ``multibody_parts=True`` builds them exactly
as a world does.
"""

from __future__ import annotations

from celltwin import scene
from celltwin.layout.jobs import Feed, Job
from celltwin.spec import CellSpec
from celltwin.spec import validate_cell_data


def run_cell(cell: CellSpec, jobs: list[Job]) -> CellSpec:
    """The cell a run builds: no parts (the runner brings them), only the jobs' targets."""
    data = cell.model_dump(mode="json", exclude_none=True)
    used = {target.name for job in jobs for target in (job.pick, job.place)}
    data["targets"] = [t for t in data.get("targets", []) if t["name"] in used]
    data["parts"] = []
    return validate_cell_data(data)


def feed_shares(jobs: list[Job], parts: int) -> dict[str, tuple[Feed, int]]:
    """Feed name -> (feed, parts it brings): ``parts`` split across feeds, first feeds first."""
    feeds: dict[str, Feed] = {}
    for job in jobs:
        feeds.setdefault(job.feed.name, job.feed)
    count = len(feeds)
    return {name: (feed, parts // count + (index < parts % count))
            for index, (name, feed) in enumerate(feeds.items())}


class PartSpawner:
    """Builds, names and removes the parts of a run.

    Args:
        world: the run world (built from :func:`run_cell`).
        shares: from :func:`feed_shares`.
        labels: body id -> name, updated as parts come and go (shared with the monitors).
        dynamics: part type name -> :class:`celltwin.physics.BodyDynamics` overrides to apply to
            every part of that type (what ``--physics`` says about the cell's parts).
    """

    def __init__(self, world, shares: dict[str, tuple[Feed, int]], labels: dict[int, str],
                 dynamics: dict | None = None, multibody_parts: bool = False):
        self._world = world
        self._add = scene.add_part if multibody_parts else add_rigid_part
        self._client = world.client
        self.labels = labels
        self._dynamics = dynamics or {}
        self._feeds = {name: feed for name, (feed, _) in shares.items()}
        self._count = {name: count for name, (_, count) in shares.items()}
        self.remaining = dict(self._count)
        types = [feed.part.name for feed in self._feeds.values()]
        self._prefix = {name: feed.part.name if types.count(feed.part.name) == 1
                        else f"{name}_{feed.part.name}" for name, feed in self._feeds.items()}
        self._body: dict[str, int] = {}      # live part -> body id
        self._sync_conveyors()

    @property
    def live(self):
        """Names of the parts in the cell now."""
        return self._body.keys()

    def body(self, part: str) -> int:
        """The body id of a live part."""
        return self._body[part]

    def release(self, feed: str, position, yaw_rad: float) -> str:
        """Build the next part of ``feed`` at rest at ``position``; return its name."""
        index = self._count[feed] - self.remaining[feed]
        name = self._prefix[feed] if self._count[feed] == 1 else f"{self._prefix[feed]}_{index}"
        part = self._feeds[feed].part
        body = self._add(self._client, part, list(position), yaw_rad)
        overrides = self._dynamics.get(part.name)
        if overrides is not None:
            self._apply(body, overrides)
        self.remaining[feed] -= 1
        self._body[name] = body
        self.labels[body] = name
        self._sync_conveyors()
        return name

    def remove(self, part: str) -> None:
        """Take a part out of the world (a suction cup still holding it lets go first)."""
        body = self._body.pop(part)
        for robot in self._world.robots.values():
            if robot.suction is not None:
                robot.suction.release(body)
        self._client.removeBody(body)
        self.labels.pop(body, None)
        self._sync_conveyors()

    def _apply(self, body: int, dynamics) -> None:
        names = {"mass_kg": "mass", "lateral_friction": "lateralFriction",
                 "rolling_friction": "rollingFriction", "spinning_friction": "spinningFriction",
                 "restitution": "restitution"}
        values = {names[key]: value for key, value in dynamics.model_dump().items()
                  if value is not None}
        if values:
            self._client.changeDynamics(body, -1, **values)

    def _sync_conveyors(self) -> None:
        # A belt asks each body it may carry whether it touches it, every control step.
        live = frozenset(self._body.values())
        for conveyor in self._world.conveyors.values():
            conveyor.carried = live


def add_rigid_part(client, part, position, yaw_rad: float) -> int:
    """:func:`celltwin.scene.add_part` as a rigid body in maximal coordinates (see the module)."""
    return scene.add_part(client, part, position, yaw_rad, maximal_coordinates=True)


def spawn_pose(world, feed: Feed) -> tuple[list[float], float]:
    """World position and yaw [rad] at which parts of ``feed`` arrive: its region's centre."""
    (position, yaw), = scene.spawn_positions(feed.region, 1, *world.frame(feed.region.on),
                                             world.client)
    return position, yaw

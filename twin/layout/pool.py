"""The parts of a layout run: a pool of bodies built once, parked until they arrive.

A run needs as many parts as it feeds, but every part resting in the cell costs the physics
solver time on every substep (about 0.3-0.6 ms per control step each for pick_station). So the
run cell holds ``N`` parts of each feed's type, built with the world, and keeps every part that
is not in the cell *parked*: massless (static) and in no collision group, where the solver
never sees it. A part arrives by being un-parked at its spawn region's centre; it leaves (placed,
dropped) by being parked again. Only the few parts in the cell are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin import scene
from twin.layout.jobs import Feed, Job
from twin.spec import CellSpec
from twin.spec.loader import validate_cell_data

_PARK_XYZ = (0.0, 0.0, -50.0)  # out of sight and, with no collision group, out of reach
_STAGING = "layout_staging"


def run_cell(cell: CellSpec, jobs: list[Job], parts: int) -> tuple[CellSpec, dict[str, list[str]]]:
    """The cell a run builds: the cell's parts replaced by pools, only the jobs' targets kept.

    Args:
        cell: the cell as written.
        jobs: the jobs found in it.
        parts: how many parts the run feeds in all; split across feeds, first feeds first.

    Returns:
        the run cell, and feed name -> the pool's body names in arrival order.
    """
    feeds = _unique_feeds(jobs)
    data = cell.model_dump(mode="json", exclude_none=True)
    taken = {item["name"] for section in ("robots", "equipment", "conveyors", "bins",
                                          "spawn_regions") for item in data.get(section, [])}
    staging = _STAGING
    while staging in taken:
        staging += "_"
    data["spawn_regions"] = [*data.get("spawn_regions", []),
                             {"name": staging, "low_m": list(_PARK_XYZ), "high_m": list(_PARK_XYZ)}]
    used = {target.name for job in jobs for target in (job.pick, job.place)}
    data["targets"] = [t for t in data.get("targets", []) if t["name"] in used]
    data["parts"] = []
    shares = [parts // len(feeds) + (index < parts % len(feeds)) for index in range(len(feeds))]
    type_names = [feed.part.name for feed in feeds]
    for feed, share in zip(feeds, shares):
        if share == 0:
            continue
        name = feed.part.name if type_names.count(feed.part.name) == 1 else \
            f"{feed.part.name}_{feed.name}"
        part = feed.part.model_dump(mode="json", exclude_none=True)
        data["parts"].append({**part, "name": name, "count": share, "spawn": staging})
    spec = validate_cell_data(data)
    pools = {}
    entries = iter(spec.parts)
    for feed, share in zip(feeds, shares):
        pools[feed.name] = next(entries).body_names() if share else []
    return spec, pools


def _unique_feeds(jobs: list[Job]) -> list[Feed]:
    feeds: dict[str, Feed] = {}
    for job in jobs:
        feeds.setdefault(job.feed.name, job.feed)
    return list(feeds.values())


@dataclass
class PoolPart:
    """One part of the pool and where it is in its life."""

    name: str
    body_id: int
    feed: str
    mass_kg: float


class PartPool:
    """Parks and releases the pool parts of a run world.

    Args:
        world: the run world (built from :func:`run_cell`).
        pools: feed name -> body names, from :func:`run_cell`.
    """

    def __init__(self, world, pools: dict[str, list[str]]):
        self._world = world
        client = world.client
        self._client = client
        self.parts: dict[str, PoolPart] = {}
        self.waiting: dict[str, list[str]] = {feed: list(names) for feed, names in pools.items()}
        for feed, names in pools.items():
            for name in names:
                body = world.bodies[name]
                self.parts[name] = PoolPart(name, body, feed, client.getDynamicsInfo(body, -1)[0])
                self._park(body)
        self.live: set[str] = set()
        self._sync_conveyors()

    def release(self, name: str, position, yaw_rad: float) -> None:
        """Bring a parked part into the cell at rest at ``position`` with yaw ``yaw_rad``."""
        part = self.parts[name]
        client = self._client
        client.resetBasePositionAndOrientation(part.body_id, list(position),
                                               client.getQuaternionFromEuler([0.0, 0.0, yaw_rad]))
        client.resetBaseVelocity(part.body_id, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
        client.changeDynamics(part.body_id, -1, mass=part.mass_kg)
        client.setCollisionFilterGroupMask(part.body_id, -1, 1, -1)  # pybullet's default
        self.waiting[part.feed].remove(name)
        self.live.add(name)
        self._sync_conveyors()

    def remove(self, name: str) -> None:
        """Take a part out of the cell (placed parts leave with the outfeed; dropped ones are
        cleared away)."""
        self._park(self.parts[name].body_id)
        self.live.discard(name)
        self._sync_conveyors()

    def _park(self, body: int) -> None:
        client = self._client
        client.setCollisionFilterGroupMask(body, -1, 0, 0)
        client.changeDynamics(body, -1, mass=0.0)
        client.resetBasePositionAndOrientation(body, list(_PARK_XYZ), [0.0, 0.0, 0.0, 1.0])
        client.resetBaseVelocity(body, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])

    def _sync_conveyors(self) -> None:
        # A belt asks each body it may carry whether it touches it, every control step: only
        # parts in the cell are worth asking about.
        live = frozenset(self.parts[name].body_id for name in self.live)
        for conveyor in self._world.conveyors.values():
            conveyor.carried = live


def spawn_pose(world, feed: Feed) -> tuple[list[float], float]:
    """World position and yaw [rad] at which parts of ``feed`` arrive: its region's centre."""
    (position, yaw), = scene.spawn_positions(feed.region, 1, *world.frame(feed.region.on),
                                             world.client)
    return position, yaw

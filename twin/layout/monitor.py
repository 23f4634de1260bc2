"""Collisions and near misses of robots during a layout run.

Definitions (per robot, checked after every control step):

- **collision**: an overlap reported by the physics engine between one of the robot's moving
  links (every link but the base, which is bolted to its mount) and any body other than the
  part the robot is handling in its current cycle: equipment, conveyors, bins, the floor,
  other robots, and other parts (a neighbour in a queue counts). One *event* is one link/body
  pair coming into contact; it lasts while they stay in contact.
- **near miss**: a moving link closer than ``near_miss_m`` (1 cm) to such a body without
  touching it. Measured while the robot works on a part (a robot standing still cannot come
  closer); one event per pair coming within the distance.

Every event keeps its time, the names involved and the deepest overlap or closest distance.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from celltwin.layout.proximity import BASE_LINK, ProximityProbe, link_names


@dataclass
class Event:
    """One collision or near miss between a robot link and a body."""

    kind: str            # "collision" or "near_miss"
    robot: str
    link: str
    body: str
    body_link: str
    start_s: float
    duration_s: float
    distance_m: float    # deepest overlap (negative) or closest distance

    def to_dict(self) -> dict:
        return {key: round(value, 4) if isinstance(value, float) else value
                for key, value in asdict(self).items()}


class RobotMonitor:
    """Watches one robot; call :meth:`update` after every control step.

    Args:
        world: the run world.
        robot: the robot's name.
        obstacles: names of the fixed bodies, the floor and the other robots.
        labels: body id -> the name to report; the runner adds parts as they arrive.
        near_miss_m: near-miss distance [m].
    """

    def __init__(self, world, robot: str, obstacles: list[str], labels: dict[int, str],
                 near_miss_m: float = 0.01):
        self.robot = robot
        self.near_miss_m = near_miss_m
        client = world.client
        self._robot_id = world.bodies[robot]
        self._contacts = client.getContactPoints
        self._links = link_names(client, self._robot_id)
        self._labels = labels
        self._other_links = {world.bodies[name]: link_names(client, world.bodies[name])
                             for name in world.robots if name != robot}
        self._obstacles = list(obstacles)
        self._probe = ProximityProbe(world, robot, list(world.bodies))
        self.events: list[Event] = []
        self._open: dict[str, Event] = {}        # body -> collision event in progress
        self._near: dict[str, Event] = {}        # body -> near-miss event in progress
        self.min_clearance_m: dict[str, float] = {}

    def update(self, now_s: float, dt_s: float, handled: int | None, live_parts: list[int],
               moving: bool) -> int:
        """Record this step's contacts (and near misses while ``moving``).

        Args:
            now_s: simulated time at the end of the step [s].
            dt_s: control period [s].
            handled: body id of the part the robot is handling, or ``None``.
            live_parts: body ids of the parts now in the cell.
            moving: the robot works on a part this step.

        Returns:
            how many new collision events began.
        """
        touching: dict[str, tuple] = {}  # body -> (depth, link, body link)
        for contact in self._contacts(bodyA=self._robot_id):
            link, body = contact[3], contact[2]
            # The engine also lists points a hair apart (within its contact margin): only
            # overlap is a collision; the rest are near misses, measured below.
            if link == BASE_LINK or body == handled or contact[8] >= 0.0:
                continue
            name = self._labels.get(body, str(body))
            if name not in touching or contact[8] < touching[name][0]:
                touching[name] = (contact[8], self._links[link],
                                  self._other_links[body][contact[4]]
                                  if body in self._other_links else "")
        began = 0
        for name, (depth, link, body_link) in touching.items():
            event = self._open.get(name)
            if event is None:
                event = self._open[name] = Event("collision", self.robot, link, name, body_link,
                                                 now_s, 0.0, depth)
                self.events.append(event)
                began += 1
            event.duration_s += dt_s
            if depth < event.distance_m:
                event.distance_m, event.link, event.body_link = depth, link, body_link
            self._clearance(name, depth)
        for key in [key for key in self._open if key not in touching]:
            del self._open[key]
        if moving:
            self._near_misses(now_s, dt_s, handled, live_parts, touching)
        return began

    def _near_misses(self, now_s, dt_s, handled, live_parts, touching) -> None:
        extra = {self._labels[body]: body for body in live_parts if body != handled}
        close: dict[str, object] = {}  # body -> its closest Proximity
        for near in self._probe.within(self.near_miss_m, self._obstacles, extra):
            label = near.body
            if label in touching or near.distance_m < 0:
                continue  # counted as a collision
            if label not in close or near.distance_m < close[label].distance_m:
                close[label] = near
        for name, near in close.items():
            self._clearance(name, near.distance_m)
            event = self._near.get(name)
            if event is None:
                event = self._near[name] = Event("near_miss", self.robot, near.link, name,
                                                 near.body_link, now_s, 0.0, near.distance_m)
                self.events.append(event)
            event.duration_s += dt_s
            if near.distance_m < event.distance_m:
                event.distance_m, event.link = near.distance_m, near.link
        for key in [key for key in self._near if key not in close]:
            del self._near[key]

    def _clearance(self, body: str, distance: float) -> None:
        if distance < self.min_clearance_m.get(body, float("inf")):
            self.min_clearance_m[body] = distance

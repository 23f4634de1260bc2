"""Distances between a robot's moving links and the other bodies of a world, by name.

Both ``layout check`` (robot posed along planned paths) and ``layout run`` (robot moving under
physics) ask the same question: which robot links come within some distance of which bodies.
pybullet's ``getClosestPoints`` answers it per body pair; this module names the answer.

The robot's base link is left out everywhere: it is bolted to its mount (the table or
pedestal it stands on touches it by design) and never moves, so its distances say nothing a
build-time interpenetration check has not said already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASE_LINK = -1


@dataclass(frozen=True)
class Proximity:
    """The closest approach of one robot link to one body.

    Attributes:
        robot: robot name.
        link: the robot link's name.
        body: the other body's name.
        body_link: the other body's link name when it has several (a robot), else ``""``.
        distance_m: signed distance; negative means the two overlap by that much [m].
        point_m: the point on the robot link, world frame [m].
    """

    robot: str
    link: str
    body: str
    body_link: str
    distance_m: float
    point_m: tuple[float, float, float]

    def pair(self) -> tuple[str, str, str, str]:
        return (self.robot, self.link, self.body, self.body_link)

    def describe(self) -> str:
        other = f"{self.body}/{self.body_link}" if self.body_link else self.body
        return f"{self.robot}/{self.link} - {other}"


def link_names(client, body_id: int) -> dict[int, str]:
    """Index -> link name of a body (-1: its base link's name)."""
    names = {BASE_LINK: client.getBodyInfo(body_id)[0].decode()}
    for index in range(client.getNumJoints(body_id)):
        names[index] = client.getJointInfo(body_id, index)[12].decode()
    return names


class ProximityProbe:
    """Closest points between one robot's moving links and a fixed set of other bodies.

    Args:
        world: the world.
        robot: name of the robot.
        bodies: names of the bodies to measure against (not the robot itself).
    """

    def __init__(self, world, robot: str, bodies: list[str]):
        self.robot = robot
        client = world.client
        self._robot_id = world.bodies[robot]
        self._closest = client.getClosestPoints
        self._robot_links = link_names(client, self._robot_id)
        self._bodies = {name: world.bodies[name] for name in bodies if name != robot}
        self._body_links = {name: (link_names(client, body) if name in world.robots else None)
                            for name, body in self._bodies.items()}
        self._aabb = client.getAABB
        self._moving_links = [link for link in self._robot_links if link != BASE_LINK]
        # Fixed bodies never move: their bounding boxes are read once.
        self._static_boxes = {name: self._box(name, body) for name, body in self._bodies.items()
                              if name in world.static_bodies}

    def within(self, distance_m: float, bodies: list[str] | None = None,
               extra: dict[str, int] | None = None) -> list[Proximity]:
        """Closest approach per (link, body) pair closer than ``distance_m`` [m].

        Args:
            distance_m: the search distance [m].
            bodies: measure only against these (default: every body of the probe).
            extra: more single-link bodies to measure against, name -> body id (parts that
                came into the world after the probe was made).
        """
        found: dict[tuple, Proximity] = {}
        targets = [(name, self._bodies[name])
                   for name in (self._bodies if bodies is None else bodies)]
        targets += list((extra or {}).items())
        for name, body_id in self._near_boxes(distance_m, targets):
            body_links = self._body_links.get(name)
            for point in self._closest(self._robot_id, body_id, distance_m):
                link = point[3]
                if link == BASE_LINK:
                    continue
                distance = point[8]
                key = (link, name, point[4])
                best = found.get(key)
                if best is None or distance < best.distance_m:
                    found[key] = Proximity(self.robot, self._robot_links[link], name,
                                           body_links[point[4]] if body_links else "",
                                           float(distance), tuple(point[5]))
        return sorted(found.values(), key=lambda p: p.distance_m)

    def _box(self, name: str, body: int) -> np.ndarray:
        links = self._body_links.get(name)
        indices = range(-1, len(links) - 1) if links else (-1,)
        boxes = np.array([self._aabb(body, link) for link in indices])
        return np.array([boxes[:, 0].min(axis=0), boxes[:, 1].max(axis=0)])

    def _near_boxes(self, distance_m: float, targets: list[tuple[str, int]]):
        """The (name, id) targets whose bounding box comes within ``distance_m`` of a moving
        link's box.

        Comparing bounding boxes costs a few microseconds for all bodies at once; a
        closest-point query costs several per body, and most bodies are far from every link
        most of the time.
        """
        if not targets:
            return []
        links = np.array([self._aabb(self._robot_id, link) for link in self._moving_links])
        boxes = np.array([self._static_boxes[name] if name in self._static_boxes
                          else self._box(name, body) for name, body in targets])
        low = links[:, 0] - distance_m                                  # (links, 3)
        high = links[:, 1] + distance_m
        overlap = ((boxes[:, None, 0] <= high[None]) & (boxes[:, None, 1] >= low[None])).all(-1)
        return [target for target, near in zip(targets, overlap.any(-1)) if near]

    def minimum(self, body: str, search_m: float = 2.0) -> Proximity | None:
        """The closest any moving link comes to ``body`` within ``search_m``, or ``None``."""
        near = self.within(search_m, [body])
        return near[0] if near else None

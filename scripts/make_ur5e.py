"""Write celltwin's UR5e description (assets/robots/ur5e/) from ROS-Industrial's ur_description.

Kinematics, joint limits and link masses come from ur_description's ``config/ur5e`` files
(Universal Robots' published parameters: d1 0.1625, a2 -0.425, a3 -0.3922, d4 0.1333,
d5 0.0997, d6 0.0996 m), the frames and names from its ``urdf/inc/ur_macro.xacro``, so the
links, joints, ``base_link`` (REP-103: x forward) and ``tool0`` are those of the ROS
description. Each link's collision mesh there is convex already; this script keeps the convex
hull of 128 of its vertices (farthest-point sampled), a few kilobytes instead of a hundred,
for collision and for looks. Run it again only to change the description:

    git clone https://github.com/ros-industrial/universal_robot
    python scripts/make_ur5e.py universal_robot/ur_description
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import trimesh
import yaml

OUT = Path(__file__).resolve().parent.parent / "assets" / "robots" / "ur5e"
HULL_POINTS = 128
PI = math.pi

# (link, mesh, collision origin xyz, rpy): ur_macro.xacro's <collision> origins; the offsets
# are ur5e's visual_parameters.yaml and physical_parameters.yaml values.
LINKS = [
    ("base_link_inertia", "base", (0, 0, 0), (0, 0, PI)),
    ("shoulder_link", "shoulder", (0, 0, 0), (0, 0, PI)),
    ("upper_arm_link", "upperarm", (0, 0, 0.138), (PI / 2, 0, -PI / 2)),
    ("forearm_link", "forearm", (0, 0, 0.007), (PI / 2, 0, -PI / 2)),
    ("wrist_1_link", "wrist1", (0, 0, -0.127), (PI / 2, 0, 0)),
    ("wrist_2_link", "wrist2", (0, 0, -0.0997), (0, 0, 0)),
    ("wrist_3_link", "wrist3", (0, 0, -0.0989), (PI / 2, 0, 0)),
]
# physical_parameters.yaml key of each link's mass and its inertia cylinder (ur_common.xacro).
MASS_KEYS = {"base_link_inertia": "base", "shoulder_link": "shoulder",
             "upper_arm_link": "upper_arm", "forearm_link": "forearm",
             "wrist_1_link": "wrist_1", "wrist_2_link": "wrist_2", "wrist_3_link": "wrist_3"}
CYLINDER_KEYS = {"base_link_inertia": "base", "shoulder_link": "shoulder",
                 "upper_arm_link": "upperarm", "forearm_link": "forearm",
                 "wrist_1_link": "wrist_1", "wrist_2_link": "wrist_2",
                 "wrist_3_link": "wrist_3"}
# (joint, parent, child, default_kinematics.yaml key, joint_limits.yaml key)
JOINTS = [
    ("shoulder_pan_joint", "base_link_inertia", "shoulder_link", "shoulder", "shoulder_pan"),
    ("shoulder_lift_joint", "shoulder_link", "upper_arm_link", "upper_arm", "shoulder_lift"),
    ("elbow_joint", "upper_arm_link", "forearm_link", "forearm", "elbow_joint"),
    ("wrist_1_joint", "forearm_link", "wrist_1_link", "wrist_1", "wrist_1"),
    ("wrist_2_joint", "wrist_1_link", "wrist_2_link", "wrist_2", "wrist_2"),
    ("wrist_3_joint", "wrist_2_link", "wrist_3_link", "wrist_3", "wrist_3"),
]


class _DegreesLoader(yaml.SafeLoader):
    """ur_description writes limits as ``!degrees 360.0``."""


_DegreesLoader.add_constructor("!degrees", lambda loader, node: math.radians(
    float(loader.construct_scalar(node))))


def read(folder: Path, name: str) -> dict:
    with open(folder / "config" / "ur5e" / f"{name}.yaml") as stream:
        return yaml.load(stream, Loader=_DegreesLoader)  # noqa: S506 - a SafeLoader subclass


def small_hull(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The convex hull of ``HULL_POINTS`` of the mesh's hull vertices, farthest-point sampled."""
    points = mesh.convex_hull.vertices
    chosen = [int(np.argmax(np.linalg.norm(points - points.mean(axis=0), axis=1)))]
    distance = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < min(HULL_POINTS, len(points)):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=1))
    return trimesh.convex.convex_hull(points[chosen])


def cylinder_inertial(mass: float, radius: float, length: float, xyz, rpy) -> str:
    side = mass * (3 * radius ** 2 + length ** 2) / 12
    return (f'<inertial><origin xyz="{_v(xyz)}" rpy="{_v(rpy)}"/><mass value="{mass}"/>'
            f'<inertia ixx="{side:.6g}" ixy="0" ixz="0" iyy="{side:.6g}" iyz="0" '
            f'izz="{0.5 * mass * radius ** 2:.6g}"/></inertial>')


def _v(values) -> str:
    return " ".join(f"{value:.10g}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ur_description", type=Path, help="ur_description's folder")
    folder = parser.parse_args().ur_description
    kinematics = read(folder, "default_kinematics")["kinematics"]
    limits = read(folder, "joint_limits")["joint_limits"]
    inertia = read(folder, "physical_parameters")["inertia_parameters"]
    (OUT / "meshes").mkdir(parents=True, exist_ok=True)
    cylinders = inertia["links"]
    # ur_macro.xacro's inertial origins: along the arm's tubes, at the upper arm's offset.
    upper, forearm = cylinders["upperarm"]["length"], cylinders["forearm"]["length"]
    inertial_origins = {
        "upper_arm_link": ((-0.5 * upper, 0, inertia["upper_arm_inertia_offset"]), (0, PI / 2, 0)),
        "forearm_link": ((-0.5 * forearm, 0, 0.007), (0, PI / 2, 0)),
        "wrist_3_link": ((0, 0, -0.5 * cylinders["wrist_3"]["length"]), (0, 0, 0))}
    lines = ['<?xml version="1.0"?>',
             "<!-- Universal Robots UR5e, written by celltwin's scripts/make_ur5e.py from",
             "     ROS-Industrial's ur_description (BSD): config/ur5e kinematics, limits and",
             "     masses, frames and names of urdf/inc/ur_macro.xacro; collision and visual",
             "     meshes are small convex hulls of its collision meshes. Do not edit; run the",
             "     script. -->",
             '<robot name="ur5e">',
             '  <material name="ur_grey"><color rgba="0.7 0.7 0.7 1"/></material>',
             '  <material name="ur_blue"><color rgba="0.25 0.45 0.7 1"/></material>',
             '  <link name="base_link"/>']
    for link, mesh_name, xyz, rpy in LINKS:
        hull = small_hull(trimesh.load(folder / "meshes" / "ur5e" / "collision" /
                                       f"{mesh_name}.stl"))
        hull.export(OUT / "meshes" / f"{mesh_name}.stl")
        mesh = (f'<origin xyz="{_v(xyz)}" rpy="{_v(rpy)}"/><geometry>'
                f'<mesh filename="meshes/{mesh_name}.stl"/></geometry>')
        colour = "ur_blue" if link in ("shoulder_link", "wrist_1_link", "wrist_3_link") \
            else "ur_grey"
        cylinder = cylinders[CYLINDER_KEYS[link]]
        origin = inertial_origins.get(link, ((0, 0, 0), (0, 0, 0)))
        lines.append(f'  <link name="{link}">'
                     + cylinder_inertial(inertia[f"{MASS_KEYS[link]}_mass"], cylinder["radius"],
                                         cylinder["length"], *origin)
                     + f'<visual>{mesh}<material name="{colour}"/></visual>'
                     + f"<collision>{mesh}</collision></link>")
    lines.append('  <joint name="base_link-base_link_inertia" type="fixed">'
                 '<parent link="base_link"/><child link="base_link_inertia"/>'
                 '<origin xyz="0 0 0" rpy="0 0 3.141592654"/></joint>')
    for joint, parent, child, frame, limit_key in JOINTS:
        pose = kinematics[frame]
        limit = limits[limit_key]
        lines.append(
            f'  <joint name="{joint}" type="revolute"><parent link="{parent}"/>'
            f'<child link="{child}"/><origin xyz="{_v((pose["x"], pose["y"], pose["z"]))}" '
            f'rpy="{_v((pose["roll"], pose["pitch"], pose["yaw"]))}"/><axis xyz="0 0 1"/>'
            f'<limit lower="{limit["min_position"]:.10g}" upper="{limit["max_position"]:.10g}" '
            f'effort="{limit["max_effort"]}" velocity="{limit["max_velocity"]:.10g}"/>'
            '<dynamics damping="0" friction="0"/></joint>')
    lines += ['  <link name="flange"/>', '  <link name="tool0"/>',
              '  <joint name="wrist_3-flange" type="fixed"><parent link="wrist_3_link"/>'
              '<child link="flange"/><origin xyz="0 0 0" rpy="0 -1.570796327 -1.570796327"/>'
              "</joint>",
              '  <joint name="flange-tool0" type="fixed"><parent link="flange"/>'
              '<child link="tool0"/><origin xyz="0 0 0" rpy="1.570796327 0 1.570796327"/>'
              "</joint>", "</robot>", ""]
    (OUT / "ur5e.urdf").write_text("\n".join(lines))
    print(f"wrote {OUT / 'ur5e.urdf'} and {len(LINKS)} meshes")


if __name__ == "__main__":
    main()

"""CAD equipment: units, scale, watertight check, convex decomposition cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from celltwin.check import check_cell
from celltwin.core.errors import WorldError
from celltwin.meshes import prepare_mesh
from celltwin.spec import load_cell
from celltwin.world import World

CELL = """\
name: mesh_cell
robots:
  - {{name: arm, model: panda, base: {{xyz: [0, 0, 0]}}}}
equipment:
  - name: fixture
    shape: mesh
    mesh: {mesh}
    mesh_units: {units}
    pose: {{xyz: [0.0, 0.7, 0.0]}}
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLTWIN_CACHE", str(tmp_path / "cache"))


def write_cell(tmp_path, mesh_name: str, units: str):
    path = tmp_path / "cell.yaml"
    path.write_text(CELL.format(mesh=mesh_name, units=units))
    return path


def test_mesh_in_millimetres_becomes_metres_and_collides(tmp_path):
    # An L-shaped bracket: concave, so collision needs more than one convex hull.
    base = trimesh.creation.box(extents=[200.0, 100.0, 20.0])
    upright = trimesh.creation.box(extents=[20.0, 100.0, 150.0])
    upright.apply_translation([-90.0, 0.0, 85.0])
    mesh = trimesh.util.concatenate([base, upright])
    mesh.apply_translation([0, 0, 10.0])
    mesh.export(tmp_path / "bracket.stl")
    with World(write_cell(tmp_path, "bracket.stl", "mm")) as world:
        low, high = world.client.getAABB(world.body("fixture"))
        # Collision hulls carry a small margin; millimetres read as metres would be 1000x off.
        assert np.allclose(np.subtract(high, low), [0.2, 0.1, 0.17], atol=0.02)
        prepared = world.meshes["fixture"]
        assert prepared.extents_m == pytest.approx((0.2, 0.1, 0.17), abs=1e-6)
        assert prepared.hulls >= 2
        report = check_cell(world)
        assert any("fixture" in note and "convex hull" in note for note in report.notes)
        # A ball dropped on the foot of the bracket comes to rest on it, not on the floor.
        ball = world.client.createMultiBody(
            0.1, world.client.createCollisionShape(world.client.GEOM_SPHERE, radius=0.02),
            basePosition=[0.05, 0.7, 0.3])
        world.step(25)
        z = world.client.getBasePositionAndOrientation(ball)[0][2]
        assert z == pytest.approx(0.02 + 0.02, abs=0.01)


def test_decomposition_is_cached_and_reused(tmp_path):
    trimesh.creation.icosphere(radius=0.1).export(tmp_path / "ball.obj")
    first = prepare_mesh(tmp_path / "ball.obj")
    stamp = first.collision_obj.stat().st_mtime_ns
    second = prepare_mesh(tmp_path / "ball.obj")
    assert second.collision_obj == first.collision_obj
    assert second.collision_obj.stat().st_mtime_ns == stamp
    scaled = prepare_mesh(tmp_path / "ball.obj", units="cm")
    assert scaled.collision_obj != first.collision_obj
    assert scaled.extents_m == pytest.approx((0.002, 0.002, 0.002), rel=0.05)


def test_open_mesh_is_reported_not_watertight(tmp_path):
    box = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    box.update_faces(np.arange(len(box.faces)) > 1)  # drop one side: open edges
    box.export(tmp_path / "open.obj")
    mesh = prepare_mesh(tmp_path / "open.obj")
    assert mesh.watertight is False
    with World(write_cell(tmp_path, "open.obj", "m")) as world:
        assert any("NOT watertight" in note for note in check_cell(world).notes)


def test_glb_meshes_load(tmp_path):
    trimesh.creation.cylinder(radius=0.05, height=0.3).export(tmp_path / "post.glb")
    mesh = prepare_mesh(tmp_path / "post.glb")
    assert mesh.watertight
    assert max(mesh.extents_m) == pytest.approx(0.3, abs=1e-3)


def test_unreadable_mesh_is_a_clear_error(tmp_path):
    (tmp_path / "junk.stl").write_bytes(b"not a mesh at all")
    with pytest.raises(WorldError, match="junk.stl"):
        prepare_mesh(tmp_path / "junk.stl")
    with pytest.raises(WorldError):
        World(load_cell(write_cell(tmp_path, "junk.stl", "m")))

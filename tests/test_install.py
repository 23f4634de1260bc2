"""The installed (non-editable) package finds every asset it ships."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import twin
from robots import get_robot_model, robot_model_names
from twin.assets import asset_path, assets_root
from twin.spec import load_cell


def test_tests_run_against_the_installed_package():
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(twin.__file__).resolve().is_relative_to(site), twin.__file__
    assert assets_root().resolve().is_relative_to(site), assets_root()


def test_installed_assets_are_complete():
    for name in ("pick_station", "two_arm_line"):
        assert asset_path(f"cells/{name}.yaml").is_file()
        assert load_cell(name).name == name
    assert asset_path("robots/grippers/parallel_jaw.urdf").is_file()
    for name in robot_model_names():
        assert get_robot_model(name).urdf_path().is_file()


def test_every_code_package_in_the_source_tree_is_installed():
    import importlib.util

    repo = Path(__file__).resolve().parents[1]
    for top in ("twin", "robots", "policies", "training"):
        for init in (repo / top).rglob("__init__.py"):
            dotted = ".".join(init.parent.relative_to(repo).parts)
            assert importlib.util.find_spec(dotted) is not None, f"{dotted} missing from the wheel"

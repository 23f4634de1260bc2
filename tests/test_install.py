"""The installed (non-editable) package: one import name, every asset, usable beside user code."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

import celltwin
from celltwin.core.resources import asset_path, assets_root
from celltwin.robots import get_robot_model, robot_model_names
from celltwin.spec import load_cell

REPO = Path(__file__).resolve().parents[1]


def _package_dirs() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def test_tests_run_against_the_installed_package():
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(celltwin.__file__).resolve().is_relative_to(site), celltwin.__file__
    assert assets_root().resolve().is_relative_to(site), assets_root()


def test_installed_assets_are_complete():
    for name in ("pick_station", "two_arm_line"):
        assert asset_path(f"cells/{name}.yaml").is_file()
        assert load_cell(name).name == name
    assert asset_path("robots/grippers/parallel_jaw.urdf").is_file()
    for name in robot_model_names():
        assert get_robot_model(name).urdf_path().is_file()


def test_every_code_package_in_the_source_tree_is_installed():
    folders = _package_dirs()
    assert set(folders) >= {"celltwin", "celltwin.robots", "celltwin.policies",
                            "celltwin.training", "celltwin.assets"}
    for package, folder in folders.items():
        for init in (REPO / folder).rglob("__init__.py"):
            dotted = ".".join((package, *init.parent.relative_to(REPO / folder).parts))
            assert importlib.util.find_spec(dotted) is not None, f"{dotted} missing from the wheel"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO)], check=True, timeout=300,
                   capture_output=True, text=True)
    (found,) = out.glob("celltwin-*.whl")
    return found


def test_the_wheel_installs_one_import_name_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert archive.read(top_level).decode().split() == ["celltwin"]
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "celltwin = celltwin.cli.main:main" in archive.read(entry_points).decode()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"celltwin"}
    assert "celltwin/assets/cells/pick_station.yaml" in names
    assert "celltwin/training/presets/reach.yaml" in names


@pytest.mark.slow
def test_a_user_project_with_its_own_twin_robots_policies_training_trains_reach(wheel, tmp_path):
    """A fresh venv holding only the wheel (its dependencies seen through a .pth file), and a
    project whose own packages carry the names celltwin 0.1 used to install."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  check=True, capture_output=True, text=True).stdout.strip())
    before = set(p.name for p in purelib.iterdir())
    with zipfile.ZipFile(wheel) as archive:   # what `pip install --no-deps` does, minus pip
        archive.extractall(purelib)
    installed = set(p.name for p in purelib.iterdir()) - before
    assert {name for name in installed if not name.endswith(".dist-info")} == {"celltwin"}
    # Dependencies (torch, pybullet, SB3, ...) from the test venv, after the fresh one's own.
    (purelib / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    project = tmp_path / "project"
    for name in ("twin", "robots", "policies", "training"):
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text(f"OWNER = 'user project {name}'\n")
    (project / "policies" / "scripted.py").write_text("USER = True\n")
    (project / "train_reach.py").write_text(textwrap.dedent("""
        import sys
        import policies, robots, training, twin
        from policies import scripted
        from celltwin.training.config import TrainConfig
        from celltwin.training.trainer import train

        config = TrainConfig.model_validate({
            "task": "Reach", "algo": "sac", "her": True, "steps": 120, "n_envs": 1,
            "vec_env": "dummy", "rollout_workers": 1, "device": "cpu",
            "hyperparameters": {"learning_starts": 60, "batch_size": 16, "buffer_size": 200,
                                "policy_kwargs": {"net_arch": [16, 16]}},
            "eval": {"every_steps": 120, "episodes": 1, "final_episodes": 1},
            "checkpoint_every_steps": 120})
        summary = train(config, "run", log=lambda *a, **k: None)
        for module in (twin, robots, policies, training):
            assert module.OWNER.startswith("user project"), module
        assert scripted.USER
        import celltwin
        assert celltwin.__file__.startswith(sys.prefix), celltwin.__file__
        print("trained", summary["steps"])
    """))
    result = subprocess.run([str(python), "train_reach.py"], cwd=project, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained 120" in result.stdout
    assert (project / "run" / "final" / "model.zip").is_file()

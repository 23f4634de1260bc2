"""Run directories written by celltwin 0.1's five-package layout still resume, evaluate, export.

``tests/data/legacy/`` holds two tiny Reach runs (SAC + HER, with and without VecNormalize)
written by that layout: their ``model.zip`` pickles name ``training.features``.
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from celltwin.cli.main import main
from celltwin.policies.bundle import load_bundle
from celltwin.training.run_dir import load_trained
from celltwin.training.trainer import resume

LEGACY = Path(__file__).parent / "data" / "legacy"
RUNS = ("reach_sac_her", "reach_sac_her_normalized")


@pytest.fixture(params=RUNS)
def legacy_run(request, tmp_path) -> Path:
    run = tmp_path / request.param
    shutil.copytree(LEGACY / request.param, run)
    return run


def test_the_fixtures_are_of_the_old_layout():
    with zipfile.ZipFile(LEGACY / RUNS[0] / "final" / "model.zip") as archive:
        assert b"training.features" in archive.read("data")


def test_a_legacy_model_loads_celltwins_classes(legacy_run):
    # The old names are mapped, not found: a ``training`` package that happens to be importable
    # (the source tree on sys.path, or a user's own) is never what the model gets.
    policy = load_trained(legacy_run).model.policy
    extractor = type(policy.actor.features_extractor)
    assert extractor.__module__ == "celltwin.training.features"
    assert "training" not in sys.modules


@pytest.mark.slow
def test_a_legacy_run_resumes(legacy_run):
    summary = resume(legacy_run, steps=600, log=lambda *a, **k: None)
    assert summary["steps"] == 600
    assert load_trained(legacy_run).model.num_timesteps == 600


def test_a_legacy_model_evaluates(legacy_run, tmp_path, capsys):
    out = tmp_path / "evaluation"
    code = main(["evaluate", str(legacy_run / "final" / "model.zip"), "--task", "Reach",
                 "--episodes", "2", "--grid-episodes", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "evaluation.json").read_text())
    assert 0.0 <= report["nominal"]["success_rate"] <= 1.0


def test_a_legacy_run_exports(legacy_run, tmp_path, capsys):
    code = main(["export", str(legacy_run), "-o", str(tmp_path / "bundle"), "--samples", "100"])
    assert code == 0, capsys.readouterr()
    manifest = load_bundle(tmp_path / "bundle").manifest
    assert manifest["robot"]["model"] == "panda"

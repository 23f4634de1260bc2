"""benchmarks/gpu.sh, the GPU machine's prepared run, exercised here with --tiny budgets so
that the lent GPU time is never the first time it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def test_tiny_run_measures_every_stage_and_writes_the_summary(tmp_path):
    out = tmp_path / "gpu"
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--tiny",
                             "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages) == ["camera", "throughput", "conveyor", "train"]
    assert summary["machine"]["cores"] >= 1 and summary["wall_s"] > 0
    for size in ("84px", "128px"):
        assert stages["camera"][size]["tiny"]["fps"] > 0
        assert "fps" in stages["camera"][size]["egl"] or stages["camera"][size]["egl"]["skipped"]
    for workers in ("1", "2"):
        row = stages["throughput"][workers]
        assert row["celltwin"] > 0
        assert ("panda-gym" in row and row["ratio"] > 0) or "panda-gym" in stages["throughput"]
    runs = {**stages["conveyor"], **stages["train"]}
    trained = [name for name, run in runs.items() if "steps" in run]
    assert {"PickPlace cpu", "PickPlaceRL cpu"} <= set(trained) and len(trained) >= 3
    for name in trained:
        assert runs[name]["steps"] > 0 and Path(runs[name]["run"], "summary.json").is_file()
    if summary["machine"]["gpu"] is None:
        assert "no CUDA" in stages["train"]["cuda runs"]["skipped"]
    text = (out / "summary.md").read_text()
    assert "## Camera frames/s" in text and "## Env steps/s" in text and "PickPlaceRL cpu" in text

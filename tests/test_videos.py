"""Episode videos (imageio): `celltwin evaluate ... --video N` and `celltwin deploy --controller
twin --video FILE`, with the trained PickPlace bundle of tests/data (see test_layout_policy)."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

BUNDLE = Path(__file__).parent / "data" / "pickplace_bundle"
EVALUATE = ("evaluate", BUNDLE, "--task", "PickPlace", "--cell", "pick_station",
            "--episodes", "1")
DEPLOY = ("deploy", BUNDLE, "--controller", "twin", "--episodes", "1", "--steps", "30")


def _frames(path: Path) -> np.ndarray:
    frames = iio.imread(path, plugin="FFMPEG" if path.suffix == ".mp4" else None)
    assert frames.ndim == 4 and frames.shape[-1] == 3, frames.shape
    return frames


def _moving(frames: np.ndarray) -> bool:
    """The film shows something happen: frames differ, and none is blank."""
    return (all(len(np.unique(frame.reshape(-1, 3), axis=0)) > 20 for frame in frames)
            and not np.array_equal(frames[0], frames[len(frames) // 2]))


def test_evaluate_films_n_episodes_as_a_gif(cli, tmp_path):
    result = cli(*EVALUATE, "--dr", "none", "--video", "2", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "video: 2 episode(s) on the nominal twin, 2 successful" in result.stdout
    assert str(tmp_path / "episodes.gif") in result.stdout.splitlines()[-1]
    frames = _frames(tmp_path / "episodes.gif")
    # Two episodes of about 20 steps, a frame every 2 steps and a held last frame each.
    assert 15 <= len(frames) <= 60 and _moving(frames)


def test_evaluate_films_as_mp4_when_asked(cli, tmp_path):
    result = cli(*EVALUATE, "--dr", "none", "--video", "1", "--video-format", "mp4",
                 "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    frames = _frames(tmp_path / "episodes.mp4")
    assert len(frames) >= 8 and _moving(frames)


def test_deploy_films_the_twin_and_filming_changes_nothing(cli, tmp_path):
    filmed = cli(*DEPLOY, "--video", tmp_path / "deploy.gif", "--json", tmp_path / "filmed.json")
    plain = cli(*DEPLOY, "--fast", "--json", tmp_path / "plain.json")
    assert filmed.returncode == plain.returncode, filmed.stderr + plain.stderr
    assert f"video: {tmp_path / 'deploy.gif'}" in filmed.stdout
    frames = _frames(tmp_path / "deploy.gif")
    assert 10 <= len(frames) <= 30 and _moving(frames)
    # A filmed deployment runs lock-step, as --fast does: the same episode, step for step.
    assert (json.loads((tmp_path / "filmed.json").read_text())["episodes"]
            == json.loads((tmp_path / "plain.json").read_text())["episodes"])


@pytest.mark.parametrize("args, words", [
    (("--video", "{tmp}/deploy.avi"), ["--video", "deploy.avi", ".gif or .mp4"]),
    (("--video", "{tmp}/deploy.gif", "--dry-run"), ["--video", "dry run"]),
])
def test_deploy_refuses_a_video_it_cannot_film_before_anything_moves(cli, tmp_path, args, words):
    args = [str(arg).replace("{tmp}", str(tmp_path)) for arg in args]
    result = cli(*DEPLOY, *args, "--telemetry", tmp_path / "telemetry.jsonl")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "telemetry.jsonl").exists()


def test_deploy_to_opcua_refuses_a_video(cli, tmp_path):
    result = cli("deploy", BUNDLE, "--controller", "opc.tcp://127.0.0.1:4840",
                 "--goal", "0.45", "-0.2", "0.15", "--video", tmp_path / "deploy.gif")
    assert result.returncode == 2 and "--controller twin" in result.stderr, result.stderr

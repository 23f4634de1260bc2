"""Either engine behind one interface: `celltwin serve --engine mujoco` read by the adapter over
OPC UA, `celltwin deploy --engine mujoco` in process, tracked bodies through the one pose
accessor both worlds answer, and a randomized robot base where it really is."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco")   # an extra: without it this module is skipped, not failed

from celltwin.mujoco.controller import MujocoVirtualController  # noqa: E402
from celltwin.serve.virtual_controller import VirtualController  # noqa: E402
from celltwin.world import World  # noqa: E402


def test_serve_engine_mujoco_is_read_by_the_adapter_and_deploy_succeeds(cli, reacher_bundle):
    command = [sys.executable, "-m", "celltwin.cli.main", "serve", "pick_station",
               "--engine", "mujoco", "--insecure", "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        first = server.stdout.readline()   # printed once the server listens
        assert "serving robot 'arm' (panda) at opc.tcp://127.0.0.1:" in first, \
            server.stderr.read()
        assert server.stdout.readline().strip() == "engine: mujoco"
        endpoint = first.split(" at ")[1].strip()
        result = cli("deploy", reacher_bundle, "--controller", endpoint,
                     "--goal", "0.45", "0.1", "0.25", "--steps", "100", "--wait-s", "30")
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success 1/1" in result.stdout, result.stdout
    assert server.returncode == 0 and "stopped" in out and "Traceback" not in err


def test_deploy_runs_the_bundle_in_the_mujoco_twin_in_process(cli, reacher_bundle, tmp_path):
    result = cli("deploy", reacher_bundle, "--controller", "twin", "--engine", "mujoco",
                 "--fast", "--episodes", "3", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success 3/3" in result.stdout


@pytest.mark.parametrize("args, words", [
    (["--controller", "opc.tcp://127.0.0.1:4840", "--goal", "0.45", "0.1", "0.25"],
     ["--engine", "--controller twin"]),
    (["--controller", "twin", "--video", "v.gif"], ["--video", "--engine pybullet"]),
])
def test_deploy_engine_where_it_means_nothing_is_one_error(cli, reacher_bundle, tmp_path,
                                                          args, words):
    args = [str(tmp_path / a) if a.endswith(".gif") else a for a in args]
    result = cli("deploy", reacher_bundle, "--engine", "mujoco", *args)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and all(word in line for word in words), line


def test_tracked_bodies_and_a_randomized_base_agree_between_engines():
    # A base offset is what the `standard` preset's base_x_m / base_y_m draw: the body moves,
    # the controller keeps reporting in the frame it believes (a calibration error).
    with World("pick_station") as world:
        world.move_base("arm", 0.01, -0.02, 0.05)
        bullet = VirtualController(world, tracked_objects=("part", "can"))
        with MujocoVirtualController.of_world(world, tracked_objects=("part", "can")) as mj:
            for name in ("part", "can"):
                np.testing.assert_allclose(mj.state().objects[name],
                                           bullet.state().objects[name], atol=1e-6)
            np.testing.assert_allclose(mj.world.robot().ee_pose()[0],
                                       world.robot().ee_pose()[0], atol=1e-6)
            np.testing.assert_allclose(mj.robot.base_xyz, world.robot().base_xyz)

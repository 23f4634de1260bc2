"""Calibration (issue 20): excitation program, deploy playing it, the fit, its outputs, bad logs.

The recovery tests run the excitation through the deployment adapter and its safety layer
against a twin whose parameters are hidden (drawn 0.3x to 3x their defaults, latency 1 to 3
control periods, joint noise), then fit the nominal twin to the telemetry. An 8 s excitation
identifies the default parameters; the 60 s figure is a benchmark (benchmarks/README.md).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from celltwin.calibrate.excite import (LIMIT_SHARE, REDUCED_TCP_SPEED_MPS, ExcitationOptions,
                                       design, write_program)
from celltwin.calibrate.fit import FitOptions, fit
from celltwin.calibrate.logs import read_log, read_logs
from celltwin.physics import PhysicsParams
from celltwin.policies.deploy.program import ProgramAdapter, load_program
from celltwin.policies.kinematics import KinematicChain
from celltwin.robots.registry import get_robot_model
from celltwin.serve.in_process import InProcessController
from celltwin.serve.virtual_controller import VirtualController

CELL = "reach_table"
SHORT = ExcitationOptions(duration_s=8.0, ramp_s=1.5, hold_s=0.5)
NOISE_RAD = 3e-5   # joint encoders resolve far finer; enough to check the fit averages it
NOMINAL_GAIN = 0.1


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """The short excitation of the Panda in the Reach cell, as a program folder."""
    folder = tmp_path_factory.mktemp("calibrate") / "excitation"
    excitation = design(get_robot_model("panda"), SHORT, base_xyz=(0.0, 0.0, 0.75))
    return write_program(excitation, folder, options=SHORT, cell=CELL)


def _run(program, path, physics: PhysicsParams, seed: int = 1):
    """Play ``program`` through the adapter against a twin with ``physics``; telemetry to path."""
    virtual = VirtualController.from_cell(CELL, physics=physics, seed=seed)
    with InProcessController(virtual) as controller:
        with ProgramAdapter(program, controller, telemetry=path, paced=False) as adapter:
            summary = adapter.play()
    assert summary.stop_reason is None and summary.steps == len(load_program(program).setpoints)
    return path


def _hidden(gain: float, latency: int, **extra) -> PhysicsParams:
    return PhysicsParams.from_mapping({"robots": {"arm": {
        "position_gain": gain, "latency_steps": latency, "joint_noise_std_rad": NOISE_RAD,
        **extra}}})


# --- the excitation -------------------------------------------------------------------------


@pytest.mark.parametrize("robot", ["panda", "ur5e"])
def test_the_excitation_keeps_inside_every_safety_limit_and_starts_and_ends_at_home(robot):
    model = get_robot_model(robot)
    options = ExcitationOptions(duration_s=20.0)
    excitation = design(model, options)
    q, dt, safety = excitation.setpoints, options.period_s, excitation.safety
    assert np.array_equal(q[0], model.home) and np.array_equal(q[-1], model.home)
    assert np.all(q >= np.asarray(safety["joint_position_lower_rad"]))
    assert np.all(q <= np.asarray(safety["joint_position_upper_rad"]))
    qd = np.diff(q, axis=0) / dt
    assert np.all(np.abs(qd) <= LIMIT_SHARE * np.asarray(safety["joint_velocity_rad_s"]) + 1e-9)
    qdd = np.diff(qd, axis=0) / dt
    assert np.all(np.abs(qdd) <= np.asarray(safety["joint_acceleration_rad_s2"]))
    assert np.abs(qd[:5]).max() < 1e-3 and np.abs(qd[-5:]).max() < 1e-3   # ramped in and out
    chain = KinematicChain.from_manifest(excitation.robot["kinematics"],
                                         excitation.robot["joint_names"])
    tcp = np.array([chain.fk(row)[0] for row in q])
    assert (np.linalg.norm(np.diff(tcp, axis=0), axis=1) / dt).max() <= REDUCED_TCP_SPEED_MPS
    assert np.abs(q - q[0]).max(axis=0).min() > 0.02   # every joint moves


def test_deploy_plays_a_program_through_the_safety_layer_with_telemetry(cli, tmp_path):
    out, log = tmp_path / "excitation", tmp_path / "run.jsonl"
    result = cli("calibrate", "excite", "--cell", CELL, "-o", out, "--duration", "6",
                 "--ramp", "1")
    assert result.returncode == 0, result.stderr
    result = cli("deploy", out, "--controller", "twin", "--fast", "--reduced-speed",
                 "--latency-steps", "1", "--telemetry", log)
    assert result.returncode == 0, result.stderr
    program = load_program(out)
    steps = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "step"]
    assert len(steps) == len(program.setpoints) and all(r["sent"] for r in steps)
    # Designed inside the limits, the program passes the safety layer unchanged.
    assert not any(r["safety_flags"] for r in steps)
    assert np.allclose([r["q_command"] for r in steps], program.setpoints)
    assert all(len(r["q_measured"]) == 7 for r in steps)


def test_deploy_plays_a_program_against_an_opcua_controller(cli, tmp_path):
    from celltwin.serve.opcua_security import ServerSecurity
    from celltwin.serve.opcua_server import ServerThread

    out, log = tmp_path / "excitation", tmp_path / "run.jsonl"
    assert cli("calibrate", "excite", "--robot", "panda", "-o", out, "--duration", "4",
               "--ramp", "0.5").returncode == 0
    with VirtualController.from_cell(CELL) as virtual, \
            ServerThread(virtual, port=0, security=ServerSecurity(insecure=True)) as served:
        result = cli("deploy", out, "--controller", served.endpoint, "--reduced-speed",
                     "--telemetry", log)
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [r for r in map(json.loads, log.read_text().splitlines()) if r["type"] == "step"]
    assert len(steps) == len(load_program(out).setpoints) and all(r["sent"] for r in steps)
    assert not any(r["safety_flags"] for r in steps)
    times = [r["stamp_s"] for r in steps]
    assert times[-1] - times[0] > 3.0   # the served twin's clock ran through the program


def test_a_program_modified_after_it_was_written_is_refused(cli, program, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "setpoints.csv"):
        (copy / name).write_bytes((program / name).read_bytes())
    text = (copy / "setpoints.csv").read_text().splitlines()
    text[50] = text[50].replace(",", ",1", 1)
    (copy / "setpoints.csv").write_text("\n".join(text) + "\n")
    result = cli("deploy", copy, "--controller", "twin", "--fast")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "modified" in result.stderr


# --- recovery -------------------------------------------------------------------------------


def _draws():
    rng = np.random.default_rng(20)
    drawn = [(float(np.exp(rng.uniform(np.log(0.3), np.log(3.0)))), int(rng.integers(1, 4)))]
    return [pytest.param(0.3, 3, id="gain-0.3x-latency-3"),
            pytest.param(3.0, 1, id="gain-3x-latency-1"),
            *[pytest.param(f, lag, id=f"gain-{f:.2f}x-latency-{lag}") for f, lag in drawn]]


@pytest.mark.slow
@pytest.mark.parametrize("factor, latency", _draws())
def test_the_fit_recovers_hidden_parameters_from_telemetry(program, tmp_path, factor, latency):
    log = _run(program, tmp_path / "run.jsonl", _hidden(NOMINAL_GAIN * factor, latency))
    result = fit(CELL, [read_log(log)], FitOptions(params=("position_gain", "latency_steps"),
                                                   max_latency=4, restarts=2))
    assert result.latency_steps == latency
    (gain,) = result.estimate
    assert abs(gain / (NOMINAL_GAIN * factor) - 1) < 0.15, gain
    assert result.rmse_after.mean() * 5 <= result.rmse_before.mean()
    assert result.physics.robots["arm"].latency_steps == latency


# --- the command, its outputs ----------------------------------------------------------------


@pytest.mark.slow
def test_fit_writes_a_physics_file_every_physics_option_takes_and_a_report(cli, program,
                                                                         tmp_path):
    log = _run(program, tmp_path / "run.jsonl", _hidden(0.2, 2))
    out = tmp_path / "fit"
    result = cli("calibrate", "fit", "--telemetry", log, "--cell", CELL, "-o", out,
                 "--max-latency", "3", "--restarts", "2")
    assert result.returncode == 0, result.stderr
    assert "latency_steps: 2" in result.stdout
    for name in ("physics.yaml", "fit.json", "report.md", "report.html", "trajectories.png",
                 "rmse.png", "estimates.png"):
        assert (out / name).stat().st_size > 0, name
    physics = PhysicsParams.load(out / "physics.yaml")
    assert physics.robots["arm"].latency_steps == 2
    assert abs(physics.robots["arm"].position_gain / 0.2 - 1) < 0.15
    summary = json.loads((out / "fit.json").read_text())
    assert summary["rmse_after_mean_rad"] * 5 <= summary["rmse_before_mean_rad"]
    assert "position_gain" in (out / "report.md").read_text()
    checked = cli("cell", "check", CELL, "--physics", out / "physics.yaml")
    assert checked.returncode == 0, checked.stderr


def _write_csv(path, log, names=None, drop=None, edit=None):
    names = names or log.joint_names
    header = ["t_s"] + [f"setpoint_{n}" for n in names] + [f"position_{n}" for n in names]
    rows = [[t, *s, *p] for t, s, p in zip(log.times_s, log.setpoints, log.positions)]
    if edit:
        edit(rows)
    if drop:
        keep = [i for i, h in enumerate(header) if h != drop]
        header = [header[i] for i in keep]
        rows = [[row[i] for i in keep] for row in rows]
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture(scope="module")
def logged(program, tmp_path_factory):
    path = tmp_path_factory.mktemp("logged") / "run.jsonl"
    return read_log(_run(program, path, _hidden(0.1, 1)))


def test_csv_and_npz_logs_read_as_the_telemetry_does(logged, tmp_path):
    csv_log = read_log(_write_csv(tmp_path / "run.csv", logged))
    np.savez(tmp_path / "run.npz", t_s=logged.times_s, setpoints=logged.setpoints,
             positions=logged.positions, joint_names=np.array(logged.joint_names),
             robot_model="panda")
    npz_log = read_log(tmp_path / "run.npz")
    for other in (csv_log, npz_log):
        assert other.joint_names == logged.joint_names
        for field in ("times_s", "setpoints", "positions"):
            assert np.allclose(getattr(other, field), getattr(logged, field))


def test_runs_appended_to_one_telemetry_file_are_read_as_separate_logs(program, tmp_path):
    path = tmp_path / "run.jsonl"
    _run(program, path, _hidden(0.1, 1))
    _run(program, path, _hidden(0.1, 1), seed=2)   # the adapter appends; stamps restart
    logs = read_logs(path)
    assert len(logs) == 2
    assert all(len(log.times_s) == len(load_program(program).setpoints) for log in logs)
    assert not np.array_equal(logs[0].positions, logs[1].positions)   # other noise draws


def test_a_controller_sample_read_twice_is_one_sample_with_the_later_set_point(program,
                                                                             tmp_path):
    path = _run(program, tmp_path / "run.jsonl", _hidden(0.1, 1))
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if '"step":40,' in line)
    again = json.loads(lines[at])
    again["q_command"] = [q + 1e-3 for q in again["q_command"]]   # sent later, same sample
    lines.insert(at + 1, json.dumps(again))
    path.write_text("\n".join(lines) + "\n")
    log, plain = read_log(path), read_log(_run(program, tmp_path / "plain.jsonl",
                                                _hidden(0.1, 1)))
    assert len(log.times_s) == len(plain.times_s)
    assert np.allclose(log.setpoints[39], np.asarray(again["q_command"]))


def _bad(kind: str, logged, tmp_path):
    if kind == "missing column":
        return _write_csv(tmp_path / "a.csv", logged, drop="position_panda_joint3")
    if kind == "nan":
        def edit(rows):
            rows[40][5] = float("nan")
        return _write_csv(tmp_path / "a.csv", logged, edit=edit)
    if kind == "time":
        def edit(rows):
            rows[60][0] = rows[59][0]
        return _write_csv(tmp_path / "a.csv", logged, edit=edit)
    if kind == "joints":
        names = [f"joint_{i}" for i in range(7)]
        return _write_csv(tmp_path / "a.csv", logged, names=names)
    if kind == "robot":
        np.savez(tmp_path / "a.npz", t_s=logged.times_s, setpoints=logged.setpoints[:, :6],
                 positions=logged.positions[:, :6], robot_model="ur5e",
                 joint_names=np.array(get_robot_model("ur5e").arm_joint_names))
        return tmp_path / "a.npz"
    if kind == "empty":
        (tmp_path / "a.jsonl").write_text("")
        return tmp_path / "a.jsonl"
    if kind == "short":
        def edit(rows):
            del rows[60:]
        return _write_csv(tmp_path / "a.csv", logged, edit=edit)
    if kind == "rate":   # a controller logging at 100 Hz, the twin stepping at 25 Hz
        def edit(rows):
            for index, row in enumerate(rows):
                row[0] = 0.01 * index
        return _write_csv(tmp_path / "a.csv", logged, edit=edit)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, words", [
    ("missing column", ["missing columns", "position_panda_joint3"]),
    ("nan", ["not finite", ":42"]),
    ("time", ["time does not increase", ":62"]),
    ("joints", ["joints do not match", "joint_0"]),
    ("robot", ["another robot", "ur5e"]),
    ("empty", ["empty"]),
    ("short", ["too short to identify position_gain, latency_steps", "60 samples"]),
    ("rate", ["sampled every 0.01 s", "control period is 0.04 s"]),
])
def test_a_bad_log_is_one_error_line(cli, logged, tmp_path, kind, words):
    path = _bad(kind, logged, tmp_path)
    result = cli("calibrate", "fit", "--telemetry", path, "--cell", CELL, "-o", tmp_path / "f")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / "f" / "physics.yaml").exists()


def test_an_unknown_parameter_name_gets_a_suggestion(cli, logged, tmp_path):
    path = _write_csv(tmp_path / "a.csv", logged)
    result = cli("calibrate", "fit", "--telemetry", path, "--cell", CELL, "-o", tmp_path / "f",
                 "--params", "position_gian")
    assert result.returncode == 2 and "did you mean 'position_gain'" in result.stderr


# --- training centred on the fit -------------------------------------------------------------


@pytest.fixture
def centre(tmp_path):
    path = tmp_path / "physics.yaml"
    PhysicsParams.from_mapping({"robots": {"arm": {"position_gain": 0.3, "latency_steps": 2,
                                                   "velocity_gain": 0.7}},
                                "joints": {"arm/panda_joint1": {"damping": 1.0}}}).save(path)
    return path


def test_randomization_centred_on_a_fit_draws_its_ranges_around_the_fit(centre):
    import gymnasium as gym

    from celltwin.envs.tasks import TASKS   # registers the env ids too

    env = gym.make(TASKS["Reach"].env_id, randomization={"preset": "standard",
                                                         "center": str(centre)})
    try:
        drawn = []
        for seed in range(12):
            env.reset(seed=seed)
            drawn.append(env.unwrapped.world.physics_params())
    finally:
        env.close()
    robots = [params.robots["arm"] for params in drawn]
    # standard: latency choice [0, 1] (set) -> centre + 0 or 1; gain x[0.8, 1.25] of the centre
    assert {r.latency_steps for r in robots} == {2, 3}
    gains = [r.position_gain for r in robots]
    assert 0.3 * 0.8 - 1e-9 <= min(gains) and max(gains) <= 0.3 * 1.25 + 1e-9
    assert max(gains) > 0.3 * 1.05 and min(gains) < 0.3 * 0.95
    assert {r.velocity_gain for r in robots} == {0.7}   # no term: the centre's value
    damping = drawn[0].joints["arm/panda_joint1"].damping
    assert 1.0 <= damping <= 1.5   # standard adds [0, 0.5] to the centre


def test_train_takes_a_centre_from_its_config_or_dr_center(cli, centre, tmp_path):
    from celltwin.training.config import resolve_config

    config = resolve_config(task="Reach", overrides={"randomization": "light",
                                                     "randomization.center": str(centre)})
    assert config.randomization == {"preset": "light", "center": str(centre.resolve())}
    # Rollout workers key their envs by the randomization; the run's config.yaml holds it.
    assert hash(config.randomization) == hash(resolve_config(
        task="Reach", overrides={"randomization": "light",
                                 "randomization.center": str(centre)}).randomization)
    assert "center: " + str(centre.resolve()) in config.to_yaml()
    bad = tmp_path / "bad.yaml"
    bad.write_text("robots:\n  arm:\n    position_gain: -1\n")
    result = cli("train", "--task", "Reach", "--dr-center", bad, "--steps", "10")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1 and "bad.yaml:3" in result.stderr
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"task: Reach\nrandomization: {{preset: standard, centre: {centre}}}\n")
    result = cli("train", config_file, "--steps", "10")
    assert result.returncode == 2
    assert "config.yaml:2: randomization.centre: unknown key 'centre'; did you mean 'center'?" \
        in result.stderr


def test_every_parameter_name_maps_onto_the_twins_physics_and_back():
    from celltwin.calibrate.parameters import PARAMETERS, parse_params, scalars, to_physics
    from celltwin.calibrate.replay import Replay

    replay = Replay(CELL)
    try:
        found = scalars(parse_params(tuple(PARAMETERS)), replay.nominal, replay.robot_name,
                        replay.joint_names, replay.payload_link)
        labels = [s.label for s in found]
        assert labels.count("position_gain") == 1 and "latency_steps" not in labels
        assert sum(label.startswith("joint_damping[") for label in labels) == 7
        # Each number's fitting coordinate maps back to its value, inside the bounds.
        for scalar in found:
            value = 1.2 * scalar.nominal if scalar.nominal else 0.5
            x = scalar.coordinate(value)
            assert scalar.bounds()[0] <= x <= scalar.bounds()[1]
            assert abs(scalar.value(x) - value) < 1e-12
        physics = to_physics(found, [s.nominal * 1.1 or 0.2 for s in found],
                             replay.robot_name, latency=1)
        replay.world.apply_physics(physics)   # every name is one the twin has
        applied = replay.world.physics_params()
        assert applied.robots["arm"].latency_steps == 1
        assert abs(applied.joints["arm/panda_joint3"].damping - 0.2) < 1e-12
    finally:
        replay.close()

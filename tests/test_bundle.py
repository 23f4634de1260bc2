"""Bundle export (ONNX parity with SB3) and bundle verification (tampered, truncated, missing)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch

import celltwin.envs  # noqa: F401  (registers the env ids)
from celltwin.policies.bundle import (FILE_MODE, FOLDER_MODE, check_compatible, check_goal,
                                      load_bundle, write_bundle)
from celltwin.policies.manifest import MAX_MANIFEST_BYTES, manifest_digest, validate_manifest
from celltwin.policies.errors import BundleError, ExportError
from celltwin.policies.export import ExportOptions, export_trained
from celltwin.policies.parity import concatenate
from celltwin.training.config import TrainConfig
from celltwin.training.run_dir import Trained
from celltwin.cli.main import main

RNG = np.random.default_rng(0)
DICT_STATS = {key: (RNG.normal(0.0, 0.3, size), RNG.uniform(0.05, 2.0, size))
              for key, size in (("achieved_goal", 3), ("desired_goal", 3), ("observation", 6))}
FLAT_STATS = (RNG.normal(0.0, 0.3, 12), RNG.uniform(0.05, 2.0, 12))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # Two threads on two busy cores make each gradient step 50x slower (spin-waits).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained(algo: str) -> Trained:
    """A briefly trained model of ``algo`` on Reach, with VecNormalize-like statistics."""
    from stable_baselines3 import PPO, SAC
    from sb3_contrib import TQC

    env = gym.make("celltwin/Reach-v0")
    if algo == "ppo":
        env = gym.wrappers.FlattenObservation(env)
        model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0,
                    policy_kwargs=dict(net_arch=[32, 32]))
        model.learn(64)
        config = TrainConfig(task="Reach", algo="ppo", her=False, normalize=True)
        return Trained(model=model, config=config, obs_rms=FLAT_STATS, flatten=True,
                       summary={"success_nominal": 0.0})
    cls = SAC if algo == "sac" else TQC
    model = cls("MultiInputPolicy", env, learning_starts=64, buffer_size=1000, seed=0,
                policy_kwargs=dict(net_arch=[32, 32]))
    model.learn(96)
    config = TrainConfig(task="Reach", algo=algo, normalize=True)
    return Trained(model=model, config=config, obs_rms=DICT_STATS,
                   summary={"success_nominal": 0.0, "success_randomized": 0.0})


@pytest.fixture(scope="module")
def sac_bundle(tmp_path_factory) -> tuple[Path, Trained]:
    trained = _trained("sac")
    path = tmp_path_factory.mktemp("bundles") / "sac"
    export_trained(trained, path)
    return path, trained


@pytest.fixture
def bundle_copy(sac_bundle, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(sac_bundle[0], copy)
    return copy


# --- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["tqc", "ppo"])
def test_export_matches_sb3_within_1e_5(algo, tmp_path):
    trained = _trained(algo)
    result = export_trained(trained, tmp_path / algo, options=ExportOptions(samples=1000))
    assert result.parity_max_abs_diff <= 1e-5
    assert result.torchscript_max_abs_diff <= 1e-5
    bundle = load_bundle(tmp_path / algo)
    parity = bundle.manifest["policy"]["parity"]
    assert parity["samples"] == 1000 and parity["max_abs_diff"] == result.parity_max_abs_diff
    _check_against_sb3(bundle, trained)


def test_sac_export_manifest_says_what_the_numbers_mean(sac_bundle):
    path, trained = sac_bundle
    bundle = load_bundle(path)
    manifest = bundle.manifest
    assert manifest["policy"]["parity"]["max_abs_diff"] <= 1e-5
    assert manifest["policy"]["normalization"]["baked"] is True
    layout = manifest["policy"]["input"]["layout"]
    assert [(p["key"], p["size"]) for p in layout] == [("achieved_goal", 3), ("desired_goal", 3),
                                                        ("observation", 6)]
    assert [t["name"] for t in manifest["observation"]["terms"]] == ["ee_position", "ee_velocity"]
    assert manifest["observation"]["achieved_goal_term"] == "ee_position"
    assert manifest["observation"]["success_threshold_m"] == 0.05
    assert manifest["control"] == {**manifest["control"], "mode": "ee_delta", "period_s": 0.04,
                                   "scale": 0.05, "uses_gripper": False}
    assert [e["unit"] for e in manifest["action"]["elements"]] == ["m", "m", "m", "m"]
    robot = manifest["robot"]
    assert robot["model"] == "panda" and len(robot["joint_names"]) == 7
    assert robot["joint_limits"]["velocity_rad_s"][0] == pytest.approx(2.175)
    assert manifest["safety"]["reduced_mode_tcp_speed_mps"] == 0.25
    # Deployment bounds set-points by the limits the policy trained under (core.joint_motion).
    env = gym.make("celltwin/Reach-v0")
    trained_limits = env.unwrapped.robot.motion.limits
    env.close()
    assert manifest["safety"]["joint_acceleration_rad_s2"] == pytest.approx(
        trained_limits.acceleration.tolist())
    assert manifest["safety"]["max_joint_step_rad"] == pytest.approx(
        trained_limits.max_step.tolist())
    assert manifest["training"]["summary"]["success_randomized"] == 0.0
    assert set(manifest["files"]) == {"policy.onnx", "policy.pt"}
    # The box Reach drew its goals from (reach_table's reach_space, robot base frame).
    assert manifest["observation"]["goal_low_m"] == pytest.approx([0.45, -0.15, 0.02])
    assert manifest["observation"]["goal_high_m"] == pytest.approx([0.75, 0.15, 0.32])
    _check_against_sb3(bundle, trained)


def _check_against_sb3(bundle, trained) -> None:
    """The bundle's ONNX on fresh env observations = SB3 predict, normalized and scaled by hand."""
    env = gym.make("celltwin/Reach-v0")
    session = ort.InferenceSession(bundle.onnx_bytes, providers=["CPUExecutionProvider"])
    obs, _ = env.reset(seed=123)
    for _ in range(20):
        onnx_action = session.run(None, {"observation": concatenate(obs)[None]})[0][0]
        if trained.flatten:
            flat = gym.spaces.flatten(env.observation_space, obs)
            mean, var = trained.obs_rms
            sb3_input = np.clip((flat - mean) / np.sqrt(var + trained.norm_epsilon), -10, 10)
        else:
            sb3_input = {k: np.clip((v - trained.obs_rms[k][0])
                                    / np.sqrt(trained.obs_rms[k][1] + trained.norm_epsilon), -10, 10)
                         for k, v in obs.items()}
        action, _ = trained.model.predict(sb3_input, deterministic=True)
        action = np.clip(action, -1, 1)
        assert np.abs(onnx_action[:3] - 0.05 * action).max() < 1e-6
        assert onnx_action[3] == pytest.approx(0.0)  # Reach holds the gripper closed
        obs, *_ = env.step(action)
    env.close()


def test_parity_check_catches_a_policy_exported_without_its_normalization(sac_bundle, tmp_path):
    _, trained = sac_bundle
    unnormalized = Trained(model=trained.model, config=trained.config, obs_rms=None)
    exported = export_trained(unnormalized, tmp_path / "plain", options=ExportOptions(samples=50))
    from celltwin.policies.actor import ActionSpec
    from celltwin.policies.parity import check_parity

    env = gym.make("celltwin/Reach-v0")
    obs, _ = env.reset(seed=1)
    rows = np.stack([concatenate(obs)] * 4)
    spec = ActionSpec(low=(-1.0,) * 3, high=(1.0,) * 3, arm_size=3, scale=0.05,
                      uses_gripper=False, width_closed_m=0.0, width_open_m=0.08)
    onnx_bytes = load_bundle(exported.path).onnx_bytes
    layout = [("achieved_goal", 3), ("desired_goal", 3), ("observation", 6)]
    with pytest.raises(ExportError, match="disagrees"):
        check_parity(onnx_bytes, trained, rows, layout, spec, 1e-5)
    env.close()


def test_export_of_a_run_directory_through_the_cli(sac_bundle, tmp_path, capsys):
    _, trained = sac_bundle
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(trained.config.to_yaml())
    trained.model.save(run / "final" / "model.zip")
    normalizer = VecNormalize(DummyVecEnv([lambda: gym.make("celltwin/Reach-v0")]))
    for key, (mean, var) in DICT_STATS.items():
        normalizer.obs_rms[key].mean, normalizer.obs_rms[key].var = mean, var
    normalizer.save(str(run / "final" / "vecnormalize.pkl"))
    normalizer.close()
    (run / "summary.json").write_text(json.dumps({"success_nominal": 0.25}))

    code = main(["export", str(run), "-o", str(tmp_path / "out"), "--samples", "200"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "parity: max |ONNX - SB3|" in out
    manifest = load_bundle(tmp_path / "out").manifest
    assert manifest["training"]["summary"] == {"success_nominal": 0.25}
    assert manifest["policy"]["normalization"]["baked"] is True


def test_export_of_a_missing_run_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run directory not found" in err[0]


# --- verification ----------------------------------------------------------------------------


def _error(path: Path) -> str:
    with pytest.raises(BundleError) as caught:
        load_bundle(path)
    return str(caught.value)


def test_a_flipped_byte_is_refused_naming_the_file(bundle_copy):
    onnx = bundle_copy / "policy.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))
    message = _error(bundle_copy)
    assert "policy.onnx" in message and "modified after export (SHA-256 mismatch" in message


def test_a_truncated_file_is_refused(bundle_copy):
    script = bundle_copy / "policy.pt"
    script.write_bytes(script.read_bytes()[:-100])
    message = _error(bundle_copy)
    assert "policy.pt" in message and "truncated" in message


def test_a_missing_file_is_refused(bundle_copy):
    (bundle_copy / "policy.onnx").unlink()
    message = _error(bundle_copy)
    assert "policy.onnx" in message and "missing" in message


def test_an_edited_manifest_is_refused(bundle_copy):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["safety"]["joint_velocity_rad_s"][0] = 20.0  # "just a little faster"
    path.write_text(json.dumps(manifest, indent=2))
    assert "manifest was modified after export" in _error(bundle_copy)


def test_an_unknown_schema_version_is_refused(bundle_copy):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    message = _error(bundle_copy)
    assert "schema_version" in message and "unknown manifest schema version" in message


def test_a_truncated_manifest_is_refused_with_its_line(bundle_copy):
    path = bundle_copy / "manifest.json"
    path.write_text(path.read_text()[:500])
    message = _error(bundle_copy)
    assert "manifest.json:" in message and "not valid JSON" in message


def test_a_manifest_missing_fields_lists_each_with_its_path(bundle_copy):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["safety"]["tcp_workspace_low_m"]
    manifest["control"]["period_s"] = -1
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle_copy)
    paths = {problem.path for problem in caught.value.problems}
    assert {"safety.tcp_workspace_low_m", "control.period_s"} <= paths


def test_compatibility_refuses_another_robot_or_joint_order(sac_bundle):
    manifest = load_bundle(sac_bundle[0]).manifest
    joints = tuple(manifest["robot"]["joint_names"])
    check_compatible(manifest, SimpleNamespace(robot_model="panda", joint_names=joints))
    with pytest.raises(BundleError, match="another robot model"):
        check_compatible(manifest, SimpleNamespace(robot_model="kuka_iiwa", joint_names=joints))
    with pytest.raises(BundleError, match="another order"):
        check_compatible(manifest, SimpleNamespace(robot_model="panda", joint_names=joints[::-1]))
    with pytest.raises(BundleError, match=r"missing \['panda_joint7'\]"):
        check_compatible(manifest, SimpleNamespace(robot_model="panda", joint_names=joints[:6]))


def test_deploy_of_a_tampered_bundle_is_one_line_and_exit_2(bundle_copy, capsys):
    (bundle_copy / "policy.onnx").write_bytes(b"not a model")
    code = main(["deploy", str(bundle_copy), "--controller", "twin", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "policy.onnx" in err[0]
    assert "Traceback" not in "\n".join(err)


# --- hostile bundles (issue 17) --------------------------------------------------------------

FREE = '"summary": {'   # training.summary: a free-form field, where anything JSON may stand


@pytest.mark.parametrize("inserted, words", [
    ('"x": NaN, ', ["NaN is not a JSON number"]),
    ('"x": -Infinity, ', ["-Infinity is not a JSON number"]),
    ('"x": 1e999, ', ["1e999 is beyond a 64-bit float"]),
    ('"x": ' + "9" * 5000 + ", ", ["an integer of 5000 digits"]),
    ('"x": 1, "x": 2, ', ["key 'x' appears twice"]),
    ('"x": ' + "[" * 100_000 + "]" * 100_000 + ", ", ["nests 100003 levels deep", "at most 64"]),
    ('"x": "' + "a" * MAX_MANIFEST_BYTES + '", ', ["larger than 1048576 bytes"]),
], ids=["nan", "infinity", "1e999", "huge-integer", "repeated-key", "deep", "huge"])
def test_a_hostile_manifest_is_one_located_error(bundle_copy, capsys, inserted, words):
    path = bundle_copy / "manifest.json"
    text = path.read_text()
    assert FREE in text
    path.write_text(text.replace(FREE, FREE + inserted, 1))
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle_copy)
    assert len(caught.value.problems) == 1
    message = str(caught.value)
    assert "manifest.json" in message and all(word in message for word in words), message
    code = main(["deploy", str(bundle_copy), "--controller", "twin", "--dry-run"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and words[0] in err[0]


def test_a_manifest_that_is_not_utf8_is_refused(bundle_copy):
    path = bundle_copy / "manifest.json"
    path.write_bytes(b"\xff\xfe" + path.read_bytes())
    assert "not UTF-8" in _error(bundle_copy)


def test_files_the_manifest_does_not_list_are_refused_by_name(bundle_copy, capsys):
    (bundle_copy / "helper.py").write_text("import os\n")
    (bundle_copy / "extra").mkdir()
    with pytest.raises(BundleError) as caught:
        load_bundle(bundle_copy)
    assert sorted(Path(problem.file).name for problem in caught.value.problems) == \
        ["extra", "helper.py"]
    assert all("not listed in the manifest" in problem.message
               for problem in caught.value.problems)
    code = main(["deploy", str(bundle_copy), "--controller", "twin", "--dry-run"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and len(err) == 2 and all(line.startswith("error: ") for line in err)


def _contents(folder: Path) -> tuple[dict, dict]:
    manifest = load_bundle(folder).manifest
    body = {key: value for key, value in manifest.items()
            if key not in ("files", "manifest_sha256")}
    return body, {name: (folder / name).read_bytes() for name in manifest["files"]}


def test_bundles_are_readable_by_other_accounts_whatever_the_umask(sac_bundle, tmp_path):
    body, files = _contents(sac_bundle[0])
    old = os.umask(0o077)
    try:
        write_bundle(tmp_path / "bundle", body, files)
    finally:
        os.umask(old)
    folder = tmp_path / "bundle"
    assert stat.S_IMODE(folder.stat().st_mode) == FOLDER_MODE == 0o755
    for entry in folder.iterdir():
        assert stat.S_IMODE(entry.stat().st_mode) == FILE_MODE == 0o644, entry.name
    load_bundle(folder)


def test_a_new_export_replaces_a_bundle_and_refuses_anything_else(sac_bundle, tmp_path):
    body, files = _contents(sac_bundle[0])
    folder = tmp_path / "bundle"
    write_bundle(folder, body, files)
    write_bundle(folder, body, {"policy.onnx": files["policy.onnx"]})   # no TorchScript now
    assert sorted(entry.name for entry in folder.iterdir()) == ["manifest.json", "policy.onnx"]
    load_bundle(folder)
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not part of a bundle") as caught:
        write_bundle(folder, body, files)
    assert caught.value.problems[0].file.endswith("notes.txt")
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_bundle_without_a_goal_box_still_loads_and_checks_no_goal(bundle_copy):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    for key in ("goal_low_m", "goal_high_m"):
        del manifest["observation"][key]
    manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))
    assert validate_manifest(manifest) == []
    assert check_goal(load_bundle(bundle_copy).manifest, (5.0, 5.0, 5.0)) is None


def test_goals_are_checked_against_the_box_with_the_success_threshold(sac_bundle):
    manifest = load_bundle(sac_bundle[0]).manifest
    assert check_goal(manifest, (0.6, 0.0, 0.1)) is None
    assert check_goal(manifest, (0.79, 0.0, 0.1)) is None          # 4 cm out: within 5 cm
    problem = check_goal(manifest, (0.6, 0.0, 1.0))
    assert problem is not None and "0.680 m outside" in problem.message
    assert "three finite numbers" in check_goal(manifest, (float("nan"), 0.0, 0.0)).message

"""The controls engineer's stages: export the policy to a bundle, serve the twin over OPC UA on
127.0.0.1 and deploy the bundle to it through the deployment adapter.

The served twin is the training cell, as ``celltwin serve`` serves it (the OPC 40010 model and
the command interface; NoSecurity, since it listens on this machine only and stops with the
stage), tracking the policy's object as a vision system would. The adapter connects over OPC
UA exactly as ``celltwin deploy --controller opc.tcp://...`` does. Between episodes the twin is
reset to the episode start an env draws for that seed, as an operator would reset the cell,
and the adapter is given that episode's goal.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import gymnasium as gym

from celltwin.core.atomic import atomic_write_text
from celltwin.envs.tasks import task_class
from celltwin.pipeline.frame import Context, Section, Table
from celltwin.policies.bundle import load_bundle
from celltwin.policies.deploy.adapter import Adapter
from celltwin.policies.deploy.opcua_client import OpcUaController
from celltwin.policies.export import ExportOptions, export_run
from celltwin.policies.manifest import episode_steps
from celltwin.serve.opcua_security import ServerSecurity
from celltwin.serve.opcua_server import ServerThread
from celltwin.serve.virtual_controller import VirtualController

BUNDLE = "bundle"


# -------------------------------------------------------------------------------- export
def run_export(context: Context) -> dict:
    context.log(f"recording {context.budget.export_samples} observations for the parity check")
    result = export_run(context.out / "train", context.out / BUNDLE,
                        options=ExportOptions(samples=context.budget.export_samples))
    manifest = result.manifest
    record = {"summary": f"policy.onnx, parity {result.parity_max_abs_diff:.1e} over "
                         f"{manifest['policy']['parity']['samples']} observations",
              "parity_max_abs_diff": result.parity_max_abs_diff,
              "files": [f"{BUNDLE}/manifest.json", f"{BUNDLE}/policy.onnx"]}
    return record


def export_section(out: Path, record: dict) -> Section:
    manifest = json.loads((out / BUNDLE / "manifest.json").read_text())
    parity = manifest["policy"]["parity"]
    rows = [["robot", f"{manifest['robot']['model']} ({len(manifest['robot']['joint_names'])} "
                      "joints)"],
            ["control", f"{manifest['control']['mode']} at "
                        f"{1 / manifest['control']['period_s']:g} Hz"],
            ["task", manifest["training"]["task"]],
            ["parity |ONNX - SB3|", f"{parity['max_abs_diff']:.2e} over {parity['samples']} "
                                    "observations"],
            ["files", ", ".join(f"`{name}`" for name in sorted(manifest["files"]))]]
    return Section("Export: the bundle", [f"`{BUNDLE}/`: the ONNX policy with normalization "
                                          "and action scaling baked in, and its manifest. "
                                          f"From `{BUNDLE}/manifest.json`."],
                   [Table(["", ""], rows)])


# -------------------------------------------------------------------------------- deploy
def run_deploy(context: Context) -> dict:
    budget = context.budget
    folder = context.folder("deploy")
    bundle = load_bundle(context.out / BUNDLE)
    manifest = bundle.manifest
    training = manifest["training"]
    steps = budget.deploy_episode_lengths * episode_steps(manifest)
    object_name = manifest["observation"]["object_name"]
    # asyncua warns about every client that goes; errors are what matter here.
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    env = gym.make(task_class(training["task"]).env_id, **training["env_kwargs"])
    virtual = VirtualController(env.unwrapped.world, seed=context.seed,
                                tracked_objects=[object_name] if object_name else ())
    server = ServerThread(virtual, host="127.0.0.1", port=0,
                          security=ServerSecurity(insecure=True),
                          serial_number=f"{env.unwrapped.world.spec.name}/{virtual.robot_name}")
    episodes = []
    try:
        server.start()
        context.log(f"serving the twin at {server.endpoint}; deploying {budget.deploy_episodes} "
                    f"episode(s) of up to {steps} control steps")
        first, _ = server.rebase(lambda: env.reset(seed=context.seed))
        with OpcUaController(server.endpoint) as controller, \
                Adapter(bundle, controller, first["desired_goal"],
                        telemetry=folder / "telemetry.jsonl", object_name=object_name) as adapter:
            for index in range(budget.deploy_episodes):
                if index:
                    observation, _ = server.rebase(
                        lambda: env.reset(seed=context.seed + index))
                    adapter.set_goal(observation["desired_goal"])
                else:
                    observation = first
                adapter.rearm()
                summary = adapter.run(steps)
                adapter.stop("episode finished")
                episodes.append({"episode": index + 1, "seed": context.seed + index,
                                 "goal_m": [round(float(v), 4)
                                            for v in observation["desired_goal"]],
                                 "success": summary.success, "steps": summary.steps,
                                 "final_distance_m": summary.final_distance_m,
                                 "stop_reason": summary.stop_reason,
                                 "overruns": summary.overruns,
                                 "safety_counts": summary.safety_counts})
                context.log(f"episode {index + 1}: "
                            + ("success" if summary.success else "no success")
                            + f" after {summary.steps} steps")
                if summary.stop_reason:
                    break
        endpoint = server.endpoint
    finally:
        server.stop()
        virtual.close()
        env.close()
    result = {"endpoint": endpoint, "transport": "OPC UA (NoSecurity, 127.0.0.1)",
              "bundle": BUNDLE, "steps_per_episode": steps, "episodes": episodes}
    atomic_write_text(folder / "deploy.json", json.dumps(result, indent=2), mode=0o644)
    wins = sum(episode["success"] for episode in episodes)
    return {"summary": f"{wins}/{len(episodes)} episodes successful over OPC UA",
            "files": ["deploy/deploy.json", "deploy/telemetry.jsonl"]}


def deploy_section(out: Path, record: dict) -> Section:
    result = json.loads((out / "deploy" / "deploy.json").read_text())
    rows = [[str(e["episode"]), "yes" if e["success"] else "no", str(e["steps"]),
             "n/a" if e["final_distance_m"] is None else f"{e['final_distance_m']:.3f}",
             e["stop_reason"] or "", str(e["overruns"]),
             ", ".join(f"{k} x{v}" for k, v in sorted(e["safety_counts"].items()))]
            for e in result["episodes"]]
    steps = sum(e["steps"] for e in result["episodes"])
    held = sum(e["safety_counts"].get("joint_velocity", 0) for e in result["episodes"])
    text = [f"The twin served at `{result['endpoint']}` ({result['transport']}); the bundle run "
            "by the deployment adapter through its safety layer, at most "
            f"{result['steps_per_episode']} control steps an episode. From "
            "`deploy/deploy.json`; every step is in `deploy/telemetry.jsonl`."]
    if steps and held:
        text.append(f"The safety layer held the arm to its joint speed limits in {held} of "
                    f"{steps} steps, as the training twin did: both bound set-points by one "
                    "law (`celltwin.core.joint_motion`), with the limits the bundle's manifest "
                    "records, so the policy meets the arm it learned on.")
    return Section(
        "Deployment over OPC UA", text,
        [Table(["episode", "success", "steps", "final distance [m]", "stop", "overruns",
                "safety layer"], rows)])

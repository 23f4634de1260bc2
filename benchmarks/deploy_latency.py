"""Deployment latency: policy inference, the adapter's control loop, and the OPC UA exchange.

Three figures a controller integrator asks for:

1. onnxruntime time per action (one observation, batch 1, one thread), for the zoo's network
   sizes (SAC [256, 256] for Reach, [512, 512, 512] for PickPlace), p50/p99.
2. Adapter loop jitter at 25 Hz (the bundle's period) and 100 Hz against the in-process twin
   controller in lock-step (every set-point ticks the twin, so a step includes the physics):
   lateness of each step's start past its deadline, the step's own time, overruns. The
   policy is a proportional reacher whose goal alternates every second, so the arm moves and
   the safety layer and IK do real work.
3. OPC UA read-state + write-set-point round trip on loopback against a served twin
   (``celltwin.policies.latency.opcua_round_trip``), p50/p99.

    python benchmarks/deploy_latency.py [--actions 2000] [--seconds 8] [--opcua 500] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def _percentiles(milliseconds) -> dict:
    values = np.asarray(milliseconds, dtype=float)
    return {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
            "max_ms": float(values.max()), "n": int(values.size)}


def _bundle(folder: Path, net_arch, reacher: bool) -> Path:
    """Export a SAC Reach policy of the given size (a proportional reacher if asked)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC

    import celltwin.envs  # noqa: F401
    from celltwin.policies.export import ExportOptions, export_trained
    from celltwin.training.config import TrainConfig
    from celltwin.training.run_dir import Trained

    torch.set_num_threads(1)
    env = gym.make("celltwin/Reach-v0")
    pi = [] if reacher else list(net_arch)
    model = SAC("MultiInputPolicy", env, learning_starts=10**9, buffer_size=100, seed=0,
                policy_kwargs=dict(net_arch=dict(pi=pi, qf=[8])))
    if reacher:
        with torch.no_grad():
            weight = torch.zeros_like(model.policy.actor.mu.weight)
            weight[:, 0:3], weight[:, 3:6] = -10.0 * torch.eye(3), 10.0 * torch.eye(3)
            model.policy.actor.mu.weight.copy_(weight)
            model.policy.actor.mu.bias.zero_()
    path = folder / ("reacher" if reacher else "sac_" + "x".join(map(str, net_arch)))
    export_trained(Trained(model=model, config=TrainConfig(task="Reach", algo="sac")), path,
                   options=ExportOptions(samples=200, torchscript=False))
    env.close()
    return path


def inference_latency(bundle: Path, actions: int) -> dict:
    from celltwin.policies.bundle import load_bundle
    from celltwin.policies.deploy.runtime import OnnxPolicy

    loaded = load_bundle(bundle)
    policy = OnnxPolicy(loaded.onnx_bytes, loaded.manifest)
    observation = np.random.default_rng(0).normal(size=loaded.manifest["policy"]["input"]["size"])
    for _ in range(100):
        policy(observation)
    durations = np.empty(actions)
    for index in range(actions):
        started = time.perf_counter()
        policy(observation)
        durations[index] = time.perf_counter() - started
    return _percentiles(durations * 1e3)


def loop_jitter(bundle: Path, rate_hz: float, seconds: float) -> dict:
    import gymnasium as gym

    from celltwin.policies.deploy.adapter import Adapter
    from celltwin.policies.deploy.runtime import Pacer
    from celltwin.serve.in_process import InProcessController
    from celltwin.serve.virtual_controller import VirtualController

    env = gym.make("celltwin/Reach-v0")
    obs, _ = env.reset(seed=0)
    goals = [obs["desired_goal"], obs["desired_goal"] + np.array([0.0, 0.15, 0.1])]
    period = 1.0 / rate_hz
    steps_per_goal = int(rate_hz)
    with InProcessController(VirtualController(env.unwrapped.world)) as controller:
        adapter = Adapter(bundle, controller, goals[0], period_s=period)
        adapter.rearm()
        pacer = Pacer(period)
        lateness, work, flags = [], [], 0
        pacer.start()
        for index in range(int(seconds * rate_hz)):
            late, overrun = pacer.wait() if index else (0.0, False)
            started = time.perf_counter()
            if index % steps_per_goal == 0:
                adapter.set_goal(goals[(index // steps_per_goal) % 2])
            result = adapter.step(lateness_s=late, overrun=overrun)
            work.append(time.perf_counter() - started)
            lateness.append(late)
            flags += bool(result.flags)
            if adapter.stop_reason:
                raise RuntimeError(adapter.stop_reason)
        adapter.close()
    env.close()
    return {"rate_hz": rate_hz, "lateness": _percentiles(np.array(lateness) * 1e3),
            "step": _percentiles(np.array(work) * 1e3), "overruns": pacer.overruns,
            "steps_with_safety_flags": flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=2000, help="timed inferences per network")
    parser.add_argument("--seconds", type=float, default=8.0, help="loop duration per rate [s]")
    parser.add_argument("--opcua", type=int, default=500, help="timed OPC UA exchanges (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="celltwin-deploy-bench-") as folder:
        folder = Path(folder)
        for arch in ((256, 256), (512, 512, 512)):
            name = "x".join(map(str, arch))
            figures = inference_latency(_bundle(folder, arch, reacher=False), args.actions)
            results[f"onnx_sac_{name}"] = figures
            print(f"onnxruntime, SAC actor {name}: p50 {figures['p50_ms'] * 1e3:.0f} us, "
                  f"p99 {figures['p99_ms'] * 1e3:.0f} us (batch 1, 1 thread, {figures['n']} actions)")
        reacher = _bundle(folder, (), reacher=True)
        for rate in (25.0, 100.0):
            figures = loop_jitter(reacher, rate, args.seconds)
            results[f"loop_{rate:g}hz"] = figures
            late, step = figures["lateness"], figures["step"]
            print(f"adapter loop {rate:g} Hz (in-process twin, lock-step): start lateness p50 "
                  f"{late['p50_ms']:.3f} ms, p99 {late['p99_ms']:.3f} ms, max {late['max_ms']:.3f} ms; "
                  f"step p50 {step['p50_ms']:.2f} ms, p99 {step['p99_ms']:.2f} ms; "
                  f"overruns {figures['overruns']}/{step['n']}")
    if args.opcua:
        try:
            from celltwin.policies.latency import opcua_round_trip
        except ImportError as exc:
            print(f"OPC UA round trip: skipped ({exc})")
        else:
            figures = opcua_round_trip(args.opcua)
            results["opcua_round_trip"] = {k: v for k, v in figures.items() if k != "server"}
            print(f"OPC UA read state + write set-points, loopback: p50 {figures['p50_ms']:.2f} ms, "
                  f"p99 {figures['p99_ms']:.2f} ms, max {figures['max_ms']:.2f} ms ({figures['n']} trials)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""An exported bundle as a policy in a celltwin env, for ``celltwin evaluate``.

Evaluation (:mod:`celltwin.training.evaluation`) takes the policy of a bundle folder from its
caller, since training comes before export; the CLI hands it :class:`BundlePolicy`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celltwin.policies.bundle import load_bundle
from celltwin.policies.deploy.runtime import OnnxPolicy


class BundlePolicy:
    """An exported bundle acting in the env: the verified ONNX, as the adapter runs it.

    The bundle's actions are in controller units (metres or radians per step, a gripper
    opening in metres); the env takes them normalized, so the controller scaling is undone
    here. Evaluating the bundle rather than the checkpoint judges exactly what is deployed.
    """

    def __init__(self, folder: Path):
        bundle = load_bundle(folder)
        self.manifest = bundle.manifest
        self.onnx = OnnxPolicy(bundle.onnx_bytes, bundle.manifest)
        self.keys = [entry["key"] for entry in self.manifest["policy"]["input"]["layout"]]
        control = self.manifest["control"]
        self.scale = control["scale"] or 1.0
        self.uses_gripper = control["uses_gripper"]
        self.arm_size = self.manifest["action"]["arm_size"]
        closed, opened = self.manifest["robot"]["gripper"]["width_range_m"]
        self.width_mid, self.width_half = (opened + closed) / 2, (opened - closed) / 2

    def reset(self) -> None:
        pass

    def __call__(self, observation):
        vector = np.concatenate([np.asarray(observation[key], np.float32).ravel()
                                 for key in self.keys])
        action = self.onnx(vector)
        arm = action[:self.arm_size] / self.scale
        if not self.uses_gripper:
            return arm.astype(np.float32)
        grip = (action[self.arm_size] - self.width_mid) / self.width_half
        return np.append(arm, grip).astype(np.float32)

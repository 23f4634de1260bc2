"""Policies: scripted experts, bundle export, and the deployment adapter with its safety layer.

``policies.export`` (torch, SB3) runs where the policy was trained; ``policies.bundle``,
``policies.kinematics`` and ``policies.deploy`` run on a controller PC with numpy,
onnxruntime and asyncua only.
"""

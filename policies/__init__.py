"""Policies: bundle export, and the deployment adapter with its safety layer.

``celltwin.policies.export`` (torch, SB3) runs where the policy was trained;
``celltwin.policies.bundle``, ``celltwin.policies.kinematics`` and ``celltwin.policies.deploy`` run
on a controller PC with numpy, onnxruntime and asyncua only.
"""

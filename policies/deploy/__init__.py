"""Deployment: run an exported policy bundle against a robot controller, behind a safety layer.

Everything in this package imports only numpy, onnxruntime and (for OPC UA) asyncua, plus the
light, numpy-only parts of celltwin (``celltwin.observation``, ``celltwin.core.errors``): it runs on
a controller PC where torch, pybullet and stable-baselines3 are not installed.
"""

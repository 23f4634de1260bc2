"""Calibration: fit a twin's PhysicsParams to what a real controller logged.

``excite`` designs a safe excitation program that ``celltwin deploy`` plays through the safety
layer; ``logs`` reads what the controller logged (telemetry, CSV, NPZ); ``replay`` plays the
logged set-points in the pybullet twin; ``fit`` fits the named parameters to the logged joint
trajectories; ``report`` writes physics.yaml, fit.json and the report.
"""

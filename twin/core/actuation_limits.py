"""What a robot's actuation latency and joint-sensor noise may be, in one home.

Three layers use these limits: the robot's actuation enforces them (:mod:`celltwin.robots`),
PhysicsParams reads them from a ``--physics`` file (:mod:`celltwin.physics`), and randomization
clips its draws to them (:mod:`celltwin.randomization`). They live here, in the layer all three
import, because the robots package loads pybullet and the physics and randomization models
must not.
"""

LATENCY_STEPS_RANGE = (0, 100)
"""Lowest and highest actuation latency [control steps]."""
JOINT_NOISE_STD_RAD_RANGE = (0.0, None)
"""Lowest and highest joint-sensor noise standard deviation [rad] (None: no upper limit)."""

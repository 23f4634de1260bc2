"""What a robot's actuation latency, joint-sensor noise and suction cup may be, in one home.

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
SUCTION_FORCE_N_RANGE = (0.0, None)
"""A suction cup's rated holding force [N]: above the lower bound (None: no upper limit)."""
SEAL_TOLERANCE_M_RANGE = (0.0, 0.01)
"""Lowest and highest seal tolerance of a suction cup [m]: a vacuum cup does not pull a part
in from further than a centimetre."""

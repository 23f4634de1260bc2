"""Shared infrastructure every other part of celltwin builds on.

Errors and their located problems (:mod:`.errors`, :mod:`.problems`), the YAML reader every
file kind goes through (:mod:`.documents`), atomic file writes (:mod:`.atomic`), the shipped
assets and the on-disk cache (:mod:`.resources`) and the pybullet client with its C output
muted (:mod:`.client`). Nothing here imports another part of celltwin;
only ``client`` imports pybullet, so the light modules load on a controller PC.
"""

"""celltwin's shipped data: example cells, lines, randomization presets, robot descriptions.

No code lives here; :mod:`celltwin.core.resources` reads these files with importlib.resources.
"""

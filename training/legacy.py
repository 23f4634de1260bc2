"""Reading models saved before celltwin became one package (``celltwin.*``).

SB3 stores some of a model's constructor arguments (``policy_kwargs`` with celltwin's features
extractor, for one) as pickles, and a pickle names each class by its module: runs written by
celltwin 0.1's five-package layout say ``training.features``, not ``celltwin.training.features``.
Those entries are read here with the old module names mapped to the new ones and handed to SB3
as ``custom_objects``, so old run directories resume, evaluate and export. Mapping the names
(rather than aliasing ``training`` in ``sys.modules``) keeps a user's own ``training`` package
out of it.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import pickle
import zipfile
from pathlib import Path

# Old module -> new module; the most specific prefix wins. The moved modules come first.
LEGACY_MODULES = {
    "twin.errors": "celltwin.core.errors",
    "twin.atomic": "celltwin.core.atomic",
    "twin.client": "celltwin.core.client",
    "twin.assets": "celltwin.core.resources",
    "twin.spec.problems": "celltwin.core.problems",
    "policies.scripted": "celltwin.experts",
    "policies.deploy.transport": "celltwin.controller.interface",
    "policies.deploy.opcua_model": "celltwin.controller.opcua_model",
    "twin": "celltwin",
    "robots": "celltwin.robots",
    "policies": "celltwin.policies",
    "training": "celltwin.training",
}


def renamed_module(module: str) -> str:
    """The current name of ``module`` if it is one of the old layout's, else ``module``."""
    for old in sorted(LEGACY_MODULES, key=len, reverse=True):
        if module == old or module.startswith(old + "."):
            new = LEGACY_MODULES[old] + module[len(old):]
            if importlib.util.find_spec(new) is not None:
                return new
    return module


class RenamingUnpickler(pickle.Unpickler):
    """An unpickler that finds classes of the old layout under their new modules."""

    def find_class(self, module: str, name: str):
        return super().find_class(renamed_module(module), name)


def loads(data: bytes):
    """``pickle.loads`` with old module names mapped to the new ones."""
    return RenamingUnpickler(io.BytesIO(data)).load()


def legacy_custom_objects(model_zip: Path) -> dict:
    """The pickled entries of an SB3 ``model.zip`` that name old-layout modules, decoded.

    Returns ``{}`` for a model of the current layout (or an unreadable file: SB3's own load
    then reports what is wrong with it).
    """
    try:
        with zipfile.ZipFile(model_zip) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}
    decoded = {}
    for key, value in data.items():
        if not (isinstance(value, dict) and ":serialized:" in value):
            continue
        raw = base64.b64decode(value[":serialized:"].encode())
        if not any(old.encode() in raw for old in ("twin", "robots", "policies", "training")):
            continue
        try:
            decoded[key] = loads(raw)
        except Exception:   # not ours to judge: SB3's load reports (or skips) it
            continue
    return decoded

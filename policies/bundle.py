"""Policy bundles on disk: write one atomically, load one only when every byte checks out.

A bundle is a folder: ``manifest.json`` (see :mod:`celltwin.policies.manifest`), ``policy.onnx``
and, optionally, ``policy.pt`` (TorchScript). The manifest lists the SHA-256 and size of every other
file and carries a digest of itself, so a copied, truncated or edited bundle is refused with the
file and what is wrong before a controller moves. The ONNX bytes that were verified are the
bytes handed to onnxruntime: nothing is read twice.

Light on purpose: json, hashlib and celltwin's numpy-only modules; it runs on a controller.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from celltwin.policies.errors import BundleError
from celltwin.policies.manifest import (MANIFEST_FILE, MAX_MANIFEST_BYTES, SCHEMA_VERSION,
                                        manifest_digest, parse_manifest, validate_manifest)
from celltwin.core.atomic import atomic_write_bytes, atomic_write_text
from celltwin.core.errors import Problem


@dataclass(frozen=True)
class Bundle:
    """A verified bundle.

    Attributes:
        path: the bundle folder.
        manifest: the parsed, schema-checked manifest.
        onnx_bytes: the verified ``policy.onnx`` (hand these to onnxruntime).
    """

    path: Path
    manifest: dict
    onnx_bytes: bytes

    @property
    def robot_model(self) -> str:
        return self.manifest["robot"]["model"]

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.manifest["robot"]["joint_names"])


# Bundles are read by other accounts than the exporter's (the controller's service user):
# files readable by all, changeable by the owner only.
FILE_MODE = 0o644
FOLDER_MODE = 0o755


def file_entry(data: bytes) -> dict:
    """The manifest's record of one file: SHA-256 (hex) and size [bytes]."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


def write_bundle(folder: str | os.PathLike, manifest: dict, files: Mapping[str, bytes]) -> Path:
    """Write a bundle: every file atomically, the manifest last (it is the commit point).

    Files are readable by every account (0644, the folder 0755): a controller's service user
    is seldom the exporter.

    Args:
        folder: the bundle folder: new, empty, or a bundle written before (its files are
            replaced, and those the new bundle does not have removed).
        manifest: the manifest without ``files`` and ``manifest_sha256`` (both added here).
        files: file name -> content, e.g. ``{"policy.onnx": b"..."}``.

    Returns:
        the bundle folder.

    Raises:
        BundleError: the folder holds files that belong to no bundle (a bundle folder holds
            nothing its manifest does not list), or the finished manifest does not pass its
            own schema check (a bug in the exporter, reported rather than written).
    """
    folder = Path(folder)
    complete = dict(manifest)
    complete["files"] = {name: file_entry(data) for name, data in sorted(files.items())}
    complete["manifest_sha256"] = manifest_digest(complete)
    problems = validate_manifest(complete, file=str(folder / MANIFEST_FILE))
    if problems:
        raise BundleError(problems)
    stale = _stale_files(folder, set(files))
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, FOLDER_MODE)
    # A reader that finds the old manifest next to new files refuses the bundle (hashes
    # differ) rather than running a mix, so writing the manifest last is enough.
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    for name, data in files.items():
        atomic_write_bytes(folder / name, data, mode=FILE_MODE)
    atomic_write_text(folder / MANIFEST_FILE,
                      json.dumps(complete, indent=2, allow_nan=False) + "\n", mode=FILE_MODE)
    return folder


def _stale_files(folder: Path, new: set[str]) -> list[str]:
    """Files of a bundle written before into ``folder`` that the new one does not have.

    Raises:
        BundleError: ``folder`` is a file, or holds anything else than a bundle (refused
            rather than deleted: it is somebody's).
    """
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise BundleError(Problem("the bundle folder is an existing file", file=str(folder),
                                  expected="a new folder, an empty one, or a bundle to replace"))
    previous: set[str] = set()
    if (folder / MANIFEST_FILE).is_file():
        try:
            previous = set(read_manifest(folder)["files"])
        except BundleError:
            previous = set()   # a damaged bundle: only the names a bundle has are replaced
    ours = previous | new | {MANIFEST_FILE}
    foreign = sorted(entry.name for entry in folder.iterdir() if entry.name not in ours)
    if foreign:
        raise BundleError([Problem("the bundle folder holds a file that is not part of a "
                                   "bundle", file=str(folder / name),
                                   expected="a new or empty folder, or a bundle to replace")
                           for name in foreign])
    return sorted(previous - new)


def read_manifest(folder: str | os.PathLike) -> dict:
    """Parse and schema-check ``manifest.json`` of a bundle folder (files not verified).

    Raises:
        BundleError: the folder or manifest is missing, not JSON, of an unknown schema
            version, or fails the schema check (all problems listed).
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise BundleError(Problem("bundle folder not found", file=str(folder),
                                  expected="a folder written by `celltwin export`"))
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)   # no more than a manifest may be
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise BundleError(Problem("manifest missing", file=str(path),
                                  expected="manifest.json in the bundle folder")) from None
    except IsADirectoryError:
        raise BundleError(Problem("manifest is a folder", file=str(path),
                                  expected="manifest.json, a file")) from None
    except OSError as exc:
        raise BundleError(Problem(f"manifest unreadable: {exc.strerror}",
                                  file=str(path))) from None
    except UnicodeDecodeError as exc:
        raise BundleError(Problem(f"manifest is not UTF-8 text (byte {exc.start})",
                                  file=str(path), expected="the JSON an export writes")) from None
    data = parse_manifest(text, file=str(path))
    problems = validate_manifest(data, file=str(path))
    if problems:
        raise BundleError(problems)
    digest = manifest_digest(data)
    if digest != data["manifest_sha256"]:
        raise BundleError(Problem("manifest was modified after export (its digest does not "
                                  "match)", file=str(path), path="manifest_sha256",
                                  value=digest, expected=data["manifest_sha256"]))
    return data


def load_bundle(folder: str | os.PathLike) -> Bundle:
    """Load a bundle, verifying the manifest and the size and SHA-256 of every listed file.

    Raises:
        BundleError: naming the file and what is wrong: missing, truncated (size), tampered
            (hash), unknown schema version, or a manifest that fails its schema.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    contents: dict[str, bytes] = {}
    problems = _unlisted(folder, manifest)
    for name, entry in manifest["files"].items():
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            problems.append(Problem("file listed in the manifest is missing", file=str(path),
                                    path=f"files.{name}", expected=f"{entry['size_bytes']} bytes"))
            continue
        except OSError as exc:
            problems.append(Problem(f"file unreadable: {exc.strerror}", file=str(path)))
            continue
        if len(data) != entry["size_bytes"]:
            what = "truncated" if len(data) < entry["size_bytes"] else "longer than exported"
            problems.append(Problem(f"file is {what}: {len(data)} bytes", file=str(path),
                                    path=f"files.{name}",
                                    value=f"{len(data)} bytes",
                                    expected=f"{entry['size_bytes']} bytes"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            problems.append(Problem(f"file was modified after export (SHA-256 mismatch: "
                                    f"{digest[:12]}...)", file=str(path), path=f"files.{name}",
                                    value=digest,
                                    expected=f"SHA-256 {entry['sha256'][:12]}... as exported"))
            continue
        contents[name] = data
    if problems:
        raise BundleError(problems)
    return Bundle(folder, manifest, contents[manifest["policy"]["onnx_file"]])


def _unlisted(folder: Path, manifest: Mapping) -> list[Problem]:
    """One problem per entry of the bundle folder that its manifest does not list.

    A bundle is exactly what was exported: a file slipped in beside it (a second model, a
    script) is refused, not ignored, since nobody can say what it is for.
    """
    listed = set(manifest["files"]) | {MANIFEST_FILE}
    try:
        entries = sorted(entry.name for entry in folder.iterdir())
    except OSError as exc:
        return [Problem(f"bundle folder unreadable: {exc.strerror}", file=str(folder))]
    return [Problem("not listed in the manifest: a bundle holds only what was exported "
                    "(remove it, or export again)", file=str(folder / name),
                    path="files", expected=", ".join(sorted(listed)))
            for name in entries if name not in listed]


def check_goal(manifest: Mapping, goal, *, tolerance_m: float | None = None) -> Problem | None:
    """Whether ``goal`` (robot base frame [m]) lies in the box training drew goals from.

    A policy has never seen a goal outside that box; its actions there mean nothing. Within
    ``tolerance_m`` (default: the task's success threshold) of the box is inside.

    Returns:
        ``None`` for a goal inside (or a bundle that does not record its box), else the
        problem, naming the box.
    """
    observation = manifest["observation"]
    low, high = observation.get("goal_low_m"), observation.get("goal_high_m")
    if low is None or high is None:
        return None
    margin = observation["success_threshold_m"] if tolerance_m is None else tolerance_m
    if len(goal) != 3 or not all(math.isfinite(float(value)) for value in goal):
        return Problem("a goal is three finite numbers", path="goal", value=list(goal),
                       expected="x y z in the robot base frame [m]")
    outside = max(max(lo - value, value - hi, 0.0) for value, lo, hi in zip(goal, low, high))
    if outside <= margin:
        return None
    box = ", ".join(f"{axis} {lo:.3f}..{hi:.3f}" for axis, lo, hi in zip("xyz", low, high))
    return Problem(f"goal {_point(goal)} lies {outside:.3f} m outside the region the policy was "
                   f"trained on ({box} m, robot base frame)", path="goal",
                   value=[float(v) for v in goal],
                   expected=f"a goal within {margin:g} m of that region")


def _point(values) -> str:
    return "(" + ", ".join(f"{float(v):.3f}" for v in values) + ")"


def check_compatible(manifest: Mapping, controller) -> None:
    """Refuse a controller whose robot model or arm joint names differ from the bundle's.

    Joint names must match in order too: every joint array is in that order, so a reordered
    controller would turn each joint's command into another joint's.

    Raises:
        BundleError: one problem per mismatch, with both values.
    """
    robot = manifest["robot"]
    problems = []
    model = getattr(controller, "robot_model", None)
    if model != robot["model"]:
        problems.append(Problem("bundle was exported for another robot model",
                                path="robot.model", value=model, expected=robot["model"]))
    names = tuple(getattr(controller, "joint_names", ()) or ())
    expected = tuple(robot["joint_names"])
    if names != expected:
        if sorted(names) == sorted(expected):
            message = "controller lists the arm joints in another order"
        else:
            missing = [n for n in expected if n not in names]
            extra = [n for n in names if n not in expected]
            message = f"controller's arm joints differ (missing {missing}, unexpected {extra})"
        problems.append(Problem(message, path="robot.joint_names", value=list(names),
                                expected=str(list(expected))))
    if problems:
        raise BundleError(problems)


__all__ = ["Bundle", "SCHEMA_VERSION", "check_compatible", "check_goal", "file_entry",
           "load_bundle", "read_manifest", "write_bundle"]

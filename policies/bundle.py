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
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from celltwin.policies.errors import BundleError
from celltwin.policies.manifest import (MANIFEST_FILE, SCHEMA_VERSION, manifest_digest,
                                        validate_manifest)
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


def file_entry(data: bytes) -> dict:
    """The manifest's record of one file: SHA-256 (hex) and size [bytes]."""
    return {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


def write_bundle(folder: str | os.PathLike, manifest: dict, files: Mapping[str, bytes]) -> Path:
    """Write a bundle: every file atomically, the manifest last (it is the commit point).

    Args:
        folder: the bundle folder (created if missing; files of the same names replaced).
        manifest: the manifest without ``files`` and ``manifest_sha256`` (both added here).
        files: file name -> content, e.g. ``{"policy.onnx": b"..."}``.

    Returns:
        the bundle folder.

    Raises:
        BundleError: the finished manifest does not pass its own schema check (a bug in the
            exporter, reported rather than written).
    """
    folder = Path(folder)
    complete = dict(manifest)
    complete["files"] = {name: file_entry(data) for name, data in sorted(files.items())}
    complete["manifest_sha256"] = manifest_digest(complete)
    problems = validate_manifest(complete, file=str(folder / MANIFEST_FILE))
    if problems:
        raise BundleError(problems)
    # A reader that finds the old manifest next to new files refuses the bundle (hashes
    # differ) rather than running a mix, so writing the manifest last is enough.
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    for name, data in files.items():
        atomic_write_bytes(folder / name, data)
    atomic_write_text(folder / MANIFEST_FILE,
                      json.dumps(complete, indent=2, allow_nan=False) + "\n")
    return folder


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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(Problem("manifest missing", file=str(path),
                                  expected="manifest.json in the bundle folder")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(Problem(f"manifest unreadable: {exc}", file=str(path))) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(Problem(f"manifest is not valid JSON ({exc.msg}); truncated or "
                                  "edited?", file=str(path), line=exc.lineno)) from None
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
    problems: list[Problem] = []
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


__all__ = ["Bundle", "SCHEMA_VERSION", "check_compatible", "file_entry", "load_bundle",
           "read_manifest", "write_bundle"]

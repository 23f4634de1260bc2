"""Episode videos: frames of a twin drawn offscreen and written as an animated GIF or an MP4.

Frames come from :func:`celltwin.render.render_view` (TinyRenderer on a CPU, EGL where a GPU
is); files are encoded by imageio (GIF through Pillow; MP4 through imageio-ffmpeg, installed
with ``pip install "celltwin[mp4]"``). The format follows the file's suffix. A file appears
whole or not at all (written beside its target, then renamed).

:class:`EpisodeRecorder` collects frames, one every ``every`` control steps, each with a
caption bar (episode, outcome); :class:`RecordingController` draws a lock-step in-process
controller's twin after every command, so the deployment adapter's episodes can be filmed
without touching the adapter.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from celltwin.core.errors import CelltwinError, Problem
from celltwin.render import camera_matrices, render_view

VIDEO_FORMATS = ("gif", "mp4")
CAPTION_PX = 18   # height of the caption bar under each frame [px]


class VideoError(CelltwinError):
    """A video cannot be written as asked (unknown format, no MP4 encoder, no frames)."""


def video_format(path: str | os.PathLike, option: str = "--video") -> str:
    """The format a video file's suffix asks for (``gif`` or ``mp4``).

    Raises:
        VideoError: another suffix, or MP4 without imageio-ffmpeg installed.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in VIDEO_FORMATS:
        raise VideoError(Problem(f"cannot tell the video format of '{Path(path).name}'",
                                 path=option, value=str(path),
                                 expected="a file ending in .gif or .mp4"))
    if suffix == "mp4":
        import importlib.util

        if importlib.util.find_spec("imageio_ffmpeg") is None:
            raise VideoError(Problem("writing MP4 needs imageio-ffmpeg, which is not installed",
                                     path=option, value=str(path),
                                     expected='pip install "celltwin[mp4]", or a .gif file'))
    return suffix


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike, *, fps: float,
                option: str = "--video") -> Path:
    """Write RGB ``frames`` (height x width x 3, uint8, all one size) to ``path`` at ``fps``.

    Raises:
        VideoError: no frames, or a format :func:`video_format` refuses.
    """
    import imageio.v3 as iio

    path = Path(path)
    kind = video_format(path, option)
    if not len(frames):
        raise VideoError(Problem("no frames to write", path=option, value=str(path),
                                 expected="at least one recorded control step"))
    stack = np.stack([np.asarray(frame, dtype=np.uint8) for frame in frames])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{kind}", dir=path.parent)
    os.close(fd)
    try:
        if kind == "gif":
            # Pillow takes a frame's duration in milliseconds; loop=0 repeats for ever.
            iio.imwrite(tmp, stack, extension=".gif", plugin="pillow",
                        duration=round(1000 / fps), loop=0)
        else:
            # H.264 wants even sizes; yuv420p is what every player decodes.
            stack = stack[:, : stack.shape[1] // 2 * 2, : stack.shape[2] // 2 * 2]
            iio.imwrite(tmp, stack, extension=".mp4", plugin="FFMPEG", fps=fps,
                        codec="libx264", pixelformat="yuv420p", macro_block_size=1,
                        ffmpeg_log_level="error")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def captioned(frame: np.ndarray, text: str) -> np.ndarray:
    """``frame`` with a dark bar under it carrying ``text``."""
    height, width = frame.shape[:2]
    image = Image.new("RGB", (width, height + CAPTION_PX), (30, 30, 30))
    image.paste(Image.fromarray(np.asarray(frame, dtype=np.uint8)), (0, 0))
    ImageDraw.Draw(image).text((6, height + 3), text, fill=(235, 235, 235))
    return np.asarray(image)


class EpisodeRecorder:
    """Frames of episodes, drawn from a world every ``every`` control steps.

    Args:
        width, height: frame size [px] (a caption bar is added below).
        every: draw one frame every this many control steps [-].
        view: ``perspective`` or ``top`` (see :func:`celltwin.render.render_view`).

    Attributes:
        frames: the frames so far (RGB arrays with their caption bar).
        caption: the text under the frames being drawn (e.g. ``episode 2/3``).
    """

    def __init__(self, width: int = 320, height: int = 240, every: int = 2,
                 view: str = "perspective"):
        self.width, self.height, self.every, self.view = width, height, every, view
        self.frames: list[np.ndarray] = []
        self.caption = ""
        self.steps = 0
        self.matrices = None   # one camera for the whole video, framed on the first frame

    def start(self, caption: str) -> None:
        """Begin an episode: its first frame is drawn at its first :meth:`step`."""
        self.caption = caption
        self.steps = 0

    def step(self, world) -> None:
        """Called after every control step; draws one frame every ``every`` steps."""
        if self.steps % self.every == 0:
            self.draw(world)
        self.steps += 1

    def draw(self, world, caption: str | None = None) -> None:
        """Draw one frame of ``world`` now."""
        if self.matrices is None:
            self.matrices = camera_matrices(world, self.view, self.width, self.height)
        frame = render_view(world, view=self.view, width=self.width, height=self.height,
                            matrices=self.matrices)
        self.frames.append(captioned(frame, self.caption if caption is None else caption))

    def hold(self, caption: str, frames: int = 6) -> None:
        """Repeat the last frame with a new caption (an episode's outcome, for a moment)."""
        if self.frames:
            last = self.frames[-1][: self.height]
            self.frames += [captioned(last, caption)] * frames

    def fps(self, control_period_s: float) -> float:
        """The frame rate that plays the episodes in real time [1/s]."""
        return 1.0 / (control_period_s * self.every)


class RecordingController:
    """A lock-step in-process controller whose twin is drawn after every command.

    In lock-step, a command advances the twin in the caller's thread and nothing else steps
    it, so drawing right after is safe; a real-time controller's clock would step the twin
    while it is being drawn. Everything but :meth:`send_joint_targets` is the wrapped
    controller's.

    Args:
        controller: a lock-step ``celltwin.serve.in_process.InProcessController``.
        world: the world it drives.
        recorder: where the frames go.
    """

    def __init__(self, controller, world, recorder: EpisodeRecorder):
        self.controller = controller
        self.world = world
        self.recorder = recorder

    def send_joint_targets(self, positions, gripper_width_m: float | None = None) -> None:
        self.controller.send_joint_targets(positions, gripper_width_m)
        self.recorder.step(self.world)

    def __getattr__(self, name: str):
        return getattr(self.controller, name)

    def __enter__(self) -> "RecordingController":
        return self

    def __exit__(self, *exc) -> None:
        self.controller.close()

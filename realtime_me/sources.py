"""Frame sources: a camera, a video file, an image sequence, or the built-in demo clip.

All yield ``Frame(index, t, image)`` with a BGR image. ``t`` is the monotonic
capture time (``time.perf_counter``) for a camera and media time (index / fps)
for everything else, so a 200 fps image sequence keeps its true timing however
fast it is read.

``live`` sources must not be slowed down by processing (the ring drops their
oldest frames instead); the others are read with back-pressure and lose nothing.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError
from .types import Frame

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class SourceInfo:
    """What a source really delivers (cameras often ignore the requested settings)."""

    name: str
    fps: float
    width: int
    height: int
    live: bool
    n_frames: int | None = None
    notes: list[str] = field(default_factory=list)


class Source:
    """Base: iterate to get frames; ``info`` says what it delivers; ``end_reason`` why it stopped."""

    info: SourceInfo
    end_reason: str = "end of input"

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CameraSource(Source):
    """An OpenCV camera. ``--width/--height/--fps`` are requests; ``info`` reports what came."""

    #: consecutive failed reads before the camera counts as gone
    MAX_FAILED_READS = 30

    def __init__(self, index: int, width: int = 640, height: int = 480, fps: float = 30.0) -> None:
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            raise UserError(
                f"cannot open camera {index}: no such device or it is busy "
                "(try another --camera index, or --video PATH / --demo on a machine without a camera)"
            )
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.cap.set(cv2.CAP_PROP_FPS, fps)
        ok, first = self.cap.read()
        if not ok:
            self.cap.release()
            raise UserError(f"camera {index} opened but delivered no frame")
        real_fps = self.cap.get(cv2.CAP_PROP_FPS) or fps
        h, w = first.shape[:2]
        self.info = SourceInfo(f"camera {index}", float(real_fps), w, h, live=True)
        if (w, h) != (width, height) or abs(real_fps - fps) > 0.5:
            self.info.notes.append(f"requested {width}x{height}@{fps:g}, camera delivers {w}x{h}@{real_fps:g}")
        self._first = first

    def frames(self) -> Iterator[Frame]:
        index, failed = 0, 0
        image = self._first
        while True:
            if image is not None:
                yield Frame(index, time.perf_counter(), image)
                index += 1
            ok, image = self.cap.read()
            if ok:
                failed = 0
                continue
            image, failed = None, failed + 1
            if failed >= self.MAX_FAILED_READS:
                self.end_reason = f"camera stopped delivering frames after frame {index}"
                return
            time.sleep(0.01)

    def close(self) -> None:
        self.cap.release()


class VideoSource(Source):
    """A video file, paced at its frame rate (as if live) unless ``realtime=False``."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"no such video file: {path}")
        self.cap = cv2.VideoCapture(str(path))
        ok, first = self.cap.read() if self.cap.isOpened() else (False, None)
        if not ok:
            self.cap.release()
            raise UserError(f"cannot read video {path}: not a video OpenCV can decode, or it is empty/corrupt")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 30.0
            log.warning("%s does not say its frame rate; assuming 30 fps", path)
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        h, w = first.shape[:2]
        self.realtime = realtime
        self.info = SourceInfo(str(path), float(fps), w, h, live=realtime, n_frames=n)
        self._first = first

    def frames(self) -> Iterator[Frame]:
        fps = self.info.fps
        start = time.perf_counter()
        index, image = 0, self._first
        while image is not None:
            if self.realtime:
                delay = start + index / fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(index, index / fps, image)
            index += 1
            ok, image = self.cap.read()
            if not ok:
                image = None
        expected = self.info.n_frames
        # Containers often over-count by a few frames; a real truncation loses more.
        if expected and index < 0.95 * expected:
            self.end_reason = f"video ended early: read {index} of about {expected} frames (truncated or corrupt)"

    def close(self) -> None:
        self.cap.release()


def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


class FrameFolderSource(Source):
    """A folder of numbered images (e.g. a 200 fps research clip), at ``fps``."""

    def __init__(self, folder: str | Path, fps: float, realtime: bool = False) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise UserError(f"no such folder: {folder}")
        if not fps or fps <= 0:
            raise UserError("an image sequence needs its frame rate: pass --fps F (e.g. --fps 200)")
        self.paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.paths:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        first = cv2.imread(str(self.paths[0]))
        if first is None:
            raise UserError(f"cannot read image {self.paths[0]}")
        h, w = first.shape[:2]
        self.realtime = realtime
        self.info = SourceInfo(str(folder), float(fps), w, h, live=realtime, n_frames=len(self.paths))

    def frames(self) -> Iterator[Frame]:
        start = time.perf_counter()
        skipped = 0
        for index, path in enumerate(self.paths):
            image = cv2.imread(str(path))
            if image is None:
                skipped += 1
                log.warning("skipping unreadable image %s", path)
                continue
            if self.realtime:
                delay = start + index / self.info.fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(index, index / self.info.fps, image)
        if skipped:
            self.end_reason = f"end of input ({skipped} unreadable images skipped)"


class DemoSource(Source):
    """The built-in demo: a generated clip with labelled micro-expressions (``realtime-me synth``)."""

    def __init__(self, seed: int = 7, fps: float = 30.0, duration_s: float = 20.0, realtime: bool = True) -> None:
        from .synth import SynthClip, SynthConfig

        self.clip = SynthClip(SynthConfig(seed=seed, fps=fps, duration_s=duration_s))
        t = self.clip.truth
        self.realtime = realtime
        self.info = SourceInfo(f"demo clip (seed {seed})", float(fps), int(t["width"]), int(t["height"]),
                               live=realtime, n_frames=self.clip.n_frames)

    @property
    def truth(self) -> dict:
        return self.clip.truth

    def frames(self) -> Iterator[Frame]:
        fps = self.info.fps
        start = time.perf_counter()
        for index, image in enumerate(self.clip.frames()):
            if self.realtime:
                delay = start + index / fps - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            yield Frame(index, index / fps, image)


def open_source(
    camera: int | None = None,
    video: str | None = None,
    frames: str | None = None,
    demo: bool = False,
    fps: float | None = None,
    width: int = 640,
    height: int = 480,
    realtime: bool = True,
    seed: int = 7,
) -> Source:
    """Open exactly one source from the CLI's options."""
    chosen = [name for name, v in (("--camera", camera is not None), ("--video", video), ("--frames", frames),
                                   ("--demo", demo)) if v]
    if len(chosen) > 1:
        raise UserError(f"pick one source, not {' and '.join(chosen)}")
    if camera is not None:
        return CameraSource(camera, width, height, fps or 30.0)
    if video:
        return VideoSource(video, realtime=realtime)
    if frames:
        return FrameFolderSource(frames, fps or 0.0, realtime=False)
    if demo:
        return DemoSource(seed=seed, fps=fps or 30.0, realtime=realtime)
    try:  # no source given: the default camera, as a webcam user expects
        return CameraSource(0, width, height, fps or 30.0)
    except UserError:
        raise UserError(
            "no source given and no camera 0 on this machine: pass --camera N for another webcam, "
            "--video PATH for a file, --frames DIR --fps F for an image sequence, or --demo for the built-in clip"
        ) from None

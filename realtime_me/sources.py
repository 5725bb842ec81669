"""Frame sources: a camera, a video file, an image sequence, or the built-in demo clip.

All yield ``Frame(index, t, image)`` with a BGR image. ``t`` is the monotonic
capture time (``time.perf_counter``) for a camera and media time (index / fps)
for everything else, so a 200 fps image sequence keeps its true timing however
fast it is read.

``live`` sources must not be slowed down by processing (the ring drops their
oldest frames instead); the others are read with back-pressure and lose nothing.
Files never lose a frame to a size change either: a frame whose size differs from
the first is letterboxed to the first one's size (and counted in ``end_notes``).
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

#: accepted --fps: beyond 1000 fps the buffers (seconds x fps) stop being sane
FPS_RANGE = (1.0, 1000.0)
#: accepted --width/--height
SIZE_RANGE = (16, 8192)


def check_fps(fps: float, what: str = "--fps") -> float:
    """A frame rate the pipeline can buffer, or one clear error (nan, inf, 0, negative, 1e6)."""
    lo, hi = FPS_RANGE
    if not lo <= fps <= hi:  # also false for nan
        raise UserError(f"{what} must be a frame rate from {lo:g} to {hi:g}, got {fps:g}")
    return float(fps)


def check_size(value: int, what: str) -> int:
    lo, hi = SIZE_RANGE
    if not lo <= value <= hi:
        raise UserError(f"{what} must be from {lo} to {hi} pixels, got {value}")
    return value


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
    #: what the source had to do while reading (skipped or resized frames), known at the end
    end_notes: tuple[str, ...] = ()

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _SameSize:
    """Letterboxes frames whose size differs from the first one's, and counts them:
    a file source must not lose frames to a size change (the ring would drop them)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.count = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if (w, h) == (self.width, self.height):
            return image
        self.count += 1
        scale = min(self.width / w, self.height / h)
        nw, nh = max(1, min(self.width, round(w * scale))), max(1, min(self.height, round(h * scale)))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        top, left = (self.height - nh) // 2, (self.width - nw) // 2
        return cv2.copyMakeBorder(small, top, self.height - nh - top, left, self.width - nw - left, cv2.BORDER_CONSTANT)

    def note(self, what: str = "frames") -> list[str]:
        if not self.count:
            return []
        return [f"{self.count} {what} of another size letterboxed to the first one's "
                f"{self.width}x{self.height} (none dropped)"]


def paced(frames: Iterator[Frame], fps: float) -> Iterator[Frame]:
    """Each frame held back until its media time (index / fps) since the first: a file
    played as if it were live."""
    start = time.perf_counter()
    for frame in frames:
        delay = start + frame.index / fps - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield frame


class CameraSource(Source):
    """An OpenCV camera. ``--width/--height/--fps`` are requests; ``info`` reports what came.

    Cameras often deliver another rate than asked, and their drivers often claim the asked
    one, so the rate is measured: ``PROBE_S`` of frames at open (from the driver's frame
    timestamps when it gives them, else the read times), and ``info.fps`` (what the
    pipeline sizes its buffers and the spotter its windows by) is the measured rate. Above
    30 fps the camera is asked for MJPG, the format UVC cameras deliver 100-200 fps in.
    The probe frames are not lost: they are the first ones yielded. ``end_notes`` gives the
    rate delivered over the whole run. ``capture`` replaces ``cv2.VideoCapture(index)`` (tests).
    """

    #: consecutive failed reads before the camera counts as gone
    MAX_FAILED_READS = 30
    #: seconds of frames read at open to measure the delivered rate
    PROBE_S = 0.5

    def __init__(self, index: int, width: int = 640, height: int = 480, fps: float = 30.0, capture=None) -> None:
        self.cap = capture if capture is not None else cv2.VideoCapture(index)
        if not self.cap.isOpened():
            raise UserError(
                f"cannot open camera {index}: no such device or it is busy "
                "(try another --camera index, or --video PATH / --demo on a machine without a camera)"
            )
        if fps > 30:
            self.cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
        self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self.cap.set(cv2.CAP_PROP_FPS, fps)
        self._probe = self._read_probe()
        if not self._probe:
            self.cap.release()
            raise UserError(f"camera {index} opened but delivered no frame")
        claimed = self.cap.get(cv2.CAP_PROP_FPS) or 0.0
        probe = _RateMeter()
        for stamp, read_t, _ in self._probe:
            probe.add(stamp, read_t)
        measured = probe.fps
        real_fps = measured or claimed or fps
        if not FPS_RANGE[0] <= real_fps <= FPS_RANGE[1]:  # drivers report 0, nan or nonsense; buffers are sized by it
            real_fps = fps
        h, w = self._probe[0][2].shape[:2]
        self.info = SourceInfo(f"camera {index}", round(float(real_fps), 2), w, h, live=True)
        self.requested = (width, height, float(fps))
        if (w, h) != (width, height) or abs(real_fps - fps) > max(0.5, 0.05 * fps):
            said = f" (driver says {claimed:g})" if claimed and abs(claimed - real_fps) > max(0.5, 0.05 * real_fps) else ""
            self.info.notes.append(f"requested {width}x{height}@{fps:g}, camera delivers {w}x{h}@{real_fps:.1f}{said}")

    def _stamp(self) -> float | None:
        """The driver's timestamp of the last frame read, in seconds, if it gives one."""
        ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
        return ms / 1e3 if ms and np.isfinite(ms) and ms > 0 else None

    def _read_probe(self) -> list[tuple[float | None, float, np.ndarray]]:
        """(driver timestamp, read time, image) of the frames of the first ``PROBE_S`` seconds."""
        out, failed, t0 = [], 0, time.perf_counter()
        while failed < self.MAX_FAILED_READS:
            ok, image = self.cap.read()
            now = time.perf_counter()
            if not ok:
                failed += 1
                time.sleep(0.01)
                continue
            out.append((self._stamp(), now, image))
            if now - out[0][1] >= self.PROBE_S or now - t0 >= 2 * self.PROBE_S or len(out) >= 1000:
                break
        return out

    def frames(self) -> Iterator[Frame]:
        index, failed = 0, 0
        meter = _RateMeter()
        for stamp, read_t, image in self._probe:
            meter.add(stamp, read_t)
            yield Frame(index, read_t, image)
            index += 1
        self._probe = []
        try:
            while True:
                ok, image = self.cap.read()
                if ok:
                    failed = 0
                    now = time.perf_counter()
                    meter.add(self._stamp(), now)
                    yield Frame(index, now, image)
                    index += 1
                    continue
                failed += 1
                if failed >= self.MAX_FAILED_READS:
                    self.end_reason = f"camera stopped delivering frames after frame {index}"
                    return
                time.sleep(0.01)
        finally:
            if meter.fps:
                self.end_notes = (f"camera delivered {meter.n} frames at {meter.fps:.1f} fps "
                                  f"(requested {self.requested[2]:g})",)

    def close(self) -> None:
        self.cap.release()


class _RateMeter:
    """Frames per second delivered, in constant memory, past the first ``skip`` frames (often
    buffered at start): from the driver's timestamps while every frame has one and they
    increase, else from the read times."""

    def __init__(self, skip: int = 3) -> None:
        self.skip, self.n = skip, 0
        self.first: tuple[float | None, float] | None = None
        self.last: tuple[float | None, float] | None = None
        self.stamps_ok = True

    def add(self, stamp: float | None, read_t: float) -> None:
        self.n += 1
        if stamp is None or (self.last is not None and (self.last[0] is None or stamp <= self.last[0])):
            self.stamps_ok = False
        self.last = (stamp, read_t)
        if self.n == self.skip + 1:
            self.first = self.last

    @property
    def fps(self) -> float | None:
        if self.first is None or self.n - self.skip < 3:
            return None
        k = 0 if self.stamps_ok else 1
        span = self.last[k] - self.first[k]
        return (self.n - self.skip - 1) / span if span > 0 else None


class VideoSource(Source):
    """A video file, paced at its frame rate (as if live) unless ``realtime=False``."""

    def __init__(self, path: str | Path, realtime: bool = True) -> None:
        path = Path(path)
        if path.is_dir():
            raise UserError(f"{path} is a folder, not a video file (for an image sequence: --frames {path} --fps F)")
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
        return paced(self._read(), self.info.fps) if self.realtime else self._read()

    def _read(self) -> Iterator[Frame]:
        fps = self.info.fps
        same_size = _SameSize(self.info.width, self.info.height)
        index, image = 0, self._first
        while image is not None:
            yield Frame(index, index / fps, same_size(image))
            index += 1
            ok, image = self.cap.read()
            if not ok:
                image = None
        self.end_notes = tuple(same_size.note("frames"))
        expected = self.info.n_frames
        # Containers often over-count by a few frames; a real truncation loses more.
        if expected and index < 0.95 * expected:
            self.end_reason = f"video ended early: read {index} of about {expected} frames (truncated or corrupt)"

    def close(self) -> None:
        self.cap.release()


def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


class FrameFolderSource(Source):
    """A folder of numbered images (e.g. a 200 fps research clip), at ``fps``.

    One rule for unreadable images wherever they are, first or middle: skipped (their
    index and time stay reserved, so timing holds) and counted in ``end_notes``; only
    a folder with no readable image at all is refused."""

    def __init__(self, folder: str | Path, fps: float | None) -> None:
        folder = Path(folder)
        if folder.is_file():
            raise UserError(f"{folder} is a file, not a folder of images (for a video file: --video {folder})")
        if not folder.is_dir():
            raise UserError(f"no such folder: {folder}")
        if fps is None:
            raise UserError("an image sequence needs its frame rate: pass --fps F (e.g. --fps 200)")
        fps = check_fps(fps)
        self.paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.paths:
            raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        first = self._first_readable()
        if first is None:
            raise UserError(f"none of the {len(self.paths)} images in {folder} can be read (corrupt, or not images)")
        h, w = first.shape[:2]
        self.info = SourceInfo(str(folder), fps, w, h, live=False, n_frames=len(self.paths))

    def _first_readable(self) -> np.ndarray | None:
        for path in self.paths:
            image = cv2.imread(str(path))
            if image is not None:
                return image
        return None

    def frames(self) -> Iterator[Frame]:
        same_size = _SameSize(self.info.width, self.info.height)
        skipped: list[Path] = []
        for index, path in enumerate(self.paths):
            image = cv2.imread(str(path))
            if image is None:
                skipped.append(path)
                log.debug("skipping unreadable image %s", path)
                continue
            yield Frame(index, index / self.info.fps, same_size(image))
        notes = same_size.note("images")
        if skipped:
            notes.insert(0, f"{len(skipped)} unreadable images skipped (first: {skipped[0].name})")
        self.end_notes = tuple(notes)


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
        frames = (Frame(index, index / fps, image) for index, image in enumerate(self.clip.frames()))
        return paced(frames, fps) if self.realtime else frames


def open_source(
    camera: int | None = None,
    video: str | None = None,
    frames: str | None = None,
    demo: bool = False,
    fps: float | None = None,
    width: int | None = None,
    height: int | None = None,
    realtime: bool = True,
    seed: int = 7,
) -> Source:
    """Open exactly one source from the CLI's options (``None``: not given)."""
    chosen = [name for name, v in (("--camera", camera is not None), ("--video", video), ("--frames", frames),
                                   ("--demo", demo)) if v]
    if len(chosen) > 1:
        raise UserError(f"pick one source, not {' and '.join(chosen)}")
    _check_flags(chosen[0] if chosen else "--camera", fps, width, height)
    if camera is not None:
        return CameraSource(camera, width or 640, height or 480, fps or 30.0)
    if video:
        return VideoSource(video, realtime=realtime)
    if frames:
        return FrameFolderSource(frames, fps)
    if demo:
        return DemoSource(seed=seed, fps=fps or 30.0, realtime=realtime)
    try:  # no source given: the default camera, as a webcam user expects
        return CameraSource(0, width or 640, height or 480, fps or 30.0)
    except UserError:
        raise UserError(
            "no source given and no camera 0 on this machine: pass --camera N for another webcam, "
            "--video PATH for a file, --frames DIR --fps F for an image sequence, or --demo for the built-in clip"
        ) from None


def _check_flags(source: str, fps: float | None, width: int | None, height: int | None) -> None:
    """Refuse a flag the chosen source would ignore, and out-of-range numbers, in one line."""
    ignored = [flag for flag, v, used_by in (("--fps", fps, ("--camera", "--frames", "--demo")),
                                            ("--width", width, ("--camera",)), ("--height", height, ("--camera",)))
               if v is not None and source not in used_by]
    if ignored:
        why = "a video has its own frame rate and size" if source == "--video" else "only a camera is asked for a size"
        one = len(ignored) == 1
        raise UserError(f"{' and '.join(ignored)} {'does' if one else 'do'} not apply to {source} ({why}); "
                        f"drop {'it' if one else 'them'}")
    if fps is not None:
        check_fps(fps)
    for flag, v in (("--width", width), ("--height", height)):
        if v is not None:
            check_size(v, flag)

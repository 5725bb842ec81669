"""Writing a clip out: a video, a .y4m (Chromium's fake camera) or PNG frames, plus its truth JSON.

The output kind follows from how the path is spelled, so callers (the CLI, the
browser harness, the tests) never pass a format.
"""
from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path

import cv2

from ..errors import UserError
from .plan import SynthConfig
from .render import SynthClip

VIDEO_FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
_FRAME_NAME = re.compile(r"^\d{6}\.png$")


def output_kind(out: str | Path) -> str:
    """"dir" (PNG frames), "y4m" or "video", from how ``out`` is spelled."""
    s = str(out)
    p = Path(s)
    if s.endswith(("/", os.sep)) or p.is_dir() or p.suffix == "":
        return "dir"
    if p.suffix.lower() == ".y4m":
        return "y4m"
    if p.suffix.lower() in VIDEO_FOURCC:
        return "video"
    raise UserError(f"unsupported output {p.name}: use .mp4, .mov, .avi, .mkv, .y4m or a folder (DIR/)")


def truth_path(out: str | Path) -> Path:
    """Where write_clip puts the ground truth for ``out``."""
    return Path(out) / "truth.json" if output_kind(out) == "dir" else Path(out).with_suffix(".json")


def write_clip(cfg: SynthConfig, out: str | Path, progress: bool = True) -> dict:
    """Render ``cfg`` to a video (.mp4/.mov/.avi/.mkv), a .y4m or a PNG folder, plus the JSON truth."""
    kind = output_kind(out)
    out = Path(out)
    if kind != "dir" and (cfg.width % 2 or cfg.height % 2):   # encoders would crop it silently
        raise UserError(f"{out.suffix} is 4:2:0 video and needs an even frame size, got {cfg.width}x{cfg.height}")
    clip = SynthClip(cfg)
    (out if kind == "dir" else out.parent).mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    frames = tqdm(clip.frames(), total=clip.n_frames, desc=f"synth {out.name}", unit="frame",
                  disable=not progress, leave=False)
    if kind == "dir":
        _write_pngs(frames, out)
    elif kind == "y4m":
        _write_y4m(frames, out, clip.width, clip.height, clip.fps)
    else:
        _write_video(frames, out, clip.width, clip.height, clip.fps)
    truth = dict(clip.truth, video=out.name if kind != "dir" else ".")
    truth_path(out).write_text(json.dumps(truth, indent=1))
    return truth


def _write_pngs(frames, out: Path) -> None:
    for old in out.iterdir():   # a shorter re-run must not leave stale frames behind
        if _FRAME_NAME.match(old.name):
            old.unlink()
    for i, img in enumerate(frames):
        if not cv2.imwrite(str(out / f"{i:06d}.png"), img, [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise UserError(f"cannot write frames into {out}")


def y4m_header(width: int, height: int, fps: float) -> bytes:
    """YUV4MPEG2 header for 8-bit 4:2:0 (what Chromium's fake camera reads)."""
    rate = Fraction(fps).limit_denominator(1001)
    return f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode()


def _write_y4m(frames, out: Path, width: int, height: int, fps: float) -> None:
    with open(out, "wb") as f:
        f.write(y4m_header(width, height, fps))
        for img in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420).tobytes())   # BT.601 limited range


def _write_video(frames, out: Path, width: int, height: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*VIDEO_FOURCC[out.suffix.lower()]),
                             fps, (width, height))
    if not writer.isOpened():
        raise UserError(f"OpenCV cannot write {out} (no {VIDEO_FOURCC[out.suffix.lower()]} encoder?)")
    try:
        for img in frames:
            writer.write(img)
    finally:
        writer.release()

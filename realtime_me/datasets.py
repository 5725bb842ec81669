"""Lists of pre-segmented micro-expression samples for ``realtime-me recognise --dataset``.

Two formats, told apart by the file's suffix:

* ``.csv`` with a header row. Columns (any order; unknown ones are ignored):

  ==========  ========  ==========================================================
  column      required  meaning
  ==========  ========  ==========================================================
  sample      yes       the sample's name (unique)
  path        yes       a folder of frames or a video file, relative to the CSV
  fps         folders   frame rate; for a video, empty means the file's own rate
  onset       no        onset as a position in the sorted frame list (default 0)
  apex        no        coded apex position (default: found from the motion)
  offset      no        offset position (default: the last frame)
  label       no        coded emotion, one of the model's classes (enables UF1/UAR)
  aus         no        coded AUs, e.g. ``4+7+L10``
  dataset     no        dataset name, for per-dataset scores (default ``unknown``)
  subject     no        subject id (default: the sample name)
  ==========  ========  ==========================================================

* ``clips.json`` in the realclips layout: a list of objects with ``sample``, ``fps``
  and optionally ``dataset``, ``subject``, ``emotion`` (the label), ``aus``,
  ``n_frames``, ``onset``, ``apex``, ``offset`` (null: unknown); the frames of each
  clip are in the folder named ``sample`` beside the file (or ``path`` if given).

Everything a list can get wrong without opening a frame (missing columns, files or
folders, bad numbers, duplicate names) is a ``UserError`` naming the line, raised
before any work starts.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from .data import parse_aus
from .errors import UserError

CSV_REQUIRED = ("sample", "path")


@dataclass(frozen=True)
class Sample:
    """One pre-segmented sample: where its frames are and what the coders said about it."""

    name: str
    path: Path                       # folder of frames or video file
    fps: float | None                # None: a video's own rate
    onset: int | None = None         # positions in the sorted frame list
    apex: int | None = None
    offset: int | None = None
    label: str | None = None         # coded emotion
    aus: tuple[str, ...] = ()
    dataset: str = "unknown"
    subject: str = ""
    n_frames: int | None = None      # what the list says the clip holds (checked when read)
    origin: str = ""                 # "file:line" for messages


def _position(value, what: str, where: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    try:
        pos = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise UserError(f"{where}: {what} {value!r} is not a frame position (an integer)") from None
    if isinstance(value, bool) or pos < 0:
        raise UserError(f"{where}: {what} {value!r} must be a frame position >= 0")
    return pos


def _fps(value, where: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        fps = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: fps {value!r} is not a number") from None
    if not 0 < fps <= 1000:
        raise UserError(f"{where}: fps {value!r} must be a positive frame rate")
    return fps


def _sample(fields: dict, root: Path, where: str, default_path: str | None = None) -> Sample:
    name = str(fields.get("sample") or "").strip()
    if not name:
        raise UserError(f"{where}: empty sample name")
    rel = str(fields.get("path") or default_path or "").strip()
    if not rel:
        raise UserError(f"{where}: sample {name} has no path")
    path = Path(rel) if Path(rel).is_absolute() else root / rel
    if not path.exists():
        raise UserError(f"{where}: sample {name}: {path} not found")
    fps = _fps(fields.get("fps"), where)
    if fps is None and path.is_dir():
        raise UserError(f"{where}: sample {name} is a folder of frames and needs its fps")
    label = str(fields.get("label") or "").strip() or None
    n = fields.get("n_frames")
    return Sample(
        name=name, path=path, fps=fps,
        onset=_position(fields.get("onset"), "onset", where), apex=_position(fields.get("apex"), "apex", where),
        offset=_position(fields.get("offset"), "offset", where), label=label,
        aus=parse_aus(str(fields.get("aus") or "")), dataset=str(fields.get("dataset") or "").strip() or "unknown",
        subject=str(fields.get("subject") or "").strip() or name,
        n_frames=_position(n, "n_frames", where) if n not in (None, "") else None, origin=where)


def read_csv(path: Path) -> list[Sample]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{path}: missing column(s) {', '.join(missing)} (columns: sample, path, fps, "
                            "optional onset, apex, offset, label, aus, dataset, subject)")
        return [_sample(row, path.parent, f"{path}:{line}") for line, row in enumerate(reader, start=2)]


def read_clips_json(path: Path) -> list[Sample]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UserError(f"{path}: expected a list of clip objects (the realclips clips.json layout)")
    out = []
    for i, item in enumerate(items):
        fields = dict(item)
        fields.setdefault("label", item.get("emotion"))
        out.append(_sample(fields, path.parent, f"{path}: clip {i}", default_path=str(item.get("sample") or "")))
    return out


def read_samples(path: str | Path) -> list[Sample]:
    """Parse a sample list (``.csv`` or realclips ``clips.json``); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such dataset file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        samples = read_csv(path)
    elif suffix == ".json":
        samples = read_clips_json(path)
    else:
        raise UserError(f"{path}: a dataset is a .csv sample list or a clips.json, "
                        f"not {suffix or 'a file without suffix'}")
    if not samples:
        raise UserError(f"{path}: no samples")
    seen: dict[str, str] = {}
    for s in samples:
        if s.name in seen:
            raise UserError(f"{s.origin}: sample name {s.name} repeats {seen[s.name]}")
        seen[s.name] = s.origin
    return samples

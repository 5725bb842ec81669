"""``realtime-me spot-eval --real DIR``: the live pipeline and ``recognise`` on real ME clips.

Research databases hand out one folder per sample, from the coded onset to the coded
offset (``DIR/clips.json`` in the realclips layout, see ``datasets.read_clips_json``).
Each clip runs through the same ``Pipeline`` the CLI uses, twice:

- **as it comes**: the frames onset..offset and nothing else;
- **embedded**: between one second of its first frame held still and one second of its
  last frame held still (what a recording around the sample would give at best).

A clip is *spotted* when a micro window matches the coded onset..offset with IoU >= 0.5
(the MEGC rule, ``metrics.match``). For the best-matching micro window: apex error
against the coded apex, emotion against the coded one, and which coded AUs it reported.
``recognise`` runs on the same clip with its own apex and with the coded one.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .datasets import Sample, read_samples
from .errors import UserError
from .sources import Source, SourceInfo
from .types import Event, Frame

log = logging.getLogger(__name__)

HOLD_S = 1.0


class ClipSource(Source):
    """A pre-segmented sample as an offline source, optionally between ``hold`` frames of
    its first and last frame held still. Frame indices count from the first frame this
    source yields, so the coded onset sits at ``hold``."""

    def __init__(self, sample: Sample, hold: int = 0) -> None:
        from .recognise import SampleFrames

        self.frames_of = SampleFrames(sample)
        self.hold = hold
        inner = self.frames_of.source.info
        self.info = SourceInfo(f"{sample.name}" + (f" (+{hold} held frames each side)" if hold else ""),
                               self.frames_of.fps, inner.width, inner.height, live=False,
                               n_frames=self.frames_of.n_frames + 2 * hold)

    def frames(self) -> Iterator[Frame]:
        fps, i, last = self.info.fps, 0, None
        for frame in self.frames_of.frames():
            if last is None:
                for _ in range(self.hold):
                    yield Frame(i, i / fps, frame.image)
                    i += 1
            yield Frame(i, i / fps, frame.image)
            i, last = i + 1, frame.image
        for _ in range(self.hold if last is not None else 0):
            yield Frame(i, i / fps, last)
            i += 1


@dataclass
class LiveResult:
    """What the live pipeline made of one clip, in the clip's own positions (0 = coded onset)."""

    spotted: bool
    iou: float | None
    kind: str | None              # of the best-matching window (any kind)
    onset: int | None
    apex: int | None
    offset: int | None
    apex_error_ms: float | None
    emotion: str | None
    aus: list[str]
    windows: list[dict]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _au_numbers(names) -> set[str]:
    return {str(a).upper().removeprefix("AU").lstrip("0") or "0" for a in names}


def score_live(events: list[Event], sample: Sample, hold: int, fps: float) -> LiveResult:
    """Events of one run against the coded interval (positions shifted by ``hold``)."""
    from .metrics import interval, iou, match

    onset = (sample.onset or 0) + hold
    offset = (sample.offset if sample.offset is not None else (sample.n_frames or 1) - 1) + hold
    truth = (onset, offset)
    wins = [interval(e) for e in events]
    micro = [i for i, e in enumerate(events) if e.window.kind == "micro"]
    m = match([wins[i] for i in micro], [truth])
    best = max(range(len(events)), key=lambda i: iou(wins[i], truth), default=None)
    if m.pairs:
        best = micro[m.pairs[0][0]]
    rows = [{"kind": e.window.kind, "onset": e.window.onset_index - hold, "apex": e.window.apex_index - hold,
             "offset": e.window.offset_index - hold, "emotion": e.emotion, "iou": round(iou(w, truth), 3)}
            for e, w in zip(events, wins)]
    if best is None:
        return LiveResult(False, None, None, None, None, None, None, None, [], rows)
    e = events[best]
    apex_err = None if sample.apex is None else (e.window.apex_index - hold - sample.apex) / fps * 1e3
    return LiveResult(bool(m.pairs), round(iou(wins[best], truth), 3), e.window.kind, e.window.onset_index - hold,
                      e.window.apex_index - hold, e.window.offset_index - hold,
                      None if apex_err is None else round(apex_err, 1), e.emotion, sorted(e.aus), rows)


def run_live(sample: Sample, hold: int, weights: str | None, backend: str) -> LiveResult:
    from .pipeline import Pipeline, PipelineConfig

    source = ClipSource(sample, hold)
    pipeline = Pipeline(PipelineConfig(weights=weights, backend=backend))
    with source:
        result = pipeline.run(source)
    pipeline.close()
    return score_live(result.events, sample, hold, source.info.fps)


def evaluate(folder: Path, weights: str | None = None, backend: str = "auto", progress: bool = True) -> dict:
    """Every clip of ``folder/clips.json``: live as it comes, live embedded, recognise (own and coded apex)."""
    from tqdm import tqdm

    from .classify import Classifier
    from .engines import DEFAULT_WEIGHTS, load_engine
    from .recognise import recognise

    index = folder / "clips.json" if folder.is_dir() else folder
    if not index.is_file():
        raise UserError(f"--real {folder}: no clips.json there (the realclips layout: one folder of frames per clip)")
    samples = read_samples(index)
    classifier = Classifier(load_engine(weights or DEFAULT_WEIGHTS, backend))
    t0, clips = time.perf_counter(), []
    for s in tqdm(samples, desc="real clips", unit="clip", disable=not progress, file=sys.stderr):
        hold = int(round(HOLD_S * s.fps))
        coded_aus = sorted(_au_numbers(s.aus))
        row = {"sample": s.name, "dataset": s.dataset, "fps": s.fps, "emotion": s.label, "coded_aus": coded_aus,
               "onset": s.onset, "apex": s.apex, "offset": s.offset}
        for name, h in (("as_it_comes", 0), ("embedded", hold)):
            live = run_live(s, h, weights, backend)
            row[name] = {**live.to_dict(), "emotion_correct": live.emotion is not None and live.emotion == s.label,
                         "aus_recalled": sorted(_au_numbers(live.aus) & set(coded_aus))}
        for name, own in (("recognise_own_apex", True), ("recognise_coded_apex", False)):
            r = recognise(s, classifier, own_apex=own, progress=False).to_dict()
            row[name] = {"emotion": r["emotion"], "correct": r["correct"], "apex": r["apex"],
                         "apex_error_ms": r["motion_apex_error_ms"] if own else None,
                         "aus_recalled": sorted(_au_numbers(r["aus"]) & set(coded_aus))}
        clips.append(row)
    return {"folder": str(folder), "clips": clips, "summary": summarise(clips),
            "seconds": round(time.perf_counter() - t0, 1), "hold_s": HOLD_S}


def summarise(clips: list[dict]) -> dict:
    n = len(clips)

    def count(key, test) -> str:
        return f"{sum(bool(test(c[key])) for c in clips)}/{n}"

    out = {}
    for key in ("as_it_comes", "embedded"):
        out[key] = {"spotted_micro": count(key, lambda r: r["spotted"]),
                    "spotted_and_right_emotion": count(key, lambda r: r["spotted"] and r["emotion_correct"])}
    for key in ("recognise_own_apex", "recognise_coded_apex"):
        out[key] = {"correct": count(key, lambda r: r["correct"])}
    errs = [abs(c["recognise_own_apex"]["apex_error_ms"]) for c in clips
            if c["recognise_own_apex"]["apex_error_ms"] is not None]
    out["recognise_own_apex"]["apex_within_30ms"] = f"{sum(e <= 30 for e in errs)}/{len(errs)}"
    return out


def table(result: dict) -> str:
    """The README's table."""
    head = ("| clip | coded | as it comes | embedded | recognise, own apex | recognise, coded apex |\n"
            "| --- | --- | --- | --- | --- | --- |")
    lines = [head]

    def live(r: dict) -> str:
        if r["kind"] is None:
            return "nothing"
        what = f"{r['kind']} {r['onset']}-{r['apex']}-{r['offset']} IoU {r['iou']:.2f}"
        return (f"**{what}**, {r['emotion']}" if r["spotted"] else what)

    for c in result["clips"]:
        own, coded = c["recognise_own_apex"], c["recognise_coded_apex"]
        err = "" if own["apex_error_ms"] is None else f" ({own['apex_error_ms']:+.0f} ms)"
        lines.append(f"| {c['sample']} | {c['emotion']} {c['onset']}-{c['apex']}-{c['offset']} | "
                     f"{live(c['as_it_comes'])} | {live(c['embedded'])} | {own['emotion']}{err} | {coded['emotion']} |")
    return "\n".join(lines)

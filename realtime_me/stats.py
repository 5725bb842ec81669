"""Run statistics: frame counts, throughput and per-stage latency percentiles."""
from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


class StageTimes:
    """Latency samples of one stage; keeps the last ``keep`` for percentiles, max over all."""

    def __init__(self, keep: int = 20000) -> None:
        self.samples: deque[float] = deque(maxlen=keep)
        self.count = 0
        self.max = 0.0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self.count += 1
        self.max = max(self.max, seconds)

    def copy(self) -> "StageTimes":
        """A detached copy (cheap: taken under the lock the recording threads use)."""
        out = StageTimes(self.samples.maxlen or 0)
        out.samples.extend(self.samples)
        out.count, out.max = self.count, self.max
        return out

    def summary(self) -> dict:
        if not self.samples:
            return {"count": 0}
        a = np.fromiter(self.samples, dtype=np.float64) * 1e3
        return {"count": self.count, "p50_ms": round(float(np.percentile(a, 50)), 3),
                "p95_ms": round(float(np.percentile(a, 95)), 3), "max_ms": round(self.max * 1e3, 3),
                "mean_ms": round(float(a.mean()), 3)}


@dataclass
class Stats:
    """Counters shared by the pipeline's threads (each counter has one writer)."""

    frames_in: int = 0
    frames_processed: int = 0
    frames_with_face: int = 0
    mesh_runs: int = 0               # frames the face mesh ran on (the others carried its points)
    frames_dropped: int = 0
    classifications_dropped: int = 0
    max_faces_seen: int = 0
    face_lost_spans: list[dict] = field(default_factory=list)
    stages: dict[str, StageTimes] = field(default_factory=dict)
    #: CPU seconds each pipeline thread used (set when it ends): on a shared machine CPU time
    #: per frame says what the path costs when wall-clock figures only say how busy the machine was
    thread_cpu_s: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def timed(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.stages.setdefault(stage, StageTimes()).add(seconds)

    @property
    def wall_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def fps_processed(self) -> float:
        return self._fps(self.wall_s)

    def _fps(self, wall: float) -> float:
        return round(self.frames_processed / wall, 2) if wall > 0 else 0.0

    def to_dict(self) -> dict:
        wall = self.wall_s
        with self._lock:   # copy only: the percentiles are computed without holding up the stages
            copies = {name: st.copy() for name, st in self.stages.items()}
        stages = {name: st.summary() for name, st in copies.items()}
        return {
            "frames_in": self.frames_in,
            "frames_processed": self.frames_processed,
            "frames_with_face": self.frames_with_face,
            "mesh_runs": self.mesh_runs,
            "frames_dropped": self.frames_dropped,
            "classifications_dropped": self.classifications_dropped,
            "max_faces_seen": self.max_faces_seen,
            "face_lost_spans": list(self.face_lost_spans),
            "wall_s": round(wall, 3),
            "fps_processed": self._fps(wall),
            "thread_cpu_s": {k: round(v, 3) for k, v in self.thread_cpu_s.items()},
            "latency": stages,
        }

    def format(self) -> str:
        d = self.to_dict()
        lines = [f"frames in {d['frames_in']}, processed {d['frames_processed']} "
                 f"({d['frames_with_face']} with a face, face mesh on {d['mesh_runs']}), dropped {d['frames_dropped']}; "
                 f"{d['fps_processed']} fps over {d['wall_s']} s"]
        for name, s in d["latency"].items():
            if s.get("count"):
                lines.append(f"  {name:<10} p50 {s['p50_ms']:7.2f} ms  p95 {s['p95_ms']:7.2f} ms  max {s['max_ms']:7.2f} ms  (n={s['count']})")
        if d["face_lost_spans"]:
            spans = ", ".join(f"{s['start_s']:.2f}-{s['end_s']:.2f} s" for s in d["face_lost_spans"][:10])
            more = len(d["face_lost_spans"]) - 10
            lines.append(f"  no face: {spans}" + (f" (+{more} more)" if more > 0 else ""))
        if d["max_faces_seen"] > 1:
            lines.append(f"  up to {d['max_faces_seen']} faces seen; followed the largest")
        return "\n".join(lines)

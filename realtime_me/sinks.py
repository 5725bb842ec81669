"""Where events go: the console, a JSON-lines file, and anything else callable."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

from .errors import UserError
from .types import Event


def format_event(e: Event) -> str:
    """One console line per event."""
    w = e.window
    head = f"[{w.apex_t:8.2f} s] {w.kind.upper():5} {e.emotion or 'unclassified':<12}"
    if e.emotion:
        head += f" {e.confidence:4.0%}"
    parts = [head, f"frames {w.onset_index}-{w.apex_index}-{w.offset_index}", f"{w.duration * 1e3:4.0f} ms"]
    aus = [k for k, _ in sorted(e.aus.items(), key=lambda kv: -kv[1])[:3]]
    if aus:
        parts.append("AUs " + ",".join(aus))
    cues = [k for k, v in sorted(w.regions.items(), key=lambda kv: -kv[1])[:2] if v > 0]
    if cues:
        parts.append("moved " + ",".join(cues))
    parts.append(f"latency {e.latency_s * 1e3:.0f} ms")
    return "  ".join(parts)


class ConsoleSink:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        print(format_event(event), file=self.stream, flush=True)


class JsonlSink:
    """One JSON object per event, flushed as it happens so Ctrl-C loses nothing.

    A write failure (disk full, ...) must not stop the run or flood the console: it is
    reported once through ``warn``, kept in ``error``, and later events are only counted
    in ``lost``."""

    def __init__(self, path: str | Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = self.path.open("w", encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write --events {self.path}: {e.strerror or e}") from None
        self._lock = threading.Lock()
        self._warn = warn or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.written = 0
        self.lost = 0
        self.error: OSError | None = None

    def __call__(self, event: Event) -> None:
        with self._lock:
            if self.error is not None:
                self.lost += 1
                return
            try:
                self._f.write(json.dumps(event.to_dict()) + "\n")
                self._f.flush()
                self.written += 1
            except OSError as e:
                self.lost += 1
                self._failed(e)

    def _failed(self, e: OSError) -> None:
        self.error = e
        self._warn(f"realtime-me: warning: cannot write events to {self.path}: {e.strerror or e}; "
                   "the run goes on without them")

    def close(self) -> None:
        with self._lock:
            try:
                self._f.close()
            except OSError as e:  # the last flush failed: already reported if it was the same failure
                if self.error is None:
                    self._failed(e)

"""Where events go: the console, a JSON-lines file, and anything else callable."""
from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Callable, TextIO

from .describe import console_line, to_json
from .errors import UserError
from .types import Event


class ConsoleSink:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, event: Event) -> None:
        print(console_line(event), file=self.stream, flush=True)


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
                self._f.write(json.dumps(to_json(event)) + "\n")
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

"""A wire-level client of the demo server, for scripts, load tests and benchmarks: no
browser and no Gradio client, just HTTP to Gradio's queue and the frame socket, the way
an attacker would talk to it too. ``ServerProcess`` runs ``realtime-me serve`` on
127.0.0.1 in a subprocess to point it at."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


class ServerProcess:
    """``realtime-me serve --port 0 ...`` in a subprocess, on 127.0.0.1 (the default host)."""

    def __init__(self, *args: str, timeout: float = 120.0) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "realtime_me.cli", "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        self.lines: list[str] = []
        self.url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            m = re.search(r"demo: (http://localhost:(\d+))(/\?key=(\S+))?", line)
            if m:
                self.url, self.port, self.key = f"http://127.0.0.1:{m.group(2)}", int(m.group(2)), m.group(4)
                break
        if self.url is None:
            self.close()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        # keep reading its output, so a chatty server never blocks on a full pipe
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        self.http = httpx.Client(base_url=self.url, timeout=60)
        # wait until the app answers (uvicorn binds before Gradio's startup events finish)
        while time.monotonic() < deadline:
            try:
                if self.http.get("/config").status_code in (200, 401):
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)

    def fn_index(self, api_name: str, key: str | None = None) -> tuple[int, int]:
        cfg = self.http.get("/config", params={"key": key} if key else None).json()
        dep = next(d for d in cfg["dependencies"] if d.get("api_name") == api_name)
        return dep["id"], dep["targets"][0][0] if dep["targets"] and dep["targets"][0][0] is not None else 0

    def call(self, api_name: str, data: list, session_hash: str, http: httpx.Client | None = None) -> dict:
        """Join Gradio's queue for one event and read its stream to the end: the last message."""
        http = http or self.http
        fn, trigger = self.fn_index(api_name)
        r = http.post("/gradio_api/queue/join", json={"data": data, "event_data": None, "fn_index": fn,
                                                       "trigger_id": trigger, "session_hash": session_hash})
        if r.status_code != 200:
            return {"msg": "refused", "status": r.status_code, "text": r.text}
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session_hash}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    m = json.loads(line[5:])
                    if m.get("msg") in ("process_completed", "queue_full", "unexpected_error"):
                        return m
        return {"msg": "no answer"}

    def session_token(self, session_hash: str) -> str | None:
        m = self.call("on_load", [], session_hash)
        return m["output"]["data"][0] if m.get("success") else None

    def status(self) -> dict[str, int]:
        """The server process's RSS (kB) and threads, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "Threads"):
                fields[k] = int(v.split()[0])
        return fields

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

"""Everything the page shows, built from ``Pipeline.snapshot()`` and events: the live
view the frame socket sends (annotated frame, motion chart), the event table, the state
and delivery/latency panels, the video analysis's summary and timeline, and the result
files. The handlers (``app``, ``routes``) only pick which to send when."""
from __future__ import annotations

import csv
import html
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import cv2
import numpy as np
from matplotlib.figure import Figure

from ..overlay import draw_snapshot
from .. import describe
from ..types import EMOTIONS, Event

if TYPE_CHECKING:
    from ..pipeline import RunResult, Snapshot

EVENT_HEADERS = describe.TABLE_HEADERS
#: the spotter's motion is in thresholds: 1.0 is at threshold in every region
THRESHOLD = 1.0
#: how long an ME stays on the state panel after its apex (s)
STATE_HOLD_S = 2.5
KIND_COLOURS = {"micro": "#f59e0b", "macro": "#94a3b8"}
EMOTION_COLOURS = {"negative": "#dc2626", "positive": "#16a34a", "surprise": "#2563eb", "unclassified": "#f59e0b"}
#: one colour per facial region, in the live chart and the video plot alike
REGION_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#ad494a")


def region_colour(j: int) -> str:
    return REGION_COLOURS[j % len(REGION_COLOURS)]


def event_rows(events: list[Event], time_of: Callable[[float], float] = float, newest_first: bool = True) -> list[list]:
    rows = [describe.table_row(e, time_of) for e in events]
    return rows[::-1] if newest_first else rows


# ------------------------------------------------------------------------- live view
@dataclass(frozen=True)
class LiveView:
    """What the frame socket sends back for one snapshot."""

    jpeg: bytes | None    # the annotated frame; None when no new frame was processed
    index: int | None     # the frame the page now shows
    chart: dict | None    # ``motion_payload``, when asked for


def live_view(snap: "Snapshot", time_of: Callable[[float], float], fps: float, last_index: int | None,
              with_chart: bool, quality: int = 80) -> LiveView:
    """The last processed frame annotated by ``draw_overlay`` (landmarks, motion bar, last
    event, ``fps`` received) as JPEG unless the page already shows frame ``last_index``;
    and the motion chart's data when asked."""
    chart = motion_payload(snap, time_of) if with_chart else None
    frame = snap.frame
    if frame is None or frame.index == last_index:
        return LiveView(None, last_index, chart)
    ok, buf = cv2.imencode(".jpg", draw_snapshot(snap, fps), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return LiveView(buf.tobytes() if ok else None, frame.index, chart)


# ------------------------------------------------------------------------------ plots
def motion_payload(snap: "Snapshot", time_of: Callable[[float], float], span_s: float = 10.0, max_points: int = 160) -> dict:
    """The live chart's data (drawn by the page's script, so a refresh costs neither the server a
    render nor the page a re-layout): last ``span_s`` s of per-region motion in thresholds, the
    max, the threshold, and the spotted intervals, in seconds since the camera started."""
    t = np.array([time_of(x) for x in snap.t], dtype=float)
    names = list(snap.region_names)
    out = {"type": "motion", "names": names, "colours": [region_colour(j) for j in range(len(names))], "t": [], "regions": [], "value": [],
           "threshold": THRESHOLD, "windows": [], "span": span_s}
    if not len(t):
        return out
    idx = np.flatnonzero(t >= t[-1] - span_s)
    idx = idx[::-1][::max(1, len(idx) // max_points)][::-1]
    r3 = lambda a: np.round(np.asarray(a, dtype=float), 3).tolist()  # noqa: E731
    regions = snap.regions
    out.update(t=r3(t[idx]), value=r3(snap.value[idx]),
               regions=[r3(regions[idx, j]) for j in range(regions.shape[1])] if regions.ndim == 2 else [])
    labels = {id(e.window): (e.emotion or "ME") for e in snap.events}
    for w in snap.windows:
        a, b = time_of(w.onset_t), time_of(w.offset_t)
        if b >= t[idx[0]]:
            out["windows"].append({"a": round(a, 3), "b": round(b, 3), "kind": w.kind,
                                   "label": labels.get(id(w), "") if w.kind == "micro" else ""})
    return out


def timeline_figure(snap: "Snapshot", events: list[Event], truth: list[dict] | None = None) -> Figure:
    """The whole analysed video: motion per region (1 = threshold), the max and the threshold,
    spotted intervals (orange ME with its emotion, grey macro) and, for the demo clip (its
    ``truth["events"]``), the true MEs (green ticks on the time axis)."""
    fig = Figure(figsize=(10, 3.6), dpi=90, layout="constrained")
    ax = fig.add_subplot(111)
    t = np.asarray(snap.t, dtype=float)
    regions = snap.regions
    if len(t) and regions.ndim == 2 and regions.shape[0] == len(t):
        for j, name in enumerate(snap.region_names):
            ax.plot(t, regions[:, j], lw=0.8, alpha=0.75, label=name, color=region_colour(j))
    if len(t):
        ax.plot(t, snap.value, lw=1.6, color="black", label="motion (max)")
        ax.axhline(THRESHOLD, lw=1.2, ls="--", color="#dc2626", label="threshold")
        ax.set_ylim(0, min(12.0, max(2.0, float(np.max(snap.value)) * 1.1)))
    for e in truth or []:
        if e["kind"] == "micro":
            ax.axvspan(e["onset_s"], e["offset_s"], ymin=0.0, ymax=0.05, color="#16a34a", alpha=0.9, lw=0)
    for e in events:
        w = e.window
        ax.axvspan(w.onset_t, w.offset_t, color=KIND_COLOURS.get(w.kind, "#94a3b8"), alpha=0.3, lw=0)
        if w.kind == "micro":
            ax.annotate(e.emotion or "ME", (w.apex_t, 1.0), xycoords=("data", "axes fraction"), ha="center",
                        va="bottom", fontsize=8, color=EMOTION_COLOURS.get(e.emotion or "unclassified"))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("motion / threshold")
    ax.grid(alpha=0.25)
    fig.legend(loc="outside lower center", fontsize=7, ncol=6, frameon=False)
    return fig


# ------------------------------------------------------------------------- panels
def state_html(snap: "Snapshot", streaming: bool, time_of: Callable[[float], float]) -> str:
    """Neutral / ME (emotion, confidence) / no face / camera off, as one big badge."""
    if not streaming:
        label, colour, detail = "camera off", "#64748b", "press Start camera"
    elif snap.frame is None:
        label, colour, detail = "waiting for frames", "#64748b", ""
    elif snap.landmarks is None:
        label, colour, detail = "no face", "#64748b", "face the camera"
    else:
        label, colour, detail = "neutral", "#0f766e", ""
        now = snap.frame.t
        recent = [e for e in snap.events if e.window.kind == "micro" and now - e.window.apex_t <= STATE_HOLD_S]
        if recent:
            e = recent[-1]
            emo = e.emotion or "unclassified"
            label = f"ME: {emo}" + (f" {e.confidence:.0%}" if e.emotion else "")
            colour = EMOTION_COLOURS.get(emo, "#f59e0b")
            aus = describe.au_text(e)
            detail = f"at {time_of(e.window.apex_t):.2f} s, {e.window.duration * 1e3:.0f} ms" + (f", {aus}" if aus else "")
    return (f'<div class="rtme-state" data-state="{html.escape(label)}" style="border-color:{colour};color:{colour}">'
            f'<span class="rtme-state-label">{html.escape(label)}</span>'
            f'<span class="rtme-state-detail">{html.escape(detail)}</span></div>')


def _fmt(v, unit: str = "", digits: int = 0) -> str:
    return "-" if v is None else f"{v:.{digits}f}{unit}"


def stats_html(snap: "Snapshot", link: dict | None, note: str = "") -> str:
    """Frame delivery, drops and latency. Values also sit in data-k attributes for scripts."""
    s = snap.stats if snap else {}
    link = link or {}
    lat = s.get("latency", {})
    per_frame = sum(lat[k]["p50_ms"] for k in ("landmarks", "align", "spot") if lat.get(k, {}).get("count"))
    lag = None
    if snap and snap.frame is not None and snap.frame.arrival:
        lag = (time.perf_counter() - snap.frame.arrival) * 1e3
    last_event_lat = snap.events[-1].latency_s * 1e3 if snap and snap.events else None
    client = link.get("client", {})
    items = [
        ("fps_received", "received", _fmt(link.get("fps_received"), " fps", 1) + f" of {link.get('camera_fps', 0):g}"),
        ("fps_processed", "processed", _fmt(s.get("fps_processed"), " fps", 1)),
        ("frames_in", "frames into the pipeline", str(s.get("frames_in", 0))),
        ("delivery", "delivered", _fmt(None if link.get("delivery") is None else 100 * link["delivery"], " %", 1)),
        ("gaps", "dropped in the browser", str(link.get("gaps", 0))),
        ("frames_dropped", "dropped by the pipeline (ring full)", str(s.get("frames_dropped", 0))),
        ("capture_ms", "capture -> server", _fmt(link.get("capture_to_server_ms_p50"), " ms") + " p50 / "
         + _fmt(link.get("capture_to_server_ms_p95"), " ms") + " p95"),
        ("processing_ms", "processing per frame", _fmt(per_frame or None, " ms", 1) + " p50"),
        ("lag_ms", "pipeline lag", _fmt(lag, " ms")),
        ("event_ms", "last event decided after apex", _fmt(last_event_lat, " ms")),
        ("encode_ms", "browser JPEG encode", _fmt(client.get("encode_ms"), " ms", 1)),
    ]
    raw = {"frames_in": s.get("frames_in", 0), "frames_processed": s.get("frames_processed", 0),
           "frames_dropped": s.get("frames_dropped", 0), **{k: v for k, v in link.items() if k != "client"}}
    cells = "".join(f'<div class="rtme-stat" data-k="{k}"><span>{html.escape(name)}</span><b>{html.escape(v)}</b></div>'
                    for k, name, v in items)
    note_html = f'<div class="rtme-note">{html.escape(note)}</div>' if note else ""
    return (f'<div class="rtme-stats" data-raw="{html.escape(json.dumps(raw))}">{cells}</div>{note_html}')


def analysis_summary(name: str, result: "RunResult", wall_s: float, note: str = "", truth_report: str = "") -> str:
    """The Video tab's summary (Markdown): frames and speed, MEs found, why the run ended,
    the session's note and, for the demo clip, its ground-truth report."""
    st, events = result.stats, result.events
    n_micro = sum(e.window.kind == "micro" for e in events)
    lines = [f"**{name}**: {st.frames_processed} frames ({st.frames_with_face} with a face) analysed in {wall_s:.1f} s "
             f"({st.frames_processed / max(wall_s, 1e-6):.0f} fps); **{n_micro} micro-expressions**, "
             f"{len(events) - n_micro} other movements; {result.end_reason}."]
    if note:
        lines.append(f"*{note}*")
    if truth_report:
        lines.append(f"```\n{truth_report}\n```")
    return "\n\n".join(lines)


# --------------------------------------------------------------------------- files
CSV_FIELDS = ["kind", "emotion", "confidence", "onset_s", "apex_s", "offset_s", "duration_s", "onset_frame",
              "apex_frame", "offset_frame", "peak", "spotting_delay_s", "decision_latency_s", "au_cues", "regions_moved",
              "explanation"]


def write_results(events: list[Event], folder: Path, stem: str) -> tuple[Path, Path]:
    """events.jsonl (one ``describe.to_json`` object per line) and a flat events.csv for spreadsheets."""
    folder.mkdir(parents=True, exist_ok=True)
    jsonl, table = folder / f"{stem}.jsonl", folder / f"{stem}.csv"
    dicts = [describe.to_json(e) for e in events]
    with jsonl.open("w", encoding="utf-8") as f:
        for d in dicts:
            f.write(json.dumps(d) + "\n")
    probs = [f"p_{k}" for k in EMOTIONS]
    with table.open("w", encoding="utf-8", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_FIELDS + probs)
        wr.writeheader()
        for e, d in zip(events, dicts):
            row = {k: d.get(k, "") for k in CSV_FIELDS}
            row.update(au_cues=describe.au_text(e), regions_moved=", ".join(d["moved"][:2]))
            row.update({f"p_{k}": d["probs"].get(k, "") for k in EMOTIONS})
            wr.writerow(row)
    return jsonl, table

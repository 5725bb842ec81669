"""What an event says, worked out once for every output (the console line, the JSONL
object, the web page's table and CSV), so they never disagree."""
from __future__ import annotations

from typing import Callable, Mapping

from .explain import explain
from .types import Event, Window

#: cues that are not movements to name (the signed lid-opening change, read by the AU table)
NON_CUES = frozenset({"eye_aperture"})


def dominant(motion: Mapping[str, float]) -> list[str]:
    """Regions that make up a movement, strongest first: within the spotter's ``dom_frac``
    of the strongest, the rule its onset and offset follow."""
    from .spotting import SpotterConfig

    top = max(motion.values(), default=0.0)
    if top <= 0:
        return []
    keep = SpotterConfig().dom_frac * top
    return [k for k, v in sorted(motion.items(), key=lambda kv: -kv[1]) if v >= keep]


def moved(w: Window) -> list[str]:
    """The window's regions that moved (``dominant``)."""
    return dominant(w.regions)


def cue_names(w: Window, n: int = 3) -> list[str]:
    """The spotter's strongest AU-like landmark cues (``spotting.regions.cues``)."""
    ranked = sorted(((v, k) for k, v in w.cues.items() if k not in NON_CUES and v > 0), reverse=True)
    return [k for _, k in ranked[:n]]


def top_aus(e: Event, n: int = 3) -> list[str]:
    """The AUs the classifier reported, most probable first."""
    return [k for k, _ in sorted(e.aus.items(), key=lambda kv: -kv[1])[:n]]


def sentence(e: Event) -> str:
    """The plain-language sentence ``recognise`` prints, for a live event."""
    w = e.window
    return explain(moved(w), e.aus, e.emotion, e.probs, apex_s=w.apex_t - w.onset_t, duration_s=w.duration)


def to_json(e: Event) -> dict:
    """One JSON object (JSONL sink, web downloads)."""
    w = e.window
    return {
        "kind": w.kind,
        "emotion": e.emotion or "unclassified",
        "confidence": round(float(e.confidence), 4),
        "probs": {k: round(float(v), 4) for k, v in e.probs.items()},
        "aus": {k: round(float(v), 4) for k, v in e.aus.items()},
        "onset_frame": w.onset_index,
        "apex_frame": w.apex_index,
        "offset_frame": w.offset_index,
        "onset_s": round(w.onset_t, 4),
        "apex_s": round(w.apex_t, 4),
        "offset_s": round(w.offset_t, 4),
        "duration_s": round(w.duration, 4),
        "peak": round(float(w.peak), 5),
        "regions": {k: round(float(v), 5) for k, v in w.regions.items()},
        "moved": moved(w),
        "cues": {k: round(float(v), 5) for k, v in w.cues.items()},
        "near_blink": w.near_blink,
        "explanation": sentence(e),
        "spotting_delay_s": round(w.confirmed_t - w.apex_t, 4),
        "decision_latency_s": round(e.latency_s, 4),
        "source": e.source,
    }


def console_line(e: Event) -> str:
    """One line per event, e.g. ``[ 13.67 s] MICRO negative 84%  frames 407-410-414  233 ms
    AUs AU17  moved mouth_r  latency 412 ms: <sentence>``."""
    w = e.window
    head = f"[{w.apex_t:8.2f} s] {w.kind.upper():5} {e.emotion or 'unclassified':<12}"
    if e.emotion:
        head += f" {e.confidence:4.0%}"
    parts = [head, f"frames {w.onset_index}-{w.apex_index}-{w.offset_index}", f"{w.duration * 1e3:4.0f} ms"]
    if e.aus:
        parts.append("AUs " + ",".join(top_aus(e)))
    regions = moved(w)[:2]
    if regions:
        parts.append("moved " + ",".join(regions))
    parts.append(f"latency {e.latency_s * 1e3:.0f} ms")
    return "  ".join(parts) + (f"\n             {sentence(e)}" if w.kind == "micro" else "")


def au_text(e: Event, n: int = 3) -> str:
    """The classifier's AU estimates if it gave any, else the spotter's landmark cues."""
    if e.aus:
        return ", ".join(f"{k} {e.aus[k]:.0%}" for k in top_aus(e, n))
    return ", ".join(k.replace("_", " ") for k in cue_names(e.window, n))


TABLE_HEADERS = ["time (s)", "kind", "emotion", "confidence", "duration (ms)", "AU cues", "regions moved",
                 "latency (ms)", "explanation"]


def table_row(e: Event, time_of: Callable[[float], float] = float) -> list:
    """One row of the web page's event table (``TABLE_HEADERS``)."""
    w = e.window
    return [round(time_of(w.apex_t), 2), w.kind, e.emotion or "unclassified",
            f"{e.confidence:.0%}" if e.emotion else "", round(w.duration * 1e3), au_text(e),
            ", ".join(moved(w)[:2]), round(e.latency_s * 1e3), sentence(e) if w.kind == "micro" else ""]

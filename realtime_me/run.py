"""``realtime-me [run]``: the live pipeline on a camera, a video, an image sequence or the demo."""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from .engines import BACKENDS
from .errors import UserError
from .pipeline import Pipeline, PipelineConfig, RunResult
from .describe import console_line
from .sinks import ConsoleSink, JsonlSink
from .sources import FPS_RANGE, DemoSource, Source, SourceInfo, open_source
from .stats import Stats

#: exit status of a run stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130


def add_model_options(group) -> None:
    """Model and spotting options, the same for the CLI and the browser demo."""
    group.add_argument("--weights", help="model folder (model.safetensors + model.json); default: the shipped models/medn")
    group.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference engine (auto: the fastest available)")
    group.add_argument("--no-classify", action="store_true", help="spot only; every event is 'unclassified'")
    group.add_argument("--sensitivity", type=float, help="spotter sensitivity (higher finds more, and more false alarms)")
    group.add_argument("--cache-dir", metavar="DIR", help="engine cache for ONNX exports and TensorRT plans "
                       "(default: $REALTIME_ME_ENGINES, else engines/ of a checkout or ~/.cache/realtime-me/engines)")


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("source (one of; none means camera 0)")
    src.add_argument("--camera", type=int, metavar="N", help="OpenCV camera index")
    src.add_argument("--video", metavar="PATH", help="a video file")
    src.add_argument("--frames", metavar="DIR", help="a folder of numbered images (needs --fps)")
    src.add_argument("--demo", action="store_true", help="the built-in generated clip with labelled micro-expressions")
    src.add_argument("--fps", type=float, help=f"{FPS_RANGE[0]:g} to {FPS_RANGE[1]:g}; camera: requested rate (30); "
                     "--frames: the sequence's rate (required); --demo: clip rate (30); not for --video")
    src.add_argument("--width", type=int, help="camera only: requested width (640)")
    src.add_argument("--height", type=int, help="camera only: requested height (480)")
    src.add_argument("--seed", type=int, default=7, help="--demo: which generated clip (7)")
    src.add_argument("--as-fast-as-possible", action="store_true",
                     help="video/demo: analyse offline as fast as possible, losing no frame, instead of pacing at the clip's rate")
    model = p.add_argument_group("model")
    add_model_options(model)
    out = p.add_argument_group("output")
    out.add_argument("--events", metavar="OUT.jsonl", help="write one JSON object per event (checked before the run)")
    out.add_argument("--stats-json", metavar="OUT.json",
                     help="write run statistics (fps, per-stage latency), also for an interrupted run")
    out.add_argument("--display", action="store_true", help="show landmarks, motion and the last event in a window")
    out.add_argument("--quiet", action="store_true", help="no per-event console lines")


def _display_tick(pipeline: Pipeline):
    import cv2

    from .overlay import draw_snapshot

    def tick() -> bool:
        snap = pipeline.snapshot(stats=False)
        if snap.frame is not None:
            cv2.imshow("realtime-me", draw_snapshot(snap, pipeline.stats.fps_processed))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    return tick


def truth_report(source: Source, result: RunResult) -> str:
    """For the demo clip: which of its labelled micro-expressions were found (the MEGC rule, ``metrics``)."""
    from .metrics import IOU_THRESHOLD, matched_micro

    truth, found, by_truth = matched_micro(source.truth["events"], result.events)
    reached_s = result.stats.frames_in / source.info.fps  # an interrupted run did not play the rest
    lines = [f"demo clip ground truth: {len(truth)} micro-expressions; spotted {len(found)} micro-expression windows, "
             f"{len(by_truth)} match (IoU >= {IOU_THRESHOLD:g})"]
    for i, e in enumerate(truth):
        got = by_truth.get(i)
        said = ("missed" if e["apex_s"] < reached_s else "not reached") if got is None \
            else f"found as {got.emotion or 'unclassified'}"
        lines.append(f"  {e['apex_s']:6.2f} s  {e['emotion']:<9} AU{'+'.join(map(str, e['aus'])):<8} {said}")
    return "\n".join(lines)


def check_args(args: argparse.Namespace) -> None:
    """Numbers the source does not check (it checks --fps/--width/--height), before anything starts."""
    s = args.sensitivity
    if s is not None and not (s > 0 and math.isfinite(s)):
        raise UserError(f"--sensitivity must be a number > 0, got {s:g}")
    if args.display and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise UserError("--display needs a screen, and this session has none (no DISPLAY); drop --display")


def check_output(path: str, flag: str) -> Path:
    """Fail now, not after an hour's run: a folder, /proc, a parent that cannot be made.
    Leaves an existing file as it is, and no new file behind."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is a folder; give a file name inside it")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        existed = p.exists()
        with p.open("a"):
            pass
        if not existed:
            p.unlink()
    except OSError as e:
        raise UserError(f"cannot write {flag} {p}: {e.strerror or e}") from None
    return p


@contextmanager
def sigterm_as_ctrl_c():
    """``kill``, systemd and docker stop a run with SIGTERM: end it the way Ctrl-C does
    (summary printed, stats JSON written, events file closed) instead of dying mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def _print_source(info: SourceInfo) -> None:
    print(f"source: {info.name}, {info.width}x{info.height} @ {info.fps:g} fps"
          + (f", {info.n_frames} frames" if info.n_frames else "") + ("" if info.live else ", offline"), file=sys.stderr)
    for note in info.notes:
        print(f"note: {note}", file=sys.stderr)


def _progress_bar(info: SourceInfo):
    if info.live or not info.n_frames:
        return None
    from tqdm import tqdm

    return tqdm(total=info.n_frames, unit="frame", desc="analysing", file=sys.stderr, leave=False)


def _warn(bar):
    """A warning line that does not tear the progress bar."""
    if bar is None:
        return lambda msg: print(msg, file=sys.stderr, flush=True)
    return lambda msg: bar.write(msg, file=sys.stderr)


def _sinks(args: argparse.Namespace, bar, jsonl: JsonlSink | None) -> list:
    sinks: list = []
    if not args.quiet:
        sinks.append((lambda e: bar.write(console_line(e))) if bar is not None else ConsoleSink())
    if jsonl is not None:
        sinks.append(jsonl)
    return sinks


def _run_pipeline(args: argparse.Namespace, source: Source, bar, sinks: list) -> tuple[RunResult, str | None]:
    """The run, and what cut it short: "Ctrl-C", "SIGTERM" or None. At any point, even
    during set-up, the summary and stats of what was done are kept."""
    config = PipelineConfig(classify=not args.no_classify, weights=args.weights, backend=args.backend,
                            sensitivity=args.sensitivity, cache_dir=args.cache_dir)
    pipeline = None
    try:
        pipeline = Pipeline(config, sinks)
        engine = getattr(pipeline.classifier, "engine", None)
        if engine is not None:
            print(f"model: {engine.describe() if hasattr(engine, 'describe') else engine}", file=sys.stderr)
        progress = (lambda n: bar.update(n - bar.n)) if bar is not None else None
        tick = _display_tick(pipeline) if args.display else None
        return pipeline.run(source, progress=progress, tick=tick, tick_every=0.03 if tick else 0.1), None
    except KeyboardInterrupt as e:
        stats = pipeline.stats if pipeline is not None else Stats()
        stats.finished = stats.finished or time.perf_counter()
        events = list(pipeline.events) if pipeline is not None else []
        return RunResult(events, stats, source.info, "interrupted"), str(e) or "Ctrl-C"


def _print_summary(source: Source, result: RunResult, stopped_by: str | None) -> None:
    print(f"stopped: {result.end_reason}" + (f" ({stopped_by})" if stopped_by else ""), file=sys.stderr)
    for note in source.end_notes:
        print(f"note: {note}", file=sys.stderr)
    n_micro = sum(e.window.kind == "micro" for e in result.events)
    print(f"{n_micro} micro-expressions, {len(result.events) - n_micro} other movements", file=sys.stderr)
    print(result.stats.format(), file=sys.stderr)
    if isinstance(source, DemoSource):
        print(truth_report(source, result), file=sys.stderr)


def _write_stats(path: Path, result: RunResult) -> str | None:
    """The failure, if any, as a message: the summary is already out and must not be lost to a traceback."""
    try:
        path.write_text(json.dumps({"source": vars(result.source), "end_reason": result.end_reason,
                                    **result.stats.to_dict()}, indent=2))
    except OSError as e:
        return f"cannot write --stats-json {path}: {e.strerror or e}"
    return None


def run(args: argparse.Namespace) -> int:
    check_args(args)
    events = check_output(args.events, "--events") if args.events else None
    stats_json = check_output(args.stats_json, "--stats-json") if args.stats_json else None
    with sigterm_as_ctrl_c():
        with open_source(camera=args.camera, video=args.video, frames=args.frames, demo=args.demo, fps=args.fps,
                         width=args.width, height=args.height, realtime=not args.as_fast_as_possible,
                         seed=args.seed) as source:
            _print_source(source.info)
            bar = _progress_bar(source.info)
            jsonl = JsonlSink(events, warn=_warn(bar)) if events else None
            try:
                result, stopped_by = _run_pipeline(args, source, bar, _sinks(args, bar, jsonl))
            finally:
                if bar is not None:
                    bar.close()
                if jsonl is not None:
                    jsonl.close()
        _print_summary(source, result, stopped_by)
        failures = [_write_stats(stats_json, result) if stats_json else None]
    if jsonl is not None and jsonl.error is not None:
        failures.insert(0, f"cannot write --events {events}: {jsonl.error.strerror or jsonl.error} "
                           f"({jsonl.written} events written, {jsonl.lost} lost)")
    failures = [f for f in failures if f]
    if failures:
        raise UserError("; ".join(failures) + "; the summary above and every other output were kept")
    return EXIT_INTERRUPTED if stopped_by else 0

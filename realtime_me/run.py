"""``realtime-me [run]``: the live pipeline on a camera, a video, an image sequence or the demo."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import UserError
from .pipeline import Pipeline, PipelineConfig, RunResult
from .sinks import ConsoleSink, JsonlSink, format_event
from .sources import DemoSource, Source, open_source


def add_model_options(group) -> None:
    """Model and spotting options, the same for the CLI and the browser demo."""
    group.add_argument("--weights", help="model folder (model.safetensors + model.json); default: the shipped models/medn")
    group.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch", "triton"],
                       help="inference engine (auto: the fastest available)")
    group.add_argument("--no-classify", action="store_true", help="spot only; every event is 'unclassified'")
    group.add_argument("--sensitivity", type=float, help="spotter sensitivity (higher finds more, and more false alarms)")


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_argument_group("source (one of; none means camera 0)")
    src.add_argument("--camera", type=int, metavar="N", help="OpenCV camera index")
    src.add_argument("--video", metavar="PATH", help="a video file")
    src.add_argument("--frames", metavar="DIR", help="a folder of numbered images (needs --fps)")
    src.add_argument("--demo", action="store_true", help="the built-in generated clip with labelled micro-expressions")
    src.add_argument("--fps", type=float, help="camera: requested rate; --frames: the sequence's rate; --demo: clip rate (30)")
    src.add_argument("--width", type=int, default=640, help="camera: requested width (640)")
    src.add_argument("--height", type=int, default=480, help="camera: requested height (480)")
    src.add_argument("--seed", type=int, default=7, help="--demo: which generated clip (7)")
    src.add_argument("--as-fast-as-possible", action="store_true",
                     help="video/demo: analyse offline as fast as possible, losing no frame, instead of pacing at the clip's rate")
    model = p.add_argument_group("model")
    add_model_options(model)
    out = p.add_argument_group("output")
    out.add_argument("--events", metavar="OUT.jsonl", help="write one JSON object per event")
    out.add_argument("--stats-json", metavar="OUT.json", help="write run statistics (fps, per-stage latency)")
    out.add_argument("--display", action="store_true", help="show landmarks, motion and the last event in a window")
    out.add_argument("--quiet", action="store_true", help="no per-event console lines")


def _display_tick(pipeline: Pipeline):
    import cv2

    from .overlay import draw_snapshot

    def tick() -> bool:
        snap = pipeline.snapshot(stats=False)
        if snap["frame"] is not None:
            cv2.imshow("realtime-me", draw_snapshot(snap, pipeline.stats.fps_processed))
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    return tick


def _truth_report(source: Source, result: RunResult) -> str:
    """For the demo clip: which of its labelled micro-expressions were found."""
    from .spot_eval import matched_micro

    truth, found, by_truth = matched_micro(source.truth["events"], result.events)
    lines = [f"demo clip ground truth: {len(truth)} micro-expressions; spotted {len(found)} micro-expression windows, "
             f"{len(by_truth)} match (IoU >= 0.5)"]
    for i, e in enumerate(truth):
        got = by_truth.get(i)
        said = "missed" if got is None else f"found as {got.emotion or 'unclassified'}"
        lines.append(f"  {e['apex_s']:6.2f} s  {e['emotion']:<9} AU{'+'.join(map(str, e['aus'])):<8} {said}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.display and sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise UserError("--display needs a screen, and this session has none (no DISPLAY); drop --display")
    source = open_source(camera=args.camera, video=args.video, frames=args.frames, demo=args.demo, fps=args.fps,
                         width=args.width, height=args.height, realtime=not args.as_fast_as_possible, seed=args.seed)
    info = source.info
    print(f"source: {info.name}, {info.width}x{info.height} @ {info.fps:g} fps"
          + (f", {info.n_frames} frames" if info.n_frames else "") + ("" if info.live else ", offline"), file=sys.stderr)
    for note in info.notes:
        print(f"note: {note}", file=sys.stderr)
    config = PipelineConfig(classify=not args.no_classify, weights=args.weights, backend=args.backend,
                            sensitivity=args.sensitivity)
    sinks: list = []
    bar = None
    if not info.live and info.n_frames:
        from tqdm import tqdm

        bar = tqdm(total=info.n_frames, unit="frame", desc="analysing", file=sys.stderr, leave=False)
    if not args.quiet:
        sinks.append((lambda e: bar.write(format_event(e))) if bar is not None else ConsoleSink())
    jsonl = JsonlSink(args.events) if args.events else None
    if jsonl:
        sinks.append(jsonl)
    pipeline = Pipeline(config, sinks)
    engine = getattr(pipeline.classifier, "engine", None)
    if engine is not None:
        print(f"model: {engine.describe() if hasattr(engine, 'describe') else engine}", file=sys.stderr)
    progress = (lambda n: bar.update(n - bar.n)) if bar is not None else None
    tick = _display_tick(pipeline) if args.display else None
    interrupted = False
    with source:
        try:
            result = pipeline.run(source, progress=progress, tick=tick, tick_every=0.03 if tick else 0.1)
        except KeyboardInterrupt:
            interrupted = True
            result = RunResult(list(pipeline.events), pipeline.stats, info, "interrupted")
        finally:
            if bar is not None:
                bar.close()
            if jsonl:
                jsonl.close()
    print(f"stopped: {result.end_reason}" + (" (Ctrl-C)" if interrupted else ""), file=sys.stderr)
    n_micro = sum(e.window.kind == "micro" for e in result.events)
    print(f"{n_micro} micro-expressions, {len(result.events) - n_micro} other movements", file=sys.stderr)
    print(result.stats.format(), file=sys.stderr)
    if isinstance(source, DemoSource):
        print(_truth_report(source, result), file=sys.stderr)
    if args.stats_json:
        Path(args.stats_json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.stats_json).write_text(json.dumps({"source": vars(info), "end_reason": result.end_reason,
                                                     **result.stats.to_dict()}, indent=2))
    return 0

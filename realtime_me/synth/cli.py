"""``realtime-me synth``: render one labelled clip from the command line."""
from __future__ import annotations

import argparse

from .plan import SynthConfig
from .writers import truth_path, write_clip

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True,
                        help="clip.mp4 / .mov / .avi / .mkv, clip.y4m (Chromium's fake camera) or DIR/ "
                             "(numbered PNGs); the truth goes to clip.json or DIR/truth.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--face", help="face photo to animate (default: scikit-image's astronaut)")
    parser.add_argument("--n-micro", type=int, help="number of micro-expressions (default: one per 3 s)")
    parser.add_argument("--no-blinks", action="store_true")
    parser.add_argument("--no-head-motion", action="store_true")
    parser.add_argument("--no-flicker", action="store_true")
    parser.add_argument("--no-noise", action="store_true")
    parser.add_argument("--no-macro", action="store_true")
    parser.add_argument("--distractors-only", action="store_true",
                        help="no micro-expression at all, for false-alarm measurements")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    return SynthConfig(
        seed=args.seed, fps=args.fps, duration_s=args.duration, width=args.width, height=args.height,
        face=args.face, n_micro=args.n_micro, macro=not args.no_macro, blinks=not args.no_blinks,
        head_motion=not args.no_head_motion, flicker=not args.no_flicker, noise=not args.no_noise,
        distractors_only=args.distractors_only)


def run(args: argparse.Namespace) -> int:
    truth = write_clip(config_from_args(args), args.out, progress=not args.quiet)
    count = {k: sum(e["kind"] == k for e in truth["events"]) for k in ("micro", "macro", "blink")}
    print(f"wrote {args.out} ({truth['n_frames']} frames, {truth['fps']:g} fps) and {truth_path(args.out)}: "
          f"{count['micro']} micro, {count['macro']} macro, {count['blink']} blinks")
    return 0

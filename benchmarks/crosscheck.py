"""Does the model trained on real flow images read the live preprocessing right?

    .venv/bin/python -m benchmarks.crosscheck [--clips 8] [--weights DIR] [--out benchmarks/results/crosscheck.json]

Runs the full pipeline (tracker, alignment, flow points, spotter, MEDN on ONNX Runtime)
on generated demo clips of seeds outside the spotting evaluation, matches the spotted
micro-expressions to the generator's ground truth (IoU >= 0.5), and counts how often the
model's emotion agrees with the class the generator rendered (AU6+12 positive;
AU4+7, AU14, AU15+17 negative; AU1+2(+5) surprise). A cross-check of transfer from the
real composite flow images to live crops, not an accuracy figure: the demo face is one
photo and the movements are synthetic.
"""
from __future__ import annotations

import argparse
import json
import platform
from collections import Counter
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.pipeline import Pipeline, PipelineConfig
from realtime_me.sources import DemoSource
from realtime_me.metrics import matched_micro

SEED0 = 2000   # neither the spotter's tuning (1000+) nor its evaluation (100+) seeds


def check_clip(seed: int, fps: float, seconds: float, weights: str | None = None) -> list[dict]:
    source = DemoSource(seed=seed, fps=fps, duration_s=seconds, realtime=False)
    result = Pipeline(PipelineConfig(weights=weights)).run(source)
    truth, _, matched = matched_micro(source.truth["events"], result.events)
    rows = []
    for ti, ev in sorted(matched.items()):
        t = truth[ti]
        w = ev.window
        rows.append({"seed": seed, "aus": t["aus"], "truth": t["emotion"], "model": ev.emotion,
                     "truth_onset_apex": [t["onset_frame"], t["apex_frame"]], "onset_apex": [w.onset_index, w.apex_index],
                     "confidence": round(ev.confidence, 3), "probs": {k: round(v, 3) for k, v in ev.probs.items()}})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--weights", help="weights folder (default: the shipped models/medn)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crosscheck.json"))
    args = ap.parse_args()
    rows = []
    for seed in tqdm(range(SEED0, SEED0 + args.clips), desc="clips", unit="clip"):
        rows += check_clip(seed, args.fps, args.seconds, args.weights)
    agree = sum(r["truth"] == r["model"] for r in rows)
    by_class = {}
    for cls in sorted({r["truth"] for r in rows}):
        mine = [r for r in rows if r["truth"] == cls]
        by_class[cls] = {"n": len(mine), "agree": sum(r["model"] == cls for r in mine),
                         "read_as": dict(Counter(r["model"] for r in mine))}
    by_aus = {}
    for key in sorted({"+".join(map(str, r["aus"])) for r in rows}):
        mine = [r for r in rows if "+".join(map(str, r["aus"])) == key]
        by_aus[f"AU{key}"] = dict(Counter(r["model"] for r in mine))
    out = {"machine": {"processor": platform.processor() or platform.machine(), "python": platform.python_version()},
           "weights": args.weights or "models/medn", "clips": args.clips, "fps": args.fps, "seconds": args.seconds, "seed0": SEED0,
           "matched_micro": len(rows), "agree": agree, "agreement": round(agree / len(rows), 3) if rows else None,
           "by_class": by_class, "by_aus": by_aus, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("matched_micro", "agree", "agreement", "by_class", "by_aus")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

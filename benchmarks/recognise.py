"""``recognise`` on the six real ME clips, with its own apex and with the coded one.

    .venv/bin/python -m benchmarks.recognise [--data ../shared/data/realclips/clips.json]
                                              [--out benchmarks/results/recognise_realclips.json]

Two CLI runs (``realtime-me recognise --dataset clips.json --own-apex`` and without
``--own-apex``, where the clips' coded apex is used and SMIC's missing one is found
from the motion), merged into one JSON with a per-clip table: coded and predicted
emotion both ways, own apex against the coded one in frames and ms. Nothing here is
tuned on these clips; they are an end-to-end check on real footage, not an accuracy
figure (6 samples).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.cli import main as cli
from realtime_me.paths import SHARED_DATA

DEFAULT_DATA = SHARED_DATA / "realclips" / "clips.json"


def run(data: Path, own_apex: bool, tmp: Path) -> dict:
    out = tmp / f"{'own' if own_apex else 'coded'}.json"
    argv = ["recognise", "--dataset", str(data), "--json", str(out)] + (["--own-apex"] if own_apex else [])
    rc = cli(argv)
    if rc != 0:
        raise SystemExit(f"realtime-me {' '.join(argv)} exited {rc}")
    result = json.loads(out.read_text())
    result["command"] = "realtime-me " + " ".join(a if a != str(out) else "OUT.json" for a in argv)
    return result


def table(own: dict, coded: dict) -> list[dict]:
    rows = []
    for a, b in zip(own["samples"], coded["samples"]):
        fps = a["fps"]
        err = a["motion_apex_error_frames"]
        rows.append({
            "sample": a["sample"], "dataset": a["dataset"], "coded_emotion": a["label"],
            "own_apex_emotion": a["emotion"], "own_apex_confidence": a["confidence"],
            "coded_apex_emotion": b["emotion"], "coded_apex_confidence": b["confidence"],
            "own_apex": a["apex"], "own_apex_ms": a["apex_ms"],
            "coded_apex": a["coded_apex"],
            "coded_apex_ms": None if a["coded_apex"] is None else round((a["coded_apex"] - a["onset"]) / fps * 1e3, 1),
            "apex_error_frames": err, "apex_error_ms": a["motion_apex_error_ms"],
            "explanation_own_apex": a["explanation"],
        })
    return rows


def markdown(rows: list[dict]) -> str:
    head = ("| clip | coded | own apex: predicted | coded apex: predicted | own apex | coded apex | difference |\n"
            "| --- | --- | --- | --- | --- | --- | --- |")
    lines = [head]
    for r in rows:
        coded = "none coded" if r["coded_apex"] is None else f"{r['coded_apex']} ({r['coded_apex_ms']:.0f} ms)"
        err = r["apex_error_frames"]
        diff = "-" if err is None else f"{err:+d} fr ({r['apex_error_ms']:+.0f} ms)"
        lines.append(f"| {r['sample']} | {r['coded_emotion']} | {r['own_apex_emotion']} {r['own_apex_confidence']:.0%} "
                     f"| {r['coded_apex_emotion']} {r['coded_apex_confidence']:.0%} | {r['own_apex']} "
                     f"({r['own_apex_ms']:.0f} ms) | {coded} | {diff} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recognise_realclips.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        own = run(args.data, True, Path(tmp))
        coded = run(args.data, False, Path(tmp))
    rows = table(own, coded)
    n = len(rows)
    errs = [abs(r["apex_error_ms"]) for r in rows if r["apex_error_ms"] is not None]
    summary = {
        "own_apex_correct": f"{sum(r['own_apex_emotion'] == r['coded_emotion'] for r in rows)}/{n}",
        "coded_apex_correct": f"{sum(r['coded_apex_emotion'] == r['coded_emotion'] for r in rows)}/{n}",
        "own_apex_within_30ms_of_coded": f"{sum(e <= 30 for e in errs)}/{len(errs)}",
        "target": "6/6 correct with its own apex, apex within 30 ms of the coded apex",
    }
    result = {"date": date.today().isoformat(), "machine": f"{platform.machine()} {platform.system()}",
              "data": str(args.data), "summary": summary, "per_clip": rows, "own_apex": own, "coded_apex": coded}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(rows))
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

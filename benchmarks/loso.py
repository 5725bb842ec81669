"""LOSO benchmark: MEDN and the in-harness STSTNet on the composite set, same folds and harness.

    .venv/bin/python -m benchmarks.loso --workers 2          # full LOSO, both models -> results/loso.json
    .venv/bin/python -m benchmarks.loso --cv 5 --models medn --set depth=2 --epochs 40
        # the cheap proxy used for hyper-parameter exploration: 5-fold subject-grouped CV
    .venv/bin/python -m benchmarks.loso --models medn --pretrain --per-epoch --workers 2 --tag pretrain
        # synthetic AU pretraining (faces of the held-out subject's face group excluded), plus
        # the per-subject best-epoch column -> results/loso_pretrain.json
    ... --executor ray [--address ADDR]    # the folds as Ray tasks (pip install '.[ray]')

Writes benchmarks/results/loso.json (full LOSO) or loso_cv5_<tag>.json (proxy),
plus loso_<model>.json and a confusion-matrix PNG per model for the full run. What the
proxy runs chose is written up in results/schedule_selection.md, which
``realtime-me train --notes`` copies into the MEDN model card.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.data import group_kfold
from realtime_me.pretrain import PretrainConfig, SynthSetConfig, pretrained_inits
from realtime_me.metrics import plot_confusion
from realtime_me.training import (DEFAULT_DATA, SCHEDULES, cross_validate, load_for, loso,
                                  pretrain_summary)

RESULTS = ROOT / "benchmarks" / "results"


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if "," in v:
        return tuple(_value(x) for x in v.split(","))
    return v


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--models", default="medn,ststnet")
    p.add_argument("--cv", type=int, default=0, help="k-fold subject-grouped CV proxy instead of LOSO")
    p.add_argument("--set", nargs="*", default=[], help="model config overrides key=value")
    p.add_argument("--train", nargs="*", default=[], help="TrainConfig overrides key=value")
    p.add_argument("--epochs", type=int)
    p.add_argument("--tag", default="")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="fold processes of one thread each")
    p.add_argument("--pretrain", action="store_true", help="synthetic AU pretraining before each fold")
    p.add_argument("--pretrain-train", nargs="*", default=[], help="pretraining TrainConfig overrides key=value")
    p.add_argument("--pretrain-parts", default="all", choices=("all", "motion"))
    p.add_argument("--per-face", type=int, help="synthetic pairs per face (default: pretrain.SynthSetConfig)")
    p.add_argument("--split-seed", type=int, default=0, help="proxy: seed of the subject split")
    p.add_argument("--per-epoch", action="store_true", help="add the per-subject best-epoch column")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--address", help="Ray cluster address (default: a local Ray)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    train_over = {k: _value(v) for k, v in (s.split("=", 1) for s in args.train)}
    if args.epochs:
        train_over["epochs"] = args.epochs
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
               "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "models": {}}
    pre = None
    if args.pretrain:
        pt = {k: _value(v) for k, v in (s.split("=", 1) for s in args.pretrain_train)}
        synth = SynthSetConfig() if args.per_face is None else SynthSetConfig(per_face=args.per_face)
        pre = PretrainConfig(synth=synth, schedule=dataclasses.replace(PretrainConfig().schedule, **pt),
                             parts=args.pretrain_parts)
    run = dict(workers=args.workers, per_epoch=args.per_epoch, executor=args.executor, address=args.address)
    for name in args.models.split(","):
        data = load_for(name, args.data)
        cfg = dataclasses.replace(SCHEDULES[name], **train_over)
        if args.cv:
            splits = group_kfold(data.subjects, args.cv, seed=args.split_seed)
            inits = None
            if pre is not None:
                inits = pretrained_inits(name, data, splits, args.data, pre, args.workers, args.executor,
                                         args.address, overrides, groups=[set(data.subjects[te]) for _, te in splits])
            r = cross_validate(name, data, splits, cfg, desc=f"cv{args.cv} {name}", inits=inits, **run, **overrides)
            r["protocol"] = f"{args.cv}-fold subject-grouped CV (hyper-parameter proxy), split seed {args.split_seed}"
            if pre is not None:
                r["pretrain"] = pretrain_summary(pre)
        else:
            r = loso(name, data, cfg, pretrain=pre, data_dir=args.data, **run, **overrides)
            stem = f"loso_{name}" + (f"_{args.tag}" if args.tag else "")
            (RESULTS / f"{stem}.json").write_text(json.dumps(r, indent=2) + "\n")
            plot_confusion(r, RESULTS / f"{stem}_confusion.png")
        o = r["overall"]
        print(f"{name}: UF1 {o['uf1']:.4f} UAR {o['uar']:.4f} "
              + " ".join(f"{d}={v['uf1']:.3f}/{v['uar']:.3f}" for d, v in r["per_dataset"].items())
              + f" ({r['wall_time_s']}s)", flush=True)
        if "per_subject_best" in r:
            b = r["per_subject_best"]["overall"]
            print(f"  per-subject best epoch (reads test labels): UF1 {b['uf1']:.4f} UAR {b['uar']:.4f}")
        summary["models"][name] = {k: r[k] for k in ("overall", "per_dataset", "wall_time_s", "protocol",
                                                     "train_config", "model_overrides", "samples", "subjects",
                                                     "pretrain", "per_subject_best") if k in r}
    out = RESULTS / (f"loso_cv{args.cv}_{args.tag or 'run'}.json" if args.cv
                     else (f"loso_{args.tag}.json" if args.tag else "loso.json"))
    if not args.cv and not args.tag and out.is_file():  # models run separately land in the same table
        old = json.loads(out.read_text())
        summary["models"] = {**old.get("models", {}), **summary["models"]}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The synthetic AU pretraining set, and how each side reads the other's inputs.

    .venv/bin/python -m benchmarks.pretrain [--weights models/medn] [--other-weights DIR ...]

1. Renders (or loads from .cache/pretrain/) the synthetic set of ``realtime_me/pretrain.py``:
   generator AU fields on every composite apex crop, through the live ``make_inputs``.
2. Zero-shot transfer synthetic -> real: each cached pretrained model of the 5-fold proxy
   (split seed 0; made by ``benchmarks/loso.py --cv 5 --pretrain``) classifies the published
   flow images of the fold it never saw (UF1/UAR pooled over folds, no fine-tuning).
3. Real -> live input: the given weights (default: the shipped model) classify every
   synthetic pair; agreement with the generator's class, per expression. The shipped model
   never saw a synthetic pair, so this is its reading of live-preprocessed flow on real faces;
   for a model pretrained on these faces it is a training-set figure (say so).

Writes benchmarks/results/pretrain.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

from realtime_me.data import group_kfold
from realtime_me.pretrain import PretrainConfig, render_synthetic, state_path, synth_key
from realtime_me.metrics import score
from realtime_me.training import DEFAULT_DATA, load_for, predict

RESULTS = ROOT / "benchmarks" / "results"


def agreement(model, synth) -> dict:
    pred = predict(model, synth, np.arange(len(synth))).argmax(1)
    out = {"n": len(synth), "agree": round(float((pred == synth.labels).mean()), 3), "by_expression": {}}
    keys = np.array(["+".join(r.aus) for r in synth.rows])
    for k in sorted(set(keys.tolist())):
        sel = keys == k
        out["by_expression"][k] = {"truth": synth.class_names[int(synth.labels[sel][0])], "n": int(sel.sum()),
                                   "read_as": dict(Counter(synth.class_names[p] for p in pred[sel]))}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--weights", nargs="*", default=[str(ROOT / "models" / "medn")])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from realtime_me.models import create_model
    from realtime_me.weights import load_model

    real = load_for("medn", args.data)
    pcfg = PretrainConfig()
    t0 = time.perf_counter()
    synth = render_synthetic(args.data, real.au_names, real.class_names, cfg=pcfg.synth)
    out = {"machine": platform.processor() or platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "synthetic_set": {"pairs": len(synth), "faces": len({r.sample.split("#")[0] for r in synth.rows}),
                             "subjects": len(set(synth.subjects.tolist())),
                             "per_class": dict(Counter(real.class_names[i] for i in synth.labels)),
                             "per_expression": dict(Counter("+".join(r.aus) for r in synth.rows)),
                             "load_or_render_s": round(time.perf_counter() - t0, 1)}}
    # 2. zero-shot transfer on the proxy folds
    from safetensors.torch import load_file
    splits = group_kfold(real.subjects, 5, seed=0)
    key = synth_key(args.data, pcfg.synth, int(real.apex.shape[-1]))
    probs = np.zeros((len(real), len(real.class_names)), np.float32)
    found = 0
    for _, te in splits:
        path = state_path(key, pcfg, "medn", {}, set(real.subjects[te].tolist()))
        if not path.is_file():
            continue
        m = create_model("medn", class_names=real.class_names, au_names=real.au_names)
        m.load_state_dict(load_file(str(path)))
        probs[te] = predict(m.eval(), real, te)
        found += 1
    if found == len(splits):
        r = score(real.labels, probs.argmax(1), real.datasets, real.class_names)
        out["zero_shot_real"] = {"protocol": "5-fold subject-grouped, split seed 0; pretrained only, no real label",
                                 **{k: r[k] for k in ("overall", "per_dataset")}}
    # 3. the weights on the synthetic pairs
    out["on_synthetic"] = {}
    for w in args.weights:
        model, _ = load_model(w)
        out["on_synthetic"][str(Path(w).resolve().relative_to(ROOT)) if Path(w).resolve().is_relative_to(ROOT)
                            else str(w)] = agreement(model, synth)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pretrain.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items()}, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())

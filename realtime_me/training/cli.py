"""The ``loso``, ``train`` and ``evaluate`` commands (``configure_*`` / ``run_*``, dispatched by ``realtime_me.cli``).

``--model fdp|pointcloud`` (or ``--dataset``) hands ``train`` and ``loso`` over to
``seqtrain``. ``train`` writes the weights with a model card: the training data and
schedule, the LOSO figures of ``--loso-json`` and the prose of ``--notes`` (the shipped
MEDN card: ``--notes benchmarks/results/schedule_selection.md``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import seqtrain
from ..errors import UserError
from ..metrics import plot_confusion, score
from ..preprocess import PREPROCESS_VERSION
from ..seqtrain import SEQ_MODELS
from .loop import SCHEDULES, TrainConfig, predict, train_model
from .protocols import DEFAULT_DATA, load_for, loso, pretrain_summary

#: a card's notes when ``train`` gets no ``--notes``
DEFAULT_NOTES = {"ststnet": "In-harness baseline, same folds and loop."}


def _common(parser: argparse.ArgumentParser, model: bool = True) -> None:
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder in the composite layout (default: %(default)s)")
    if model:
        parser.add_argument("--model", default="medn", choices=sorted(SCHEDULES) + list(SEQ_MODELS),
                            help="architecture (default: medn; fdp and pointcloud train on --dataset, see seqtrain.py)")
        parser.add_argument("--epochs", type=int, help="override the fixed schedule's epoch count")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    if model:
        parser.add_argument("--workers", type=int, default=1,
                            help="LOSO: train folds in N processes of one thread each (default: 1)")
        parser.add_argument("--pretrain", action="store_true",
                            help="start from synthetic AU pretraining on the folder's faces (see realtime_me/pretrain.py)")


def _schedule(args) -> TrainConfig:
    cfg = SCHEDULES[args.model]
    return dataclasses.replace(cfg, epochs=args.epochs) if args.epochs else cfg


def _pretrain_cfg(args):
    if not getattr(args, "pretrain", False):
        return None
    from ..pretrain import PretrainConfig

    return PretrainConfig()


def _print_result(r: dict) -> None:
    o = r["overall"]
    print(f"{r.get('model', '')}: UF1 {o['uf1']:.4f}  UAR {o['uar']:.4f}  (n={o['n']})")
    for d, v in r["per_dataset"].items():
        print(f"  {d:<8} UF1 {v['uf1']:.4f}  UAR {v['uar']:.4f}  (n={v['n']})")


def _write_outputs(result: dict, args) -> None:
    if getattr(args, "json", None):
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if getattr(args, "plot", None):
        plot_confusion(result, args.plot)


# ---------------------------------------------------------------- loso
def configure_loso(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    seqtrain.add_options(parser)
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="run folds as local processes (default) or Ray tasks (pip install 'realtime-me[ray]')")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray of --workers CPUs)")
    parser.add_argument("--per-epoch", action="store_true",
                        help="also score HTNet's per-subject best-epoch rule (reads test labels; comparison only)")
    parser.add_argument("--json", type=Path, help="write the scores here")
    parser.add_argument("--plot", type=Path, help="write a confusion-matrix PNG here")


def run_loso(args) -> int:
    if seqtrain.wanted(args):
        return seqtrain.run_loso(args)
    torch.set_num_threads(args.threads)
    data = load_for(args.model, args.data)
    if args.address and args.executor != "ray":
        raise UserError("--address needs --executor ray")
    result = loso(args.model, data, _schedule(args), workers=args.workers, pretrain=_pretrain_cfg(args),
                  data_dir=args.data, per_epoch=args.per_epoch, executor=args.executor, address=args.address)
    _print_result(result)
    _write_outputs(result, args)
    return 0


# ---------------------------------------------------------------- train
def configure_train(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    seqtrain.add_options(parser)
    parser.add_argument("--out", type=Path, required=True, help="weights folder to write (model.safetensors + model.json)")
    parser.add_argument("--loso-json", type=Path, help="LOSO result JSON to copy into the model card")
    parser.add_argument("--notes", type=Path, metavar="FILE",
                        help="medn/ststnet: prose for the model card's notes, e.g. how the schedule was chosen "
                             "(benchmarks/results/schedule_selection.md)")


def run_train(args) -> int:
    if seqtrain.wanted(args):
        return seqtrain.run_train(args)
    from ..weights import ModelCard, save_model

    notes = read_notes(args.notes) if args.notes else DEFAULT_NOTES.get(args.model, "")
    torch.set_num_threads(args.threads)
    data = load_for(args.model, args.data)
    cfg = _schedule(args)
    pre = _pretrain_cfg(args)
    init = None
    if pre is not None:
        from ..pretrain import pretrained_inits

        init = pretrained_inits(args.model, data, [(np.arange(len(data)), np.arange(0))], args.data, pre,
                                workers=args.workers, all_faces=True)[0]
    model, history = train_model(args.model, data, np.arange(len(data)), cfg, progress=True, init=init)
    card = ModelCard.for_model(
        model, inputs=input_spec(model), preprocess_version=PREPROCESS_VERSION,
        training={"data": str(args.data.name), "samples": len(data), "subjects": len(set(data.subjects.tolist())),
                  "per_dataset": {d: int((data.datasets == d).sum()) for d in sorted(set(data.datasets.tolist()))},
                  "au_counts": {a: int(data.au[:, i].sum()) for i, a in enumerate(data.au_names)},
                  "schedule": dataclasses.asdict(cfg), "final_loss": round(history[-1], 4),
                  **({"pretraining": _pretrain_card(pre, args.data)} if pre is not None else {})},
        loso=_loso_summary(args.loso_json), date=date.today().isoformat(), seed=cfg.seed, notes=notes)
    save_model(model, card, args.out)
    print(f"saved {args.model} to {args.out} (final training loss {history[-1]:.4f})")
    return 0


def read_notes(path: Path) -> str:
    """A notes file as one line (its line breaks and runs of spaces folded to single spaces)."""
    if not path.is_file():
        raise UserError(f"--notes {path}: not found")
    return " ".join(path.read_text().split())


def _pretrain_card(pre, data_dir: Path) -> dict:
    from ..pretrain import CARD_TEXT

    return {**pretrain_summary(pre), "face_groups": None,
            "faces": f"the apex crops of {Path(data_dir).name} (every subject: the final model holds none out)",
            "how": CARD_TEXT}


def input_spec(model: nn.Module) -> dict:
    spec = {}
    for name, t in zip(model.input_names, model.example_inputs(1)):
        norm = ("per-channel (u, v, optical strain) min-max to 0..1 in 1/255 steps" if name == "flow"
                else "grayscale, INTER_AREA resize, per-image zero mean / unit std")
        spec[name] = {"shape": ["B", *t.shape[1:]], "dtype": "float32", "normalisation": norm}
    spec["outputs"] = list(model.output_names)
    return spec


def _loso_summary(path: Path | None) -> dict:
    if not path:
        return {}
    if not path.is_file():
        raise UserError(f"{path}: LOSO result not found")
    r = json.loads(path.read_text())
    keep = ("overall", "per_dataset")
    out = {"protocol": r.get("protocol", ""), "wall_time_s": r.get("wall_time_s"),
           **{k: _strip_cm(r[k]) for k in keep if k in r}}
    if "per_subject_best" in r:   # HTNet's rule, reads the test labels: for comparison only
        out["per_subject_best_epoch"] = {k: _strip_cm(r["per_subject_best"][k]) for k in keep}
    return out


def _strip_cm(v: dict) -> dict:
    if "uf1" in v:
        return {k: v[k] for k in ("uf1", "uar", "n")}
    return {d: _strip_cm(x) for d, x in v.items()}


# ---------------------------------------------------------------- evaluate
def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    _common(parser, model=False)
    parser.add_argument("--weights", type=Path, required=True, help="weights folder (model.safetensors + model.json)")
    parser.add_argument("--json", type=Path, help="write the scores here")
    parser.add_argument("--plot", type=Path, help="write a confusion-matrix PNG here")


def run_evaluate(args) -> int:
    from ..weights import load_model

    torch.set_num_threads(args.threads)
    model, card = load_model(args.weights)
    data = load_for(model.config, args.data)
    pred = predict(model, data, np.arange(len(data))).argmax(1)
    result = score(data.labels, pred, data.datasets, data.class_names)
    result.update(model=card.architecture, weights=str(args.weights), data=str(args.data))
    _print_result(result)
    _write_outputs(result, args)
    return 0

"""Synthetic AU pretraining data: generator AU fields on real faces, through the live preprocessing.

For every face crop of a composite-layout folder (the apex crops: one real face per
sample), ``render_synthetic`` draws ``per_face`` onset->apex pairs: the crop, padded
by half its size (edges replicated) so face mesh finds the face, is the onset; the
apex is the same image moved by one of ``synth.EXPRESSIONS`` (AU weights jittered
x0.6-1.4, peak landmark displacement log-uniform in ``amplitude_px`` at a 224-px face
width, scaled with the face), both get webcam noise (sigma 2 grey levels) and a
+-1.5 % exposure change, both are aligned with the onset's landmarks onto the
template (``alignment.similarity_to_template``, as the live aligner does) and
``preprocess.make_inputs`` turns the pair into model inputs, exactly as live. Each
row keeps the subject of the face it was drawn on, so a fold can exclude the
held-out subjects' faces. The class is the generator's (AU6+12 positive; AU4+7,
AU14, AU15+17 negative; AU1+2(+5) surprise), the AU targets the AUs drawn.

The set is cached in ``.cache/pretrain/`` (derived from the real data: never in the repo).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .data import MEData, SampleRow, au_matrix, read_labels
from .preprocess import APEX_SIZE, PREPROCESS_VERSION, TEMPLATE, make_inputs
from .types import EMOTIONS

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "pretrain"


@dataclass(frozen=True)
class SynthSetConfig:
    per_face: int = 10
    amplitude_px: tuple[float, float] = (0.7, 4.0)   # at a 224-px face width (cheek to cheek)
    weight_jitter: tuple[float, float] = (0.6, 1.4)
    noise: float = 2.0
    gain: float = 0.015
    seed: int = 0


def synth_key(data_dir: Path, cfg: SynthSetConfig, apex_size: int) -> str:
    stamp = (data_dir / "labels.csv").stat()
    raw = json.dumps([str(data_dir.resolve()), stamp.st_size, dataclasses.asdict(cfg), apex_size,
                      PREPROCESS_VERSION], sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def render_face(face_bgr: np.ndarray, lm: np.ndarray, rng: np.random.Generator, cfg: SynthSetConfig,
                apex_size: int = APEX_SIZE):
    """One synthetic pair on a padded face image with its landmarks -> (inputs, emotion, AU numbers)."""
    from . import synth
    from .alignment import similarity_to_template

    emotion = EMOTIONS[int(rng.integers(len(EMOTIONS)))]
    choices = [e for e in synth.EXPRESSIONS if e.emotion == emotion]
    base = choices[int(rng.integers(len(choices)))]
    expr = synth.Expression(emotion, tuple((n, w * float(rng.uniform(*cfg.weight_jitter))) for n, w in base.aus))
    eyes = lm[473] - lm[468]                              # iris to iris: the face's x axis
    face_w = abs(float((lm[454] - lm[234]) @ (eyes / np.linalg.norm(eyes))))   # cheek to cheek
    amp = float(np.exp(rng.uniform(*np.log(cfg.amplitude_px)))) * face_w / 224.0
    apex = synth.apply_expression(face_bgr, lm, expr, amp)
    m = similarity_to_template(lm, TEMPLATE)
    crops = []
    for img in (face_bgr, apex):
        x = img.astype(np.float32) * float(1.0 + rng.uniform(-cfg.gain, cfg.gain))
        x += rng.standard_normal(x.shape, dtype=np.float32) * cfg.noise
        x = np.clip(np.round(x), 0, 255).astype(np.uint8)
        crops.append(cv2.warpAffine(x, m, (TEMPLATE, TEMPLATE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE))
    return make_inputs(crops[0], crops[1], apex_size), emotion, base.au_numbers


def padded(img: np.ndarray) -> np.ndarray:
    p = img.shape[0] // 2
    return cv2.copyMakeBorder(img, p, p, p, p, cv2.BORDER_REPLICATE)


def render_synthetic(data_dir: str | Path, au_names: tuple[str, ...], class_names: tuple[str, ...] = EMOTIONS,
                     apex_size: int = APEX_SIZE, cfg: SynthSetConfig = SynthSetConfig(),
                     progress: bool = True, cache: bool = True) -> MEData:
    """The synthetic set on every apex crop of ``data_dir`` (faces where face mesh fails are skipped)."""
    from tqdm import tqdm

    from .landmarks import landmarks_of_image

    root = Path(data_dir)
    path = CACHE / f"synth_{synth_key(root, cfg, apex_size)}.npz"
    if cache and path.is_file():
        return _load(path, au_names, class_names)
    rows, flows, apexes = [], [], []
    for r in tqdm(read_labels(root), desc="synthetic pairs", unit="face", disable=not progress):
        img = cv2.imread(str(root / r.apex), cv2.IMREAD_COLOR)
        if img is None:
            continue
        face = padded(img)
        lm = landmarks_of_image(face)
        if lm is None:
            continue
        rng = np.random.default_rng([cfg.seed, int(hashlib.sha1(r.sample.encode()).hexdigest()[:8], 16)])
        for k in range(cfg.per_face):
            x, emotion, aus = render_face(face, lm[:, :2].astype(np.float64), rng, cfg, apex_size)
            rows.append((f"{r.sample}#{k}", r.subject, EMOTIONS.index(emotion), "+".join(map(str, aus))))
            flows.append(x.flow)
            apexes.append(x.apex)
    arrays = {"flow": np.stack(flows), "apex": np.stack(apexes),
              "meta": np.array(rows, dtype=object).astype(str)}
    if cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
    return _from_arrays(arrays, au_names, class_names)


def _load(path: Path, au_names, class_names) -> MEData:
    with np.load(path, allow_pickle=False) as z:
        return _from_arrays({k: z[k] for k in z.files}, au_names, class_names)


def _from_arrays(a: dict, au_names, class_names) -> MEData:
    rows = [SampleRow(s, "synth", subj, int(lab), "", "", tuple(f"AU{n}" for n in aus.split("+") if n), True)
            for s, subj, lab, aus in a["meta"]]
    au = au_matrix(rows, au_names)
    return MEData(rows, a["flow"].astype(np.float32), a["apex"].astype(np.float32),
                  np.array([r.label for r in rows], np.int64), au, np.ones(len(rows), np.float32),
                  tuple(class_names), tuple(au_names))


def face_groups(subjects: np.ndarray, k: int = 5, seed: int = 0) -> list[set[str]]:
    """Subjects dealt into ``k`` groups (``data.group_kfold``'s split): pretraining ``g`` never sees group ``g``'s faces."""
    from .data import group_kfold

    subjects = np.asarray(subjects)
    return [set(subjects[te].tolist()) for _, te in group_kfold(subjects, k, seed)]


def group_of(test_subjects: set[str], groups: list[set[str]]) -> int:
    """The group holding every test subject of a fold (a fold must not straddle groups)."""
    for g, members in enumerate(groups):
        if test_subjects <= members:
            return g
    raise ValueError("the fold's test subjects straddle pretraining face groups")


# --------------------------------------------------------------------------- pretraining

def _schedule():
    from .training import TrainConfig

    return TrainConfig(epochs=8)


@dataclass(frozen=True)
class PretrainConfig:
    """How the synthetic pretraining runs; ``parts``: what the fine-tune starts from
    (``all`` weights, or ``motion``: the motion branch and AU head only)."""

    synth: SynthSetConfig = SynthSetConfig()
    schedule: object = dataclasses.field(default_factory=_schedule)   # a training.TrainConfig
    parts: str = "all"
    groups: int = 5


def keep_parts(state: dict, parts: str) -> dict:
    if parts == "all":
        return dict(state)
    if parts == "motion":
        return {k: v for k, v in state.items() if k.startswith(("motion.", "au_head."))}
    raise ValueError(f"unknown pretrained parts {parts!r} (all or motion)")


def _pretrain_task(data: MEData, tag, name: str, idx: np.ndarray, cfg, overrides: dict):
    from .training import pretrain_state

    return tag, pretrain_state(data, name, idx, cfg, overrides)


def state_path(synth_key: str, pcfg: PretrainConfig, name: str, overrides: dict, excluded: set[str]) -> Path:
    raw = json.dumps([synth_key, dataclasses.asdict(pcfg.schedule), name, sorted(overrides.items(), key=str),
                      sorted(excluded)], default=str)
    return CACHE / f"state_{hashlib.sha1(raw.encode()).hexdigest()[:16]}.safetensors"


def pretrained_inits(name: str, real: MEData, splits, data_dir: str | Path, pcfg: PretrainConfig = PretrainConfig(),
                     workers: int = 1, executor: str = "local", address: str | None = None,
                     overrides: dict | None = None, all_faces: bool = False,
                     groups: list[set[str]] | None = None) -> list[dict]:
    """One starting state dict per split. The 62 subjects are dealt into ``pcfg.groups``
    face groups (``face_groups``); the split whose test subjects lie in group g starts
    from a model pretrained on the synthetic pairs of every other group's faces, so no
    image of a held-out subject enters its pretraining. ``all_faces``: one pretraining
    on every face (the final model, which has no held-out subject). ``groups``: other
    face groups (a k-fold proxy passes its own test folds)."""
    from safetensors.torch import load_file, save_file

    from .training import run_tasks

    overrides = dict(overrides or {})
    apex_size = int(real.apex.shape[-1])
    synth = render_synthetic(data_dir, real.au_names, real.class_names, apex_size, pcfg.synth)
    key = synth_key(Path(data_dir), pcfg.synth, apex_size)
    subj = synth.subjects
    if all_faces:
        excluded = {0: set()}
        of_split = [0] * len(splits)
    else:
        groups = groups or face_groups(real.subjects, pcfg.groups)
        of_split = [group_of(set(real.subjects[te].tolist()), groups) for _, te in splits]
        excluded = {g: groups[g] for g in sorted(set(of_split))}
    states, tasks = {}, []
    for g, ex in excluded.items():
        path = state_path(key, pcfg, name, overrides, ex)
        if path.is_file():
            states[g] = load_file(str(path))
        else:
            tasks.append((g, name, np.flatnonzero(~np.isin(subj, sorted(ex))), pcfg.schedule, overrides))
    for g, state in run_tasks(_pretrain_task, synth, tasks, workers, executor, address, desc="pretrain"):
        CACHE.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()},
                  str(state_path(key, pcfg, name, overrides, excluded[g])))
        states[g] = state
    return [keep_parts(states[g], pcfg.parts) for g in of_split]


#: How the pretraining data was made (copied into the model card).
CARD_TEXT = (
    "Synthetic onset->apex pairs: each composite apex crop (padded by half its size) is the onset; the apex is the "
    "same face moved by one of realtime_me.synth.EXPRESSIONS (FACS-shaped AU displacement fields on the face's "
    "MediaPipe landmarks, AU weights x0.6-1.4, peak displacement 0.7-4 px log-uniform at a 224-px face width), "
    "webcam noise and +-1.5 % exposure on both frames, aligned with the onset's landmarks and turned into inputs by "
    "preprocess.make_inputs (the live path). Targets: the generator's emotion class and AUs. Pretrained with the "
    "training loop, then fine-tuned on the real composite with the fixed schedule.")

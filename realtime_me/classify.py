"""Classification stage: a spotted window's onset and apex faces -> an Event with emotion and AUs.

The pipeline hands over only windows it decided to classify (micro-expressions
with both faces at hand); this stage builds the model inputs with the one shared
preprocessing (``preprocess.make_inputs``), runs whichever ``Engine`` it was given
and turns logits into what a person reads: softmax probabilities per emotion, and
sigmoid probabilities per action unit.

AUs reported: those the AU head gives at least ``au_threshold``, plus those the
spotter's own geometry corroborates: when one of the window's strongest cues
(``Window.regions`` holds e.g. ``brow_raise``) or most-moved regions (``brow_l``)
belongs to an AU, that AU is kept from the lower ``cue_threshold`` on. Two
independent measurements agreeing is better evidence than either alone.

Sequence models (FDP, the point-cloud model) read more than two faces: FDP samples
frames from onset to offset, the point-cloud model carries the onset's landmarks to
the apex. ``SequenceClassifier`` (same interface, ``needs_window = True``) takes the
window's faces from the caller (the pipeline's face history, ``recognise``'s clip) and
builds its inputs with ``sequences.model_inputs``. ``make_classifier(engine)`` picks the
right one from the engine's input names, so callers never branch on the model.
"""
from __future__ import annotations


import numpy as np

from .engines import Engine
from .errors import UserError
from .preprocess import APEX_SIZE, make_inputs
from .types import AlignedFace, Event, Window

#: Spotter cue (``spotting.regions.cues``) -> the FACS action units it is evidence for.
CUE_AUS: dict[str, tuple[str, ...]] = {
    "brow_raise": ("AU1", "AU2"), "brow_lower": ("AU4",), "brow_knit": ("AU4",),
    "eye_aperture+": ("AU5",), "eye_aperture-": ("AU6", "AU7"),
    "nose_wrinkle": ("AU9",), "upper_lip_raise": ("AU10",), "lip_corner_up": ("AU12", "AU14"),
    "lip_corner_down": ("AU15",), "lip_stretch": ("AU20",), "lip_tighten": ("AU18", "AU23"),
    "lower_lip_depress": ("AU16",), "lips_part": ("AU25", "AU26"), "chin_raise": ("AU17",),
}
#: Spotter region (``spotting.regions.REGIONS``) -> the action units that move it.
REGION_AUS: dict[str, tuple[str, ...]] = {
    "brow_r": ("AU1", "AU2", "AU4"), "brow_l": ("AU1", "AU2", "AU4"),
    "eye_r": ("AU5", "AU6", "AU7"), "eye_l": ("AU5", "AU6", "AU7"),
    "nose": ("AU9", "AU10"), "lip_upper": ("AU10",), "lip_lower": ("AU15", "AU16", "AU17"),
    "mouth_r": ("AU12", "AU14", "AU15"), "mouth_l": ("AU12", "AU14", "AU15"), "chin": ("AU17",),
}
#: how many of the window's strongest cues, and of its regions, count as "where the face moved"
TOP_CUES = 2


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def cued_aus(cues: dict[str, float], regions: dict[str, float], top: int = TOP_CUES) -> set[str]:
    """AUs named by a window's strongest non-zero cues and most-moved regions (ranked
    separately: cues and region motion are different measurements)."""
    signed = {(f"{k}{'+' if v > 0 else '-'}" if k == "eye_aperture" else k): abs(v) for k, v in cues.items() if v}
    out: set[str] = set()
    for values, table in ((signed, CUE_AUS), (regions, REGION_AUS)):
        known = sorted(((v, k) for k, v in values.items() if v and k in table), reverse=True)[:top]
        for _, k in known:
            out.update(table[k])
    return out


class Classifier:
    """Window + onset/apex AlignedFace -> Event, with any ``Engine``."""

    def __init__(self, engine: Engine, au_threshold: float = 0.5, cue_threshold: float = 0.3) -> None:
        self.engine = engine
        self.labels, self.au_names = engine.spec.labels, engine.spec.aus  # from the model card
        self.au_threshold, self.cue_threshold = au_threshold, cue_threshold
        n_logits = engine.spec.outputs.get("logits", (0,))[0]
        if n_logits != len(self.labels):
            raise UserError(f"model card names {len(self.labels)} labels but the model outputs {n_logits} logits")
        au_out = engine.spec.outputs.get("au_logits")
        if au_out is not None and au_out[0] != len(self.au_names):
            raise UserError(f"model card names {len(self.au_names)} AUs but the model outputs {au_out[0]}")
        self.apex_size = engine.spec.inputs["apex"][-1] if "apex" in engine.spec.inputs else APEX_SIZE

    def inputs(self, onset: AlignedFace, apex: AlignedFace) -> dict[str, np.ndarray]:
        """Batch-of-one engine inputs (only the tensors this model takes)."""
        mi = make_inputs(onset, apex, self.apex_size)  # faces, so the apex is re-framed by the onset's transform
        tensors = {"flow": mi.flow, "apex": mi.apex}
        return {n: tensors[n][None] for n in self.engine.input_names}

    def classify(self, window: Window, onset: AlignedFace, apex: AlignedFace) -> Event:
        return self.to_event(window, self.engine.run(self.inputs(onset, apex)))

    def to_event(self, window: Window, out: dict[str, np.ndarray]) -> Event:
        """The engine's outputs for one onset/apex pair -> Event (apart from ``classify`` so a
        caller that also reports every AU's probability runs the engine once)."""
        probs = softmax(out["logits"][0].astype(np.float64))
        best = int(probs.argmax())
        aus = {}
        if "au_logits" in out and self.au_names:
            cued = cued_aus(window.cues, window.regions)
            for name, p in zip(self.au_names, sigmoid(out["au_logits"][0].astype(np.float64))):
                if p >= self.au_threshold or (name in cued and p >= self.cue_threshold):
                    aus[name] = float(p)
        return Event(window=window, emotion=self.labels[best], confidence=float(probs[best]),
                     probs={k: float(p) for k, p in zip(self.labels, probs)}, aus=aus,
                     source=f"{self.engine.spec.arch}/{self.engine.name}")


#: engine inputs a sequence model takes (``sequences.model_inputs`` builds them)
SEQUENCE_INPUTS = frozenset({"frames", "cloud"})


def preprocessing(input_names) -> tuple[int, dict]:
    """(version, parameters) of the preprocessing this code feeds a model taking ``input_names``:
    ``sequences`` for sequence models, ``preprocess`` for the others. A model card records the
    pair its weights were trained with; ``weights.ModelCard.spec`` refuses one that differs."""
    if set(input_names) & SEQUENCE_INPUTS:
        from . import sequences as s

        return s.SEQ_PREPROCESS_VERSION, {"n_frames": s.N_FRAMES, "frame_size": s.FRAME_SIZE,
                                          "n_points": s.N_POINTS, "disp_scale": s.DISP_SCALE}
    from . import preprocess as p

    return p.PREPROCESS_VERSION, {"flow_size": p.FLOW_SIZE, "template": p.TEMPLATE, "flow_box": list(p.FLOW_BOX),
                                  "flow_work_size": p.FLOW_WORK_SIZE, "tvl1": dict(p.TVL1)}


class SequenceClassifier(Classifier):
    """Window + its faces onset..offset -> Event, for models whose inputs are ``frames`` / ``cloud``."""

    needs_window = True

    def window_inputs(self, faces: list[AlignedFace], apex: AlignedFace) -> dict[str, np.ndarray]:
        """Batch-of-one engine inputs from the window's faces (onset first, time order) and its apex."""
        from .sequences import model_inputs

        return model_inputs(self.engine.input_names, faces, apex)

    def inputs(self, onset: AlignedFace, apex: AlignedFace) -> dict[str, np.ndarray]:
        """With only two faces: FDP sees the onset and the apex as the whole sequence."""
        return self.window_inputs([onset, apex], apex)

    def classify(self, window: Window, onset: AlignedFace, apex: AlignedFace,
                 faces: list[AlignedFace] | None = None) -> Event:
        if not faces:
            faces = [onset, apex]
        return self.to_event(window, self.engine.run(self.window_inputs(faces, apex)))


def make_classifier(engine: Engine, **kwargs) -> Classifier:
    """The classifier for ``engine``'s model: ``SequenceClassifier`` for FDP / point cloud, else ``Classifier``."""
    names = set(engine.input_names)
    if names & SEQUENCE_INPUTS:
        if not names <= SEQUENCE_INPUTS:
            raise UserError(f"model inputs {sorted(names)} mix sequence and pair inputs; no classifier builds both")
        return SequenceClassifier(engine, **kwargs)
    return Classifier(engine, **kwargs)

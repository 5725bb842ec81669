"""What a clip shows and when: the config, the timing of real MEs, and the event plan.

Planning is seconds-first (so a clip means the same at any frame rate) and draws from
independent random streams per distractor (so switching one off leaves the others as
they were). The renderer only reads the resulting events.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..types import EMOTIONS
from .facs import EXPRESSIONS

#: Quantile levels of the embedded ME phase durations below.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 21)

#: Onset->apex and apex->offset durations of real MEs, in seconds, at QUANTILE_LEVELS.
#: Made once by ``duration_quantiles("../shared/data/composite/labels.csv")``: the 250
#: rows with frame numbers (CASME II and SAMM, 200 fps; SMIC has none), durations
#: (apex - onset) / fps and (offset - apex) / fps, ``np.quantile`` (linear), rounded
#: to 0.1 ms. tests/test_synth.py recomputes them from the CSV when it is present.
ONSET_APEX_S = np.array([
    0.005, 0.08, 0.099, 0.105, 0.115, 0.125, 0.13, 0.14, 0.15, 0.155, 0.165,
    0.17, 0.18, 0.185, 0.2, 0.215, 0.225, 0.25, 0.275, 0.325, 0.44])
APEX_OFFSET_S = np.array([
    0.0, 0.0572, 0.0845, 0.0968, 0.11, 0.125, 0.125, 0.1408, 0.155, 0.17, 0.175,
    0.185, 0.2, 0.21, 0.225, 0.2388, 0.26, 0.285, 0.31, 0.33, 0.45])

MICRO_MIN_S, MICRO_MAX_S = 0.065, 0.5      # rendered MEs last this long (the databases' range)
MICRO_AMPLITUDE_PX = (0.5, 3.0)            # peak landmark displacement at 640x480
MACRO_AMPLITUDE_PX = (5.0, 10.0)
MACRO_DURATION_S = (0.8, 3.0)
MACRO_SPREAD = 1.5                         # a macro-expression recruits more of the face
BLINK_DURATION_S = (0.1, 0.4)
LEAD_S, TAIL_S, GAP_S = 1.0, 0.5, 1.0      # neutral start, neutral end, min gap between expressions
BLINK_MARGIN_S = 0.1                       # blinks stay this far from expressions (may come close)

#: Face width (cheek to cheek) at the reference 640x480 frame, px; amplitudes scale with it.
REF_FACE_WIDTH_PX = 0.36 * 640


def duration_quantiles(labels_csv: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Onset->apex and apex->offset quantiles (s) of the composite set's coded MEs.

    Only used to (re)derive ONSET_APEX_S / APEX_OFFSET_S; the product never reads the CSV.
    """
    rise, fall = [], []
    with open(labels_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row["onset_frame"]:
                continue
            on, ap, off, fps = (int(row["onset_frame"]), int(row["apex_frame"]),
                                int(row["offset_frame"]), float(row["fps"]))
            rise.append((ap - on) / fps)
            fall.append((off - ap) / fps)
    q = lambda x: np.round(np.quantile(np.asarray(x), QUANTILE_LEVELS), 4)  # noqa: E731
    return q(rise), q(fall)


@dataclass
class SynthConfig:
    """What to render. Distractor flags switch each nuisance off for cleaner checks."""

    seed: int = 0
    fps: float = 30.0
    duration_s: float = 20.0
    width: int = 640
    height: int = 480
    face: str | None = None          # path; None = astronaut
    n_micro: int | None = None       # None = about one every 3 s
    macro: bool = True
    blinks: bool = True
    head_motion: bool = True
    flicker: bool = True
    noise: bool = True
    distractors_only: bool = False

    def validate(self) -> None:
        if not (5 <= self.fps <= 2000):   # below 5 fps a 2-frame movement is longer than an ME
            raise UserError(f"fps must be in [5, 2000], got {self.fps}")
        if not (0 < self.duration_s <= 3600):
            raise UserError(f"duration must be in (0, 3600] s, got {self.duration_s}")
        if self.width < 160 or self.height < 120:
            raise UserError(f"frame size {self.width}x{self.height} is too small (at least 160x120)")
        if self.n_micro is not None and self.n_micro < 0:
            raise UserError(f"--n-micro must be >= 0, got {self.n_micro}")
        if self.distractors_only and self.n_micro:
            raise UserError("--distractors-only renders no micro-expression; drop --n-micro")


@dataclass
class Event:
    """One planned movement, in frames. The weight rises onset->rise_end, holds, falls to offset."""

    kind: str                       # micro | macro | blink
    emotion: str | None
    aus: list[int]
    onset: int
    rise_end: int
    fall_start: int
    offset: int
    amplitude_px: float
    expression: int | None = None   # index into EXPRESSIONS (None for blinks)
    closure: float = 1.0            # blinks: peak fraction of the eye closed
    spread: float = 1.0             # field falloff multiplier (wider for a macro-expression)

    @property
    def apex(self) -> int:
        return (self.rise_end + self.fall_start) // 2

    def weight(self, i: int) -> float:
        """0 at onset and offset, 1 at the apex, raised-cosine ramps in between."""
        if i <= self.onset or i >= self.offset:
            return 0.0
        if i < self.rise_end:
            return _ease((i - self.onset) / (self.rise_end - self.onset))
        if i <= self.fall_start:
            return 1.0
        return _ease((self.offset - i) / (self.offset - self.fall_start))

    def to_dict(self, fps: float) -> dict:
        return {
            "kind": self.kind, "emotion": self.emotion, "aus": list(self.aus),
            "onset_frame": self.onset, "apex_frame": self.apex, "offset_frame": self.offset,
            "onset_s": round(self.onset / fps, 4), "apex_s": round(self.apex / fps, 4),
            "offset_s": round(self.offset / fps, 4),
            "duration_s": round((self.offset - self.onset) / fps, 4),
            "amplitude_px": round(float(self.amplitude_px), 3),
        }


def _ease(u: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * min(max(u, 0.0), 1.0))


def rng(seed: int, stream: int, *more: int) -> np.random.Generator:
    """Independent streams, so switching one distractor off leaves the others unchanged."""
    return np.random.default_rng([seed & 0xFFFFFFFF, stream, *more])


def plan_events(cfg: SynthConfig, n_frames: int, scale: float) -> list[Event]:
    """The clip's movements by onset: MEs, at most one macro-expression, blinks.

    ``scale`` is the face width over REF_FACE_WIDTH_PX: amplitudes are given at 640x480.
    """
    return _Planner(cfg, n_frames, scale).plan()


class _Planner:
    """One clip's planning: seconds to frames at the clip's rate, a random stream per kind."""

    def __init__(self, cfg: SynthConfig, n_frames: int, scale: float) -> None:
        self.cfg, self.fps, self.n_frames, self.scale = cfg, float(cfg.fps), n_frames, scale

    def micro_count(self) -> int:
        if self.cfg.distractors_only:
            return 0
        if self.cfg.n_micro is not None:
            return self.cfg.n_micro
        return max(1, int(round(self.cfg.duration_s / 3.0)))

    def sample_micro_phases(self, r: np.random.Generator) -> tuple[float, float]:
        """Onset->apex and apex->offset (s) from the real MEs' quantiles, total 65-500 ms."""
        while True:
            rise = float(np.interp(r.uniform(), QUANTILE_LEVELS, ONSET_APEX_S))
            fall = float(np.interp(r.uniform(), QUANTILE_LEVELS, APEX_OFFSET_S))
            if MICRO_MIN_S <= rise + fall <= MICRO_MAX_S:
                return rise, fall

    def plan(self) -> list[Event]:
        cfg, T = self.cfg, self.cfg.duration_s
        r = rng(cfg.seed, 0)
        n_micro = self.micro_count()
        emotions = [EMOTIONS[k % len(EMOTIONS)] for k in range(n_micro)]
        r.shuffle(emotions)
        # (kind, expression index, [rise, hold, fall] s, amplitude px)
        items = []
        for emo in emotions:
            choices = [k for k, e in enumerate(EXPRESSIONS) if e.emotion == emo]
            rise, fall = self.sample_micro_phases(r)
            amp = math.exp(r.uniform(*np.log(MICRO_AMPLITUDE_PX)))
            items.append(("micro", int(r.choice(choices)), [rise, 0.0, fall], amp))
        rm = rng(cfg.seed, 1)
        macro = None
        if cfg.macro:
            total = rm.uniform(*MACRO_DURATION_S)
            rise, hold = rm.uniform(0.25, 0.4), rm.uniform(0.15, 0.35)
            macro = ["macro", int(rm.integers(len(EXPRESSIONS))), [rise, hold, 1 - rise - hold],
                     rm.uniform(*MACRO_AMPLITUDE_PX), total]
        busy = sum(sum(it[2]) for it in items)
        room = T - LEAD_S - TAIL_S
        if cfg.n_micro is not None and n_micro and busy + (n_micro - 1) * GAP_S > room:
            raise UserError(f"{n_micro} micro-expressions need a clip of at least "
                            f"{busy + (n_micro - 1) * GAP_S + LEAD_S + TAIL_S:.1f} s")
        while items and busy + (len(items) - 1) * GAP_S > room:   # default count: drop what does not fit
            busy -= sum(items.pop()[2])
        if macro is not None:
            free = room - busy - len(items) * GAP_S
            total = min(macro.pop(), free)
            if total >= MACRO_DURATION_S[0]:
                macro[2] = [f * total for f in macro[2]]
                items.append(tuple(macro))
        order = r.permutation(len(items))
        items = [items[k] for k in order]
        slack = room - sum(sum(it[2]) for it in items) - max(0, len(items) - 1) * GAP_S
        extra = r.dirichlet(np.ones(len(items) + 1)) * max(0.0, slack)
        events, t = [], LEAD_S + extra[0]
        for k, (kind, expr, phases, amp) in enumerate(items):
            events.append(self.event(kind, expr, t, phases, amp * self.scale))
            t += sum(phases) + GAP_S + extra[k + 1]
        if cfg.blinks:
            events += self.plan_blinks(events)
        return sorted(events, key=lambda e: e.onset)

    def frame(self, t: float) -> int:
        return int(round(t * self.fps))

    def event(self, kind: str, expr: int, t0: float, phases, amp: float) -> Event:
        """Seconds to frames, each phase at least one frame, a micro at most MICRO_MAX_S long."""
        rise, hold, fall = phases
        on = self.frame(t0)
        rise_end = on + max(1, self.frame(t0 + rise) - on)
        fall_start = rise_end + max(0, self.frame(t0 + rise + hold) - self.frame(t0 + rise))
        off = fall_start + max(1, self.frame(t0 + rise + hold + fall) - self.frame(t0 + rise + hold))
        if kind == "micro":   # rounding each boundary to a frame must not leave 65-500 ms
            while (off - on) / self.fps > MICRO_MAX_S and off - fall_start > 1:
                off -= 1
            while (off - on) / self.fps < MICRO_MIN_S:
                off += 1
        e = EXPRESSIONS[expr]
        spread = MACRO_SPREAD if kind == "macro" else 1.0
        return Event(kind, e.emotion, e.au_numbers, on, rise_end, fall_start, off, amp, expr, spread=spread)

    def plan_blinks(self, expressions: list[Event]) -> list[Event]:
        """Blinks every 2-5 s, kept clear of expressions (moved next to one when they collide)."""
        r = rng(self.cfg.seed, 2)
        busy = [(e.onset / self.fps - BLINK_MARGIN_S, e.offset / self.fps + BLINK_MARGIN_S) for e in expressions]
        blinks, t = [], r.uniform(0.3, 2.0)
        while t < self.cfg.duration_s:
            dur = r.uniform(*BLINK_DURATION_S)
            close = dur * r.uniform(0.3, 0.45)
            closure = 1.0 if r.uniform() < 0.8 else r.uniform(0.6, 0.95)
            nudge = r.uniform(0.0, 0.25)
            start = t
            for b0, b1 in busy:
                if start < b1 and start + dur > b0:   # collides: go just before or after it
                    start = b0 - nudge - dur if t - b0 < b1 - t else b1 + nudge
                    break
            clash = any(start < b1 and start + dur > b0 for b0, b1 in busy)
            if start >= 0 and start + dur < self.cfg.duration_s - 1 / self.fps and not clash:
                on = self.frame(start)
                apex = on + max(1, self.frame(start + close) - on)
                off = apex + max(1, self.frame(start + dur) - apex)
                if off < self.n_frames:
                    blinks.append(Event("blink", None, [45], on, apex, apex, off, 0.0, None, closure))
                    busy.append((on / self.fps - 2 * BLINK_MARGIN_S, off / self.fps + 2 * BLINK_MARGIN_S))
            t += r.uniform(2.0, 5.0)
        return blinks

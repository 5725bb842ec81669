"""Online micro-expression spotter: CropPoints (flow points) per frame in, spotted Windows out.

Its input in the pipeline is not the raw face mesh but the same 478 points carried by
optical flow on the aligned crop (``flow.py``): about 6x less jitter, which the defaults
below are tuned for. Raw landmarks work too, with less sensitivity (``floor=0.003``,
``quantile=0.9`` were their settings).

How it decides (details in ``kernels.py``; ``reference.py`` is the same in NumPy):

1. Head motion out: each frame's landmarks are similarity-aligned onto a running
   neutral reference of the stable points (eye corners, nose bridge, upper outline),
   in inter-ocular distances (IOD), so face size and head pose drift drop out.
2. Per region (brows, glabella, lids, nose, lip corners, lips, chin), the two-sided
   difference at the centre frame c: the smoothed shape at c against the mean shapes
   of ``side_s`` seconds ending ``k_s`` before it and starting ``after_s`` after it,
   keeping the smaller of the two RMS displacements. fps-aware (k = 6 frames at
   30 fps, 40 at 200 fps); near zero for drift and for the ramps of long movements,
   the displacement itself at the apex of a short one. The after side is the only
   look-ahead, so it is the short one: it only has to see the face back.
3. Thresholds per region: noise median + ``gain`` x (``quantile`` - median) of recent
   quiet samples (order statistics, so a slipped-in blink barely moves them). 1.0
   means "at threshold" in every region; a frame's value is the max over regions.
   Only centres within ``noise_near_s`` of shut eyes are no noise samples (narrower than
   the trigger's ``blink_near_s``): a blink early in a short 200 fps sequence would
   otherwise keep the detector blind for its first second and a half.
4. Blinks, the main false alarm: two eye apertures (lid gap / eye width), each against
   its running open value, mark frames where the eyes are shutting: the flow points' own
   and the face mesh's (``CropPoints.eye_aperture``; flow loses lids that close over the
   eye, on some faces it sees a blink as a 15 % narrowing, while the mesh re-measures
   them). Near them (``blink_near_s``) the lids and brows are no evidence, and the rest of
   the face counts only above ``blink_gain`` thresholds: the whole mesh deforms a little
   while the lids close (up to about 2 thresholds on the generated blinks), yet a real ME
   may come with a blink (a smile that narrows and closes the eyes).
5. A candidate runs while the value stays up. Apex: its highest region value; onset
   and offset: where the displacement from the shape before the movement (taken
   ``noise_near_s`` clear of any nearby blink, which dips the brows' points too; a wider
   margin at 200 fps pushed it out of the ring) rises above / falls below
   ``level`` of its apex. Back within ``max_micro_s``: a micro-expression; not back but
   strong: followed as a macro-expression until it returns, or until it is still
   (``still_s``) and either most of the way back or nearer the slowly learnt neutral
   face than the shape before it (an expression first caught on its way back never
   returns to that shape); re-armed once the face is back or still. A candidate whose
   displacement grows past twice its peak soon after is the leading edge of a larger
   movement and stays open. Macros are never reported as micro, except in a pre-segmented
   sample, where CASME II's rule holds: a movement at its apex within ``sample_rise_s`` of its
   onset is micro up to ``sample_micro_max_s``. Pure head motion is removed in step 1 and
   never fires.

Sensitivity is the one knob meant for users: thresholds are divided by it
(2.0 finds movements half as large, with more false alarms; 0.5 the reverse).

``MotionSample``s describe the centre frame, which trails the newest frame by
``ka + max(w - 1, h)`` frames (``after_s`` + ``side_s``: the detector needs that much
future); a window is confirmed once its offset is seen, so ``confirmed_t - apex_t`` is
the spotting delay: the movement's own apex -> offset time plus that lag. A candidate
the centre has left but whose displacement is not back by the newest frame waits (while
it can still be a micro-expression), and blink-affected centres are marked again with
the eyes known up to the newest frame, so the short lag loses neither late offsets nor
late blinks.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
import numpy as np

from ..alignment import template
from ..types import CropPoints, MotionSample, Window
from . import layout as L
from .regions import REGION_NAMES, cues, tables

log = logging.getLogger(__name__)

DEFAULT_SENSITIVITY = 1.0


@dataclass(frozen=True)
class SpotterConfig:
    """Detector settings, in seconds and IOD so they hold at any fps and face size.

    Tuned on synthetic clips of seeds outside the evaluation range (``spot-eval --seeds tune``).
    """

    k_s: float = 0.2               # the before side's mean ends this long before the centre
    smooth_s: float = 0.04         # half width of the box filter on the centre frame
    side_s: float = 0.085          # the shapes it is compared with: means over this long (3 frames at 30 fps)
    after_s: float = 0.1           # the after side's mean starts this long after the centre (<= k_s; sets the lag)
    gain: float = 5.0              # threshold = noise median + gain x (noise quantile - median)
    quantile: float = 0.75         # ... that quantile of the recent quiet samples of each region
    floor: float = 0.002           # smallest threshold excess (IOD): clean input never fires
    eye_gain: float = 2.0          # the lids' thresholds are this many times higher (gaze, lid jitter)
    noise_window_s: float = 20.0   # quiet samples kept for the noise quantiles
    noise_rate: float = 30.0       # quiet samples per second (any fps)
    noise_min_s: float = 0.3       # face time before detecting (noise quantiles from that much)
    warm_gate: float = 10.0        # until then, samples more than this many floors (0.02 IOD) off are no noise
    release: float = 0.4           # a candidate ends below this (thresholds)
    ref_tau_s: float = 10.0        # time constant of the neutral reference shape
    blink_drop: float = 0.25       # eyes this much less open than usual are shutting (blink)
    mesh_blink_drop: float = 0.35  # ... by the face mesh's own lids (CropPoints.eye_aperture)
    blink_near_s: float = 0.3      # centres this close to shutting eyes are blink-affected
    blink_gain: float = 2.5        # ... where lids and brows are no evidence, the rest counts from this on
    noise_near_s: float = 0.05     # ... this close are no noise samples nor a movement's base (smoothing reach)
    ap_tau_s: float = 5.0          # time constant of the open-eye aperture
    gap_s: float = 0.015           # time below release that ends a candidate (1 frame at 30 fps, 3 at 200)
    max_active_s: float = 1.0      # a candidate is decided at the latest after this
    dom_frac: float = 0.5          # regions within this fraction of the peak shape onset/offset
    level: float = 0.15            # onset/offset at this fraction of the apex value
    max_micro_s: float = 0.5       # longer movements are macro-expressions
    min_micro_s: float = 0.04      # shorter ones are tracker glitches
    macro_min: float = 4.0         # not back within max_micro_s: followed as macro if this strong
    max_track_s: float = 3.0       # a followed movement is reported after this at the latest
    still_s: float = 0.2           # a followed movement is still when its score varies < 1 threshold this long
    settle: float = 1.0            # after a macro, re-arm once it is back under this (thresholds)
    max_settle_s: float = 1.0      # ... or after this long
    max_gap_s: float = 0.1         # missing frames up to this long are interpolated, longer resets
    settled: float = 0.9           # followed, still within max_micro_s below this fraction of its apex: ended there
    sample_max_s: float = 3.0      # offline clips this short are pre-segmented samples: held at both ends
    sample_rise_s: float = 0.25    # ... in which a movement at its apex this soon after its onset is micro (CASME II)
    sample_micro_max_s: float = 1.0  # ... if it lasts no longer than this (a talking face is no sample)

    def frames(self, fps: float) -> dict[str, int]:
        """Frame counts at ``fps``."""
        def n(s: float, lo: int = 0) -> int:
            return max(lo, int(round(s * fps)))
        every = max(1, int(round(fps / self.noise_rate)))
        n_buf = max(8, int(round(self.noise_window_s * fps / every)))
        return {"k": n(self.k_s, 2), "ka": min(n(self.after_s, 1), n(self.k_s, 2)), "h": n(self.smooth_s),
                "w": n(self.side_s, 1), "gap": n(self.gap_s, 1),
                "max_active": n(self.max_active_s, 2), "max_track": n(self.max_track_s, 2),
                "max_settle": n(self.max_settle_s, 1), "near": n(self.blink_near_s),
                "near_noise": n(self.noise_near_s), "still": n(self.still_s, 2), "nb_every": every, "nb": n_buf,
                "nb_min": max(5, int(round(self.noise_min_s * fps / every))), "max_gap": n(self.max_gap_s)}


def _alloc_state(tabs: L.Tables, ring: int, n_buf: int, gains: np.ndarray) -> L.State:
    """All arrays one stream needs, preallocated."""
    S, R, ns = len(tabs.selected), len(tabs.region_ptr) - 1, len(tabs.stable)
    f = np.float64
    stats = np.zeros((R, L.N_NS), f)
    stats[:, L.NS_GAIN] = gains
    return L.State(
        ref=np.zeros((ns, 2), f), scratch=np.zeros((ns, 2), f), raw=np.zeros((ring, S, 2), f),
        smo=np.zeros((ring, S, 2), f), avg=np.zeros((ring, S, 2), f), meta=np.zeros((ring, 2), f),
        sig=np.zeros((ring, L.n_sig(R)), f), stats=stats, nbuf=np.zeros((n_buf, R), f),
        base=np.zeros((S, 2), f), neutral=np.zeros((S, 2), f), apex_shape=np.zeros((S, 2), f),
        wts=np.zeros(R, f), bvals=np.zeros(R, f),
        st_i=np.zeros(L.N_SI, np.int64), st_f=np.zeros(L.N_SF, f), out=np.zeros(L.n_out(R), f),
        sample=np.zeros(L.n_sample(R), f),
    )


def _soft_reset(st: L.State) -> None:
    """Forget the stream (face gone) but keep the noise level and eye aperture learnt so far."""
    keep_i = st.st_i[[L.SI_NB, L.SI_SKIP]].copy()
    ap = st.st_f[[L.SF_AP_REF, L.SF_MESH_AP_REF]].copy()
    st.st_i[:] = 0
    st.st_i[[L.SI_NB, L.SI_SKIP]] = keep_i
    st.st_f[:] = 0.0
    st.st_f[[L.SF_AP_REF, L.SF_MESH_AP_REF]] = ap


def _kernel_config(c: SpotterConfig, fr: dict[str, int], fps: float, sensitivity: float) -> L.Config:
    """The settings in the kernels' slots, at ``fps``."""
    cfg_i = np.zeros(L.N_CI, np.int64)
    cfg_i[[L.CI_K, L.CI_H, L.CI_W, L.CI_GAP, L.CI_MAX_ACTIVE, L.CI_MAX_TRACK, L.CI_MAX_SETTLE, L.CI_NEAR,
           L.CI_NB_EVERY, L.CI_NB_MIN, L.CI_NEAR_NOISE, L.CI_STILL, L.CI_KA]] = [
        fr["k"], fr["h"], fr["w"], fr["gap"], fr["max_active"], fr["max_track"], fr["max_settle"], fr["near"],
        fr["nb_every"], fr["nb_min"], fr["near_noise"], fr["still"], fr["ka"]]
    cfg_f = np.zeros(L.N_CF, np.float64)
    cfg_f[[L.CF_GAIN, L.CF_Q, L.CF_FLOOR, L.CF_SENS, L.CF_RELEASE, L.CF_REF_ALPHA, L.CF_AP_ALPHA,
           L.CF_BLINK_DROP, L.CF_DOM, L.CF_LEVEL, L.CF_MAX_MICRO_S, L.CF_MIN_MICRO_S, L.CF_SETTLE,
           L.CF_MACRO_MIN, L.CF_WARM_GATE, L.CF_SETTLED, L.CF_MESH_BLINK_DROP, L.CF_BLINK_GAIN]] = [
        c.gain, c.quantile, c.floor, sensitivity, c.release, 1.0 / max(1.0, c.ref_tau_s * fps),
        1.0 / max(1.0, c.ap_tau_s * fps), c.blink_drop, c.dom_frac, c.level, c.max_micro_s,
        c.min_micro_s, c.settle, c.macro_min, c.warm_gate, c.settled, c.mesh_blink_drop, c.blink_gain]
    return L.Config(cfg_i, cfg_f)


def _backend(name: str):
    if name == "numba":
        from . import kernels
        return kernels
    if name == "numpy":
        from . import reference
        return reference
    raise ValueError(f"unknown spotter backend {name!r} (numba or numpy)")


@dataclass
class SpotterCounts:
    """What the spotter did with its candidates (for evaluation and the UI's stats)."""

    frames: int = 0
    windows: int = 0
    micro: int = 0
    macro: int = 0
    rejected_blink: int = 0
    rejected_short: int = 0
    resets: int = 0
    interpolated: int = 0


class Spotter:
    """Online spotter for one face stream at a fixed frame rate."""

    def __init__(self, fps: float, sensitivity: float = DEFAULT_SENSITIVITY, config: SpotterConfig | None = None,
                 backend: str = "numba", **overrides) -> None:
        if not (fps > 0 and np.isfinite(fps)):
            raise ValueError(f"fps must be positive, got {fps}")
        if not (sensitivity > 0 and np.isfinite(sensitivity)):
            raise ValueError(f"sensitivity must be positive, got {sensitivity}")
        self.fps = float(fps)
        self.sensitivity = float(sensitivity)
        self.config = replace(config or SpotterConfig(), **overrides)
        self.backend = backend
        self._k = _backend(backend)
        self.region_names: tuple[str, ...] = REGION_NAMES
        rt = tables()
        self.tabs = L.Tables(*(getattr(rt, f) for f in L.Tables._fields))
        fr = self.config.frames(self.fps)
        self.frames = fr
        self.lag = fr["ka"] + max(fr["w"] - 1, fr["h"])   # MotionSamples (centre frames) trail the newest by this
        self.ring = fr["max_active"] + 2 * fr["k"] + self.lag + fr["w"] + 2 * fr["h"] + 8
        self.cfg = _kernel_config(self.config, fr, self.fps, self.sensitivity)
        self.gains = np.where(rt.eye_mask == 1, self.config.eye_gain, 1.0).astype(np.float64)
        self.state = self._new_state()
        self.counts = SpotterCounts()
        self._last: tuple[int, float, np.ndarray] | None = None  # index, t, points of the last frame fed
        self._real: list[float] | None = None   # offline: first/last real frame (index, t), windows kept inside

    # ------------------------------------------------------------------ public
    def warmup(self) -> None:
        """Compile (or load from numba's cache) every kernel now, on a throwaway stream,
        so the first live frame does not pay for it."""
        sp = Spotter(self.fps, self.sensitivity, self.config, self.backend)
        face = np.zeros((478, 3), np.float32)
        face[:, :2] = template()
        rng = np.random.default_rng(0)
        n = 2 * self.lag + self.frames["nb_min"] * self.frames["nb_every"] + 4
        for i in range(n):
            sp.kernel_step(face + rng.normal(0, 0.3, face.shape).astype(np.float32), i, i / self.fps)
        sp._emit(0, 0, 0.0)
        m = int(sp.state.st_i[L.SI_M])
        sp.state.st_i[L.SI_START] = m - 1 - self.lag - 1
        sp._finalize(m - 1 - self.lag, m - 1 - self.frames["h"], 0, 0.0)

    def kernel_step(self, points: np.ndarray, index: int, t: float, eye_aperture: float = np.nan) -> int:
        """The backend's per-frame kernel alone on this stream, for timing the hot path:
        (478, 3) float32 points (and the face mesh's eye aperture) in, a ``layout.ST_*``
        status out (the centre frame's sample in ``state.sample``, a window in
        ``state.out``). No input checks, gap filling, resets or Windows: ``update`` adds those."""
        return int(self._k.step(points, float(eye_aperture), int(index), float(t), *self.tabs, *self.cfg,
                                *self.state))

    def update(self, lm: CropPoints) -> tuple[MotionSample, list[Window]]:
        """Feed one frame's landmarks; returns the centre frame's motion sample and the
        windows confirmed at this frame (usually none)."""
        pts = np.ascontiguousarray(lm.points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[0] < 478 or pts.shape[1] < 2:
            raise ValueError(f"expected (478, 2|3) face-mesh landmarks, got {pts.shape}")
        if pts.shape[1] == 2:
            pts = np.ascontiguousarray(np.pad(pts, ((0, 0), (0, 1))))
        windows: list[Window] = []
        if self._last is not None:
            gap = lm.index - self._last[0] - 1
            if gap < 0 or gap > self.frames["max_gap"]:
                windows += self._flush(self._last[0] + 1, self._last[1])
            elif gap > 0:
                windows += self._fill_gap(self._last, lm.index, lm.t, pts)
        windows += self._feed(pts, lm.index, lm.t, lm.eye_aperture)
        return self._sample(lm), windows

    @property
    def hold_frames(self) -> int:
        """Frames of still face the detector needs around a movement: the two-sided
        difference's reach on both sides and the first noise estimate (about 1.4 s)."""
        fr = self.frames
        return 2 * fr["k"] + 2 * (fr["w"] - 1) + max(fr["w"] - 1, fr["h"]) + fr["nb_min"] * fr["nb_every"] + 4

    def holds(self, n_frames: int | None) -> bool:
        """Is an offline clip of ``n_frames`` a pre-segmented sample (``hold_start`` /
        ``hold_end``)? Longer files start like a camera: the flow points settle over their
        first frames, which a held first frame would show as a movement."""
        return bool(n_frames) and n_frames <= self.config.sample_max_s * self.fps

    def hold_start(self, lm: CropPoints) -> None:
        """Offline input may begin at an ME's onset, as research samples do (a folder from
        the coded onset to the coded offset). Before its first frame, feed that frame held
        still for ``hold_frames`` (indices and times before it): the detector has then
        learnt the face, and the first real frames are judged against their own start."""
        dt = 1.0 / self.fps
        for i in range(self.hold_frames, 0, -1):
            self.update(CropPoints(lm.index - i, lm.t - i * dt, lm.points, lm.eye_aperture))
        self._real = [lm.index, lm.t, np.inf, np.inf]

    def hold_end(self, lm: CropPoints) -> list[Window]:
        """Offline input ends with ``lm`` (its last frame with a face): hold it still for
        ``hold_frames`` so the look-ahead reaches past it, then flush. A movement that runs
        to the last frame is judged, one that stops there is seen to stop; windows are
        kept inside the real frames."""
        if self._real is None:
            self._real = [lm.index, lm.t, lm.index, lm.t]
        self._real[2:] = [lm.index, lm.t]
        dt, out = 1.0 / self.fps, []
        for i in range(1, self.hold_frames + 1):
            out += self.update(CropPoints(lm.index + i, lm.t + i * dt, lm.points, lm.eye_aperture))[1]
        n = lm.index + self.hold_frames + 1
        out += self._flush(n, lm.t + (self.hold_frames + 1) * dt)
        self._real = None
        return out

    def face_lost(self, index: int, t: float) -> list[Window]:
        """The face is gone (or the stream ended): report a movement that is complete
        enough to judge, then forget the stream (the noise level is kept)."""
        return self._flush(index, t)

    def reset(self) -> None:
        """Forget everything, noise level included."""
        self.state = self._new_state()
        self._last = None

    @property
    def noise(self) -> dict[str, tuple[float, float]]:
        """Per region: running noise mean and threshold excess (IOD)."""
        st, c = self.state.stats, self.cfg.f
        exc = np.maximum(c[L.CF_GAIN] * (st[:, L.NS_Q] - st[:, L.NS_MED]), c[L.CF_FLOOR]) * st[:, L.NS_GAIN] / c[L.CF_SENS]
        return {n: (float(st[i, L.NS_MED]), float(exc[i])) for i, n in enumerate(self.region_names)}

    # ------------------------------------------------------------------ internals
    def _new_state(self) -> L.State:
        return _alloc_state(self.tabs, self.ring, self.frames["nb"], self.gains)

    def _finalize(self, c_end: int, js: int, index: int, t: float, final: bool = False) -> int:
        return int(self._k.finalize(c_end, js, int(index), float(t), self.tabs, self.cfg, self.state, final))

    def _emit(self, off: int, index: int, t: float) -> int:
        """Report the movement being followed as ending at local frame ``off``."""
        return int(self._k.emit(off, int(index), float(t), True, self.tabs, self.cfg, self.state))

    def _feed(self, pts: np.ndarray, index: int, t: float, eye_aperture: float = np.nan) -> list[Window]:
        status = self.kernel_step(pts, index, t, eye_aperture)
        self.counts.frames += 1
        if status == L.ST_BAD:
            log.debug("degenerate landmarks at frame %d: stream reset", index)
            out = self._flush(index, t)
            self._last = None
            return out
        self._last = (int(index), float(t), pts)
        return self._handle(status)

    def _fill_gap(self, last: tuple[int, float, np.ndarray], index: int, t: float, pts: np.ndarray) -> list[Window]:
        """A few frames went missing (dropped by a live source): interpolate them so
        frame k keeps meaning k frames."""
        i0, t0, p0 = last
        out: list[Window] = []
        for i in range(i0 + 1, index):
            a = (i - i0) / (index - i0)
            out += self._feed(((1 - a) * p0 + a * pts).astype(np.float32), i, t0 + a * (t - t0))
            self.counts.interpolated += 1
        return out

    def _flush(self, index: int, t: float) -> list[Window]:
        st, fr = self.state, self.frames
        windows: list[Window] = []
        m = int(st.st_i[L.SI_M])
        js = m - 1 - fr["h"]
        state = int(st.st_i[L.SI_STATE])
        if state == L.ACTIVE:
            windows += self._handle(self._finalize(m - 1 - self.lag, js, index, t, final=True))
            state = int(st.st_i[L.SI_STATE])
        if state == L.TRACK and st.meta[js % self.ring, 1] - st.st_f[L.SF_ONSET_T] > self.config.max_micro_s:
            # Longer than any micro-expression already: report the sustained movement as seen so far.
            windows += self._handle(self._emit(js, index, t))
        if st.st_i[L.SI_M] > 0:
            self.counts.resets += 1
        _soft_reset(st)
        self._last = None
        return windows

    def _handle(self, status: int) -> list[Window]:
        if status == L.ST_REJ_BLINK:
            self.counts.rejected_blink += 1
        elif status == L.ST_REJ_SHORT:
            self.counts.rejected_short += 1
        elif status == L.ST_WINDOW:
            w = self._window()
            self.counts.windows += 1
            setattr(self.counts, w.kind, getattr(self.counts, w.kind) + 1)
            return [w]
        return []

    def _window(self) -> Window:
        o, st = self.state.out, self.state
        reg = {n: float(o[L.O_REG + i]) for i, n in enumerate(self.region_names)}
        cued = cues(st.apex_shape, st.base, float(o[L.O_AP_APEX]), float(o[L.O_AP_BASE]))
        on, ap, off = int(o[L.O_ONSET]), int(o[L.O_APEX]), int(o[L.O_OFFSET])
        on_t, ap_t, off_t = float(o[L.O_ONSET_T]), float(o[L.O_APEX_T]), float(o[L.O_OFFSET_T])
        kind = "micro" if o[L.O_KIND] == 0 else "macro"
        if self._real is not None:     # offline: the held frames are not the clip's own
            i0, t0, i1, t1 = self._real
            clipped = on < i0 or off > i1
            on, on_t = (on, on_t) if on >= i0 else (int(i0), t0)
            off, off_t = (off, off_t) if off <= i1 else (int(i1), t1)
            ap, ap_t = (ap, ap_t) if on <= ap <= off else ((on, on_t) if ap < on else (off, off_t))
            if clipped:                # cut by the clip's ends: its kind is what the clip shows of it
                kind = "micro" if off_t - on_t <= self.config.max_micro_s else "macro"
            if ap_t - on_t <= self.config.sample_rise_s and off_t - on_t <= self.config.sample_micro_max_s:
                kind = "micro"         # a database's sample: longer than max_micro_s but a fast rise
        return Window(
            onset_index=on, apex_index=ap, offset_index=off, onset_t=on_t, apex_t=ap_t, offset_t=off_t,
            kind=kind, peak=float(o[L.O_PEAK]),
            confirmed_t=float(o[L.O_CONF_T]), regions=reg, cues=cued, near_blink=bool(o[L.O_BLINK]),
        )

    def _sample(self, lm: CropPoints) -> MotionSample:
        s, R = self.state.sample, len(self.region_names)
        if s[L.SA_VALID] > 0:
            return MotionSample(int(s[L.SA_INDEX]), float(s[L.SA_T]), s[:R].copy(), float(s[L.SA_V]))
        return MotionSample(lm.index, lm.t, np.zeros(R), 0.0)


__all__ = ["Spotter", "SpotterConfig", "SpotterCounts", "DEFAULT_SENSITIVITY"]


"""Records and slot layout of the state shared by the numba kernels and the NumPy reference.

A stream is three records of arrays: ``Tables`` (the face's index arrays), ``Config``
(settings) and ``State`` (everything that changes per frame, preallocated). Integer and
float settings and scalars live in flat arrays (``cfg.i``/``cfg.f``, ``st.st_i``/``st.st_f``),
whose slots these names say; both implementations import them, so they cannot drift apart.

Editing this file: numba's on-disk cache does not see it, so delete
``spotting/__pycache__/kernels*.nb*`` afterwards.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Tables(NamedTuple):
    """Index arrays of the face (``regions.tables``), int64."""

    selected: np.ndarray      # (S,) face-mesh indices the kernels transform
    stable: np.ndarray        # (ns,) face-mesh indices of the alignment points
    region_ptr: np.ndarray    # (R+1,) CSR offsets into region_pts
    region_pts: np.ndarray    # positions in selected, region by region
    lids: np.ndarray          # (2, 3, 2) lid pairs per eye, positions
    corners: np.ndarray       # (2, 2) eye corners per eye, positions
    iod_pts: np.ndarray       # (2, 2) face-mesh indices of the eye corners: eye centres
    blink_mask: np.ndarray    # (R,) 1 for the regions a blink moves (lids, brows)


class Config(NamedTuple):
    """Settings at the stream's fps."""

    i: np.ndarray             # (N_CI,) int64, CI_* slots
    f: np.ndarray             # (N_CF,) float64, CF_* slots


class State(NamedTuple):
    """All arrays one stream needs (float64 unless noted); ring slots are local frame % ring."""

    ref: np.ndarray           # (ns, 2) running neutral reference of the stable points (IOD)
    scratch: np.ndarray       # (ns, 2) this frame's aligned stable points
    raw: np.ndarray           # (ring, S, 2) aligned shapes
    smo: np.ndarray           # (ring, S, 2) the same box-filtered over 2h+1 frames (centred)
    avg: np.ndarray           # (ring, S, 2) means of the w frames ending at each frame
    meta: np.ndarray          # (ring, 2) frame index, time
    sig: np.ndarray           # (ring, n_sig(R)) per-frame signals, SIG_* columns
    stats: np.ndarray         # (R, N_NS) noise order statistics, NS_* columns
    nbuf: np.ndarray          # (nb, R) window of quiet samples
    base: np.ndarray          # (S, 2) the shape before the movement being decided
    neutral: np.ndarray       # (S, 2) slowly learnt neutral face
    apex_shape: np.ndarray    # (S, 2) smoothed shape at the apex
    wts: np.ndarray           # (R,) 1 for the dominant regions of the movement
    bvals: np.ndarray         # (R,) this centre's two-sided differences
    st_i: np.ndarray          # (N_SI,) int64, SI_* slots
    st_f: np.ndarray          # (N_SF,) SF_* slots
    out: np.ndarray           # (n_out(R),) the last window, O_* slots
    sample: np.ndarray        # (n_sample(R),) the centre frame's motion sample, SA_* slots


N_TABLES, N_CONFIG = len(Tables._fields), len(Config._fields)
_STATE = N_TABLES + N_CONFIG   # where State starts in the flat arrays


def unpack(arrays: tuple) -> tuple[Tables, Config, State]:
    """The records back from ``(*tables, *config, *state)``: the per-frame ``step`` takes
    its arrays flat, as numba's dispatcher types a namedtuple argument about three times as
    slowly (~3.5 us a frame more)."""
    return Tables(*arrays[:N_TABLES]), Config(*arrays[N_TABLES:_STATE]), State(*arrays[_STATE:])


# ---- cfg_i: integer settings (frames) ---------------------------------------
CI_K = 0            # half-span k of the two-sided difference
CI_H = 1            # half width of the box filter on the centre frame
CI_W = 2            # frames averaged on each side of the two-sided difference
CI_GAP = 3          # centres below release that end a candidate
CI_MAX_ACTIVE = 4   # longest candidate before it is decided anyway
CI_MAX_TRACK = 5    # longest movement followed before it is reported (sustained expression)
CI_MAX_SETTLE = 6   # longest wait for a reported macro to return before re-arming
CI_NEAR = 7         # centres this close to shut eyes are blink-affected
CI_NB_EVERY = 8     # a noise sample every this many quiet centres (~30 per second at any fps)
CI_NB_MIN = 9       # noise samples needed before detecting
CI_NEAR_NOISE = 10  # centres this close to shut eyes are no noise samples
CI_STILL = 11       # a followed movement is still when its score varied < 1 threshold over this many frames
CI_KA = 12          # look-ahead of the after side: its mean starts this many frames after the centre (<= k)
N_CI = 13

# ---- cfg_f: float settings ----------------------------------------------------
CF_GAIN = 0         # threshold = noise median + gain x (noise quantile - median)
CF_Q = 1            # that quantile of recent quiet samples (per region)
CF_FLOOR = 2        # smallest threshold excess, IOD units
CF_SENS = 3         # sensitivity: threshold excesses are divided by it
CF_RELEASE = 4      # normalised value under which a candidate ends / the detector re-arms
CF_REF_ALPHA = 5    # EMA rate of the neutral reference shape (per frame)
CF_AP_ALPHA = 6     # EMA rate of the open-eye aperture (per frame)
CF_BLINK_DROP = 7   # relative drop of the eye aperture that means the eyes are shutting
CF_DOM = 8          # regions within this fraction of the peak shape onset/offset
CF_LEVEL = 9        # onset/offset: where the movement falls below this fraction of its apex
CF_MAX_MICRO_S = 10  # longest micro-expression (s); longer movements are macro
CF_MIN_MICRO_S = 11  # shortest movement reported (s); shorter ones are tracker glitches
CF_SETTLE = 12      # a reported macro has settled when its score is below this
CF_MACRO_MIN = 13   # a movement not back in time is followed as macro only above this (thresholds)
CF_WARM_GATE = 14   # before the first noise estimate, samples are kept below this many floors
CF_SETTLED = 15     # a followed movement still below this fraction of its apex ended there (a real ME's residue)
CF_MESH_BLINK_DROP = 16  # relative drop of the face mesh's own eye aperture that means the eyes are shutting
CF_BLINK_GAIN = 17  # at blink-affected centres the other regions count from this many thresholds on
N_CF = 18

# ---- st_i: integer state ------------------------------------------------------
SI_M = 0            # frames pushed since the last reset (local frame number)
SI_STATE = 1        # IDLE / ACTIVE / TRACK / SETTLE
SI_ARMED = 2        # 1 once the value fell below release after the last movement
SI_START = 3        # local frame where the candidate crossed the threshold
SI_BELOW = 4        # consecutive centres below release while ACTIVE
SI_NB = 5           # noise samples taken (kept across face loss)
SI_ONSET = 6        # local frames of the movement being followed
SI_APEX = 7
SI_QUIET = 8        # no new trigger at or before this local frame
SI_BLINK = 9        # the candidate touched blink-affected centres
SI_SETTLE0 = 10     # local frame where settling began
SI_SKIP = 11        # quiet centres since the last noise sample
N_SI = 12

# ---- st_f: float state ----------------------------------------------------------
SF_EPEAK = 0        # apex value of the movement score
SF_LEVEL = 1        # onset/offset level of the movement being followed
SF_AP_REF = 2       # running open-eye aperture
SF_ONSET_I = 3      # frame index / time of onset and apex (kept when their slots are overwritten)
SF_ONSET_T = 4
SF_APEX_I = 5
SF_APEX_T = 6
SF_PEAKV = 7        # peak of the trigger value over the candidate (eligible regions)
SF_MESH_AP_REF = 8  # running open-eye aperture of the face mesh's lids
N_SF = 9

# ---- stats columns (per region) ---------------------------------------------------
NS_MED, NS_Q, NS_GAIN = 0, 1, 2   # noise median, noise quantile (IOD), region gain
N_NS = 3

IDLE, ACTIVE, TRACK, SETTLE = 0, 1, 2, 3

# ---- status returned by step ----------------------------------------------------
ST_NONE = 0
ST_WINDOW = 1       # a window is in ``out``
ST_REJ_BLINK = 2    # candidate dropped: all of it was blink-affected
ST_REJ_SHORT = 3    # candidate dropped: shorter than CF_MIN_MICRO_S
ST_BAD = 4          # degenerate landmarks (NaN, collapsed eye corners): treat as face lost

# ---- out: one window record -----------------------------------------------------
O_ONSET, O_APEX, O_OFFSET = 0, 1, 2
O_ONSET_T, O_APEX_T, O_OFFSET_T = 3, 4, 5
O_KIND = 6          # 0 micro, 1 macro
O_PEAK = 7          # apex of the movement score (thresholds)
O_BLINK = 8
O_CONF_I, O_CONF_T = 9, 10
O_AP_BASE, O_AP_APEX = 11, 12
O_REG = 13          # + R region displacements at the apex (IOD)


def n_out(n_regions: int) -> int:
    return O_REG + n_regions


# ---- sig: per-frame signals --------------------------------------------------------
# Columns 0..R-1: b (two-sided difference per region, IOD), R..2R-1: u (the same in
# thresholds), then the per-frame scalars, counted from the end so no kernel needs R.
SIG_V = -6          # max of u
SIG_AP = -5         # eye aperture (flow points)
SIG_MESH_AP = -4    # eye aperture of the face mesh (CropPoints.eye_aperture; NaN: unknown)
SIG_CLOSED = -3     # eyes shutting
SIG_NEAR = -2       # blink-affected centre
SIG_E = -1          # profile / movement score of the candidate being decided


def n_sig(n_regions: int) -> int:
    return 2 * n_regions + 6


# ---- sample: the centre frame's motion sample ---------------------------------------
# Columns 0..R-1: u per region, then:
SA_V, SA_INDEX, SA_T = -4, -3, -2   # max of u, frame index, time
SA_VALID = -1                       # 1 when the centre frame exists (else the rest is stale)


def n_sample(n_regions: int) -> int:
    return n_regions + 4

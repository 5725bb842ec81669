"""Slot layout of the packed state arrays shared by the numba kernels and the NumPy reference.

The per-frame step passes its state as a few flat arrays (numba dispatch costs
~80 ns per argument, a jitclass cannot be cached), so these names say what each
slot holds. Both implementations import them, so they cannot drift apart.

Editing this file: numba's on-disk cache does not see it, so delete
``spotting/__pycache__/kernels*.nb*`` afterwards.
"""
from __future__ import annotations

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
N_CI = 12

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
N_CF = 16

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
N_SF = 8

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


def sig_cols(n_regions: int) -> dict[str, int]:
    """Columns of the per-frame signal ring: b (raw two-sided difference per region, IOD),
    u (the same in thresholds), v (max of u), ap (eye aperture), closed (eyes shutting),
    near (blink-affected centre), e (profile / movement score of the decided candidate)."""
    r = n_regions
    return {"b": 0, "u": r, "v": 2 * r, "ap": 2 * r + 1, "closed": 2 * r + 2, "near": 2 * r + 3,
            "e": 2 * r + 4, "n": 2 * r + 5}

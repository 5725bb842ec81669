"""The spotter's per-frame hot path as numba kernels (``reference.py`` is the same in NumPy).

One call of ``step`` per frame:

1. similarity-align the landmarks onto the running neutral reference (IOD units);
2. smooth: the centre shape over 2h+1 frames, the comparison shapes over w frames;
3. eye aperture of the newest smoothed frame: shut eyes mark nearby centres as
   blink-affected (the tracker's whole mesh deforms when the lids close);
4. at the centre frame c (which trails the newest frame by ka + max(w - 1, h)), each
   region's two-sided difference ``b_r(c) = min(D_r(c, before), D_r(c, after))`` with
   ``D_r`` the RMS displacement of its points and before/after the mean shapes of the w
   frames ending at c-k / starting at c+ka (ka <= k: the after side is the look-ahead,
   so the lag). A movement that leaves and returns within k stands
   out fully at its apex; slow drift and the ramps of a long movement score low on one
   side. In thresholds: ``u_r = (b_r - median_r) / (gain x (quantile_r - median_r))``
   from a window of recent quiet samples, so 1.0 means "at threshold" in every region;
5. the peak state machine: trigger, candidate, decision (``finalize``), following a
   longer movement (``track``), waiting for it to settle (``settle``).

The kernels take the stream's records (``layout.Tables``, ``Config``, ``State``): all
preallocated, so a frame allocates nothing except the rare noise-quantile refresh and
candidate decisions.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .layout import (
    ACTIVE, CF_AP_ALPHA, CF_BLINK_DROP, CF_BLINK_GAIN, CF_DOM, CF_FLOOR, CF_GAIN, CF_LEVEL, CF_MACRO_MIN,
    CF_MAX_MICRO_S, CF_MESH_BLINK_DROP, CF_MIN_MICRO_S, CF_Q, CF_REF_ALPHA, CF_RELEASE, CF_SENS, CF_SETTLE,
    CF_SETTLED, CF_WARM_GATE, CI_GAP, CI_H, CI_K, CI_KA, CI_MAX_ACTIVE, CI_MAX_SETTLE, CI_MAX_TRACK,
    CI_NB_EVERY, CI_NB_MIN, CI_NEAR, CI_NEAR_NOISE, CI_STILL, CI_W, IDLE, NS_GAIN, NS_MED, NS_Q, O_AP_APEX,
    O_AP_BASE, O_APEX, O_APEX_T, O_BLINK, O_CONF_I, O_CONF_T, O_KIND, O_OFFSET, O_OFFSET_T, O_ONSET, O_ONSET_T,
    O_PEAK, O_REG, SA_INDEX, SA_T, SA_V, SA_VALID, SETTLE, SF_AP_REF, SF_APEX_I, SF_MESH_AP_REF, SF_APEX_T,
    SF_EPEAK, SF_LEVEL, SF_ONSET_I, SF_ONSET_T, SF_PEAKV, SI_APEX, SI_ARMED, SI_BELOW, SI_BLINK, SI_M, SI_NB,
    SI_ONSET, SI_QUIET, SI_SETTLE0, SI_SKIP, SI_START, SI_STATE, SIG_AP, SIG_CLOSED, SIG_E, SIG_MESH_AP,
    SIG_NEAR, SIG_V, ST_BAD, ST_NONE, ST_REJ_BLINK, ST_REJ_SHORT, ST_WINDOW, TRACK, unpack,
)

_unpack = njit(cache=True)(unpack)


# ------------------------------------------------------------------ geometry
@njit(cache=True)
def init_reference(points, stable, iod_pts, ref):
    """Stable points of this frame, centred, eye line horizontal, IOD = 1. False if degenerate."""
    f8 = np.float64   # float32 input: sum in double, like the reference
    ex = 0.5 * (f8(points[iod_pts[0, 0], 0]) + f8(points[iod_pts[0, 1], 0]))
    ey = 0.5 * (f8(points[iod_pts[0, 0], 1]) + f8(points[iod_pts[0, 1], 1]))
    fx = 0.5 * (f8(points[iod_pts[1, 0], 0]) + f8(points[iod_pts[1, 1], 0]))
    fy = 0.5 * (f8(points[iod_pts[1, 0], 1]) + f8(points[iod_pts[1, 1], 1]))
    dx, dy = fx - ex, fy - ey
    iod = np.sqrt(dx * dx + dy * dy)
    if not (iod > 1e-6):
        return False
    cs, sn = dx / iod, dy / iod      # rotate by -angle(eye line), scale by 1/iod
    n = stable.shape[0]
    mx, my = 0.0, 0.0
    for i in range(n):
        mx += points[stable[i], 0]
        my += points[stable[i], 1]
    mx /= n
    my /= n
    for i in range(n):
        x = points[stable[i], 0] - mx
        y = points[stable[i], 1] - my
        ref[i, 0] = (cs * x + sn * y) / iod
        ref[i, 1] = (-sn * x + cs * y) / iod
    return True


@njit(cache=True)
def align_frame(points, selected, stable, ref, out, stable_out):
    """Least-squares similarity (closed form) taking the stable points onto ``ref``;
    writes the selected points to ``out`` and the stable points to ``stable_out``."""
    n = stable.shape[0]
    sx, sy, dx, dy = 0.0, 0.0, 0.0, 0.0
    for i in range(n):
        sx += points[stable[i], 0]
        sy += points[stable[i], 1]
        dx += ref[i, 0]
        dy += ref[i, 1]
    sx /= n
    sy /= n
    dx /= n
    dy /= n
    a, b, var = 0.0, 0.0, 0.0
    for i in range(n):
        px = points[stable[i], 0] - sx
        py = points[stable[i], 1] - sy
        qx = ref[i, 0] - dx
        qy = ref[i, 1] - dy
        a += px * qx + py * qy
        b += px * qy - py * qx
        var += px * px + py * py
    if not (var > 1e-12) or not np.isfinite(a + b):
        return False
    a /= var
    b /= var
    for i in range(selected.shape[0]):
        px = points[selected[i], 0] - sx
        py = points[selected[i], 1] - sy
        out[i, 0] = a * px - b * py + dx
        out[i, 1] = b * px + a * py + dy
    for i in range(n):
        px = points[stable[i], 0] - sx
        py = points[stable[i], 1] - sy
        stable_out[i, 0] = a * px - b * py + dx
        stable_out[i, 1] = b * px + a * py + dy
    return True


@njit(cache=True)
def region_rms(x, y, region_pts, lo, hi):
    """RMS displacement between shapes x and y over one region's points."""
    s = 0.0
    for q in range(lo, hi):
        p = region_pts[q]
        ddx = x[p, 0] - y[p, 0]
        ddy = x[p, 1] - y[p, 1]
        s += ddx * ddx + ddy * ddy
    return np.sqrt(s / (hi - lo))


@njit(cache=True)
def aperture(x, lids, corners):
    """Lid opening over eye width (mean of three upper/lower lid pairs), both eyes averaged."""
    out = 0.0
    for eye in range(2):
        s = 0.0
        for q in range(lids.shape[1]):
            a, b = lids[eye, q, 0], lids[eye, q, 1]
            s += np.sqrt((x[a, 0] - x[b, 0]) ** 2 + (x[a, 1] - x[b, 1]) ** 2)
        a, b = corners[eye, 0], corners[eye, 1]
        w = np.sqrt((x[a, 0] - x[b, 0]) ** 2 + (x[a, 1] - x[b, 1]) ** 2)
        out += s / lids.shape[1] / max(w, 1e-9)
    return 0.5 * out


@njit(cache=True)
def box_mean(src, dst, lo, hi):
    """dst = mean of the ring slots src[lo .. hi]."""
    L = src.shape[0]
    dst[:, :] = 0.0
    for q in range(lo, hi + 1):
        a = src[q % L]
        for p in range(dst.shape[0]):
            dst[p, 0] += a[p, 0]
            dst[p, 1] += a[p, 1]
    inv = 1.0 / (hi - lo + 1)
    for p in range(dst.shape[0]):
        dst[p, 0] *= inv
        dst[p, 1] *= inv


@njit(cache=True)
def ema(dst, src, a):
    """dst += a (src - dst), point by point: the slowly drifting references."""
    for i in range(dst.shape[0]):
        dst[i, 0] += a * (src[i, 0] - dst[i, 0])
        dst[i, 1] += a * (src[i, 1] - dst[i, 1])


# ------------------------------------------------------------------ noise
@njit(cache=True)
def excess(stats, r, cfg_f):
    """Threshold excess over the noise median of region r (IOD)."""
    e = max(cfg_f[CF_GAIN] * (stats[r, NS_Q] - stats[r, NS_MED]), cfg_f[CF_FLOOR])
    return e * stats[r, NS_GAIN] / cfg_f[CF_SENS]


@njit(cache=True)
def refresh(nbuf, stats, m, r, cfg_f):
    """Median and CF_Q quantile of region r over the m samples in the window."""
    col = np.sort(nbuf[:m, r])
    stats[r, NS_MED] = 0.5 * (col[(m - 1) // 2] + col[m // 2])
    stats[r, NS_Q] = col[min(m - 1, int(np.ceil(cfg_f[CF_Q] * (m - 1))))]


@njit(cache=True)
def noise_sample(b, nbuf, stats, n, cfg_i, cfg_f):
    """Keep a quiet sample in the window; refresh one region's order statistics per sample
    (all of them once, when detection starts), so no frame pays for every region at once.
    Order statistics, unlike a mean and deviation, barely move when a blink or a movement
    slips in."""
    nb = nbuf.shape[0]
    R = b.shape[0]
    nbuf[n % nb, :] = b
    n += 1
    m = min(n, nb)
    if n == cfg_i[CI_NB_MIN]:
        for r in range(R):
            refresh(nbuf, stats, m, r, cfg_f)
    elif n > cfg_i[CI_NB_MIN]:
        refresh(nbuf, stats, m, n % R, cfg_f)
    return n


# ------------------------------------------------------------------ decisions
@njit(cache=True)
def movement_score(shape, base, region_pts, region_ptr, stats, wts, cfg_f):
    """Displacement from ``base`` in thresholds, weighted over the dominant regions."""
    s, wsum = 0.0, 0.0
    for r in range(wts.shape[0]):
        if wts[r] > 0.0:
            d = region_rms(shape, base, region_pts, region_ptr[r], region_ptr[r + 1])
            s += wts[r] * (d - stats[r, NS_MED]) / excess(stats, r, cfg_f)
            wsum += wts[r]
    return s / wsum if wsum > 0.0 else 0.0


@njit(cache=True)
def strongest_region(shape, base, region_pts, region_ptr, stats, cfg_f):
    """Displacement from the baseline in thresholds, in the region that moved most."""
    z = -1e300
    for r in range(region_ptr.shape[0] - 1):
        d = region_rms(shape, base, region_pts, region_ptr[r], region_ptr[r + 1])
        z = max(z, (d - stats[r, NS_MED]) / excess(stats, r, cfg_f))
    return z


@njit(cache=True)
def emit(off, index, t, settle_after, tb, cfg, st):
    """Fill ``st.out`` with the movement that ends at local frame ``off`` (onset and apex
    are in ``st_f``). After a macro the detector waits for the face to settle (SETTLE)."""
    L = st.meta.shape[0]
    st_i, st_f, out = st.st_i, st.st_f, st.out
    st_i[SI_ARMED] = 0
    st_i[SI_QUIET] = off
    st_i[SI_STATE] = SETTLE if settle_after else IDLE
    st_i[SI_SETTLE0] = off
    onset_t, offset_t = st_f[SF_ONSET_T], st.meta[off % L, 1]
    dur = offset_t - onset_t
    if dur < cfg.f[CF_MIN_MICRO_S]:
        return ST_REJ_SHORT
    out[O_ONSET] = st_f[SF_ONSET_I]
    out[O_APEX] = st_f[SF_APEX_I]
    out[O_OFFSET] = st.meta[off % L, 0]
    out[O_ONSET_T] = onset_t
    out[O_APEX_T] = st_f[SF_APEX_T]
    out[O_OFFSET_T] = offset_t
    out[O_KIND] = 0.0 if dur <= cfg.f[CF_MAX_MICRO_S] else 1.0
    out[O_PEAK] = st_f[SF_EPEAK]
    out[O_BLINK] = float(st_i[SI_BLINK])
    out[O_CONF_I] = index
    out[O_CONF_T] = t
    out[O_AP_BASE] = st_f[SF_AP_REF]
    out[O_AP_APEX] = aperture(st.apex_shape, tb.lids, tb.corners)
    apex_shape, base, region_pts, region_ptr = st.apex_shape, st.base, tb.region_pts, tb.region_ptr
    for r in range(region_ptr.shape[0] - 1):
        out[O_REG + r] = region_rms(apex_shape, base, region_pts, region_ptr[r], region_ptr[r + 1])
    return ST_WINDOW


@njit(cache=True)
def set_apex(st, j, e):
    L = st.smo.shape[0]
    st.st_i[SI_APEX] = j
    st.st_f[SF_EPEAK] = e
    st.st_f[SF_APEX_I] = st.meta[j % L, 0]
    st.st_f[SF_APEX_T] = st.meta[j % L, 1]
    st.apex_shape[:, :] = st.smo[j % L]


@njit(cache=True)
def set_onset(st, j):
    L = st.meta.shape[0]
    st.st_i[SI_ONSET] = j
    st.st_f[SF_ONSET_I] = st.meta[j % L, 0]
    st.st_f[SF_ONSET_T] = st.meta[j % L, 1]


@njit(cache=True)
def clean_before(cfg, st, q, js):
    """The latest local frame <= q whose w-frame mean is at least CI_NEAR_NOISE frames
    (the smoothing's reach) from shut eyes; -1 if the ring no longer holds such a frame.
    Not CI_NEAR: at 200 fps that pushed the shape before a movement that follows a blink
    out of the ring, and a slow macro measured from halfway up seemed to end as an ME."""
    sig = st.sig
    L = sig.shape[0]
    w, near = cfg.i[CI_W], cfg.i[CI_NEAR_NOISE]
    first = max(js + cfg.i[CI_H] - L + 1, cfg.i[CI_H])
    b = q
    while True:
        hit = -1
        for x in range(b - w + 1 - near, b + near + 1):
            if x >= first and x <= js and sig[x % L, SIG_CLOSED] > 0.0:
                hit = x
                break
        if hit < 0:
            return b
        b = hit - near - 1
        if b - w + 1 - near < first:
            return -1


@njit(cache=True)
def remark_blinks(cfg, st, lo, c_end, js):
    """Mark the centres lo..c_end blink-affected again, now that the eyes are known up to
    js: with a short look-ahead a centre went by when only the start of a blink was seen."""
    sig = st.sig
    L, n_near, h = sig.shape[0], cfg.i[CI_NEAR], cfg.i[CI_H]
    first = max(h, js + h - L + 1)
    for q in range(lo, c_end + 1):
        for x in range(max(first, q - n_near), min(js, q + n_near) + 1):
            if sig[x % L, SIG_CLOSED] > 0.0:
                sig[q % L, SIG_NEAR] = 1.0
                break


@njit(cache=True, inline="always")
def region_value(sig, q, R, r, blink_mask, gain):
    """u_r (thresholds) at centre q; at a blink-affected centre the regions a blink moves
    are no evidence (-inf) and the others count from ``gain`` thresholds on."""
    u = sig[q, R + r]
    if sig[q, SIG_NEAR] > 0.0:
        return -np.inf if blink_mask[r] > 0 else u / gain
    return u


@njit(cache=True)
def centre_value(sig, q, R, blink_mask, gain):
    """Max of ``region_value`` over the regions at centre q."""
    v = -np.inf
    for r in range(R):
        v = max(v, region_value(sig, q, R, r, blink_mask, gain))
    return v


@njit(cache=True)
def candidate_apex(tb, cfg, st, start, c_end):
    """Highest region value (thresholds) over the candidate's centres start..c_end and
    its centre (``region_value``: blink-affected centres count without the lids and brows);
    notes whether it touched any blink-affected centre."""
    sig = st.sig
    L, R, gain = sig.shape[0], st.stats.shape[0], cfg.f[CF_BLINK_GAIN]
    blink = False
    for q in range(start, c_end + 1):
        blink = blink or sig[q % L, SIG_NEAR] > 0.0
    st.st_i[SI_BLINK] = 1 if blink else 0
    peak, apex = -1e300, start
    for q in range(start, c_end + 1):
        for r in range(R):
            u = region_value(sig, q % L, R, r, tb.blink_mask, gain)
            if u > peak:
                peak, apex = u, q
    st.st_f[SF_PEAKV] = peak
    return peak, apex


@njit(cache=True)
def dominant_profile(tb, cfg, st, lo, c_end, apex, peak):
    """Weight the regions within CF_DOM of the peak at the apex; their mean value over
    lo..c_end (thresholds, ``region_value``: a blink-affected centre ends it where a
    dominant region is one a blink moves) goes to the SIG_E column.
    Returns the profile's extent above CF_LEVEL of its apex (drift-proof: two-sided)."""
    sig, wts = st.sig, st.wts
    L, R, gain = sig.shape[0], wts.shape[0], cfg.f[CF_BLINK_GAIN]
    dom, wsum = cfg.f[CF_DOM] * peak, 0.0
    for r in range(R):
        wts[r] = 1.0 if region_value(sig, apex % L, R, r, tb.blink_mask, gain) >= dom else 0.0
        wsum += wts[r]
    for q in range(lo, c_end + 1):
        p = 0.0
        for r in range(R):
            if wts[r] > 0.0:
                p += wts[r] * region_value(sig, q % L, R, r, tb.blink_mask, gain)
        sig[q % L, SIG_E] = max(p / wsum, -1e300)
    level = cfg.f[CF_LEVEL] * sig[apex % L, SIG_E]
    on = apex
    while on > lo and sig[on % L, SIG_E] > level:
        on -= 1
    off = apex
    while off < c_end and sig[off % L, SIG_E] > level:
        off += 1
    return on, off


@njit(cache=True)
def score_from_base(tb, cfg, st, b_end, js, on, off, apex):
    """The movement score against ``base`` over b_end..js into the SIG_E column; returns
    its peak within on..off and where it is (``apex`` if none is above -1e300)."""
    smo, sig, base, region_pts, region_ptr, stats, wts, cfg_f = (
        st.smo, st.sig, st.base, tb.region_pts, tb.region_ptr, st.stats, st.wts, cfg.f)
    L = smo.shape[0]
    e_pk, e_ap = -1e300, apex
    for q in range(b_end, js + 1):
        e = movement_score(smo[q % L], base, region_pts, region_ptr, stats, wts, cfg_f)
        sig[q % L, SIG_E] = e
        if on <= q <= off and e > e_pk:
            e_pk, e_ap = e, q
    return e_pk, e_ap


@njit(cache=True)
def back_within_micro(cfg, st, q, js, lvl):
    """The first local frame from q on where the score is back at or below ``lvl`` within a
    micro-expression's time of the onset; -1 if it is not."""
    L = st.meta.shape[0]
    sig, meta, t_on, t_max = st.sig, st.meta, st.st_f[SF_ONSET_T], cfg.f[CF_MAX_MICRO_S]
    while q < js and sig[q % L, SIG_E] > lvl and meta[q % L, 1] - t_on <= t_max:
        q += 1
    return q if sig[q % L, SIG_E] <= lvl and meta[q % L, 1] - t_on <= t_max else -1


@njit(cache=True)
def grows_after(tb, cfg, st, q, js, e_pk):
    """Some region moves more than twice this peak after the offset q: the leading edge
    of a larger movement (its after-side mean rose first), not one of its own."""
    smo, base, region_pts, region_ptr, stats, cfg_f = st.smo, st.base, tb.region_pts, tb.region_ptr, st.stats, cfg.f
    L = smo.shape[0]
    for x in range(q + 1, js + 1):
        if strongest_region(smo[x % L], base, region_pts, region_ptr, stats, cfg_f) > 2.0 * max(e_pk, 1.0):
            return True
    return False


@njit(cache=True)
def finalize(c_end, js, index, t, tb, cfg, st, final=False):
    """A candidate ended at centre ``c_end``. Apex and onset from the dominant regions'
    two-sided profile (drift-proof), blink-affected centres left out; offset where the
    displacement from the shape before the movement falls back below ``level`` of its
    apex. Not back within a micro-expression's time: a longer movement, followed until
    it returns (``follow``). A candidate whose displacement grows well past its own peak
    soon after it is the leading edge of a larger movement: it stays ACTIVE (unless
    ``final``: the stream ends here)."""
    L = st.smo.shape[0]
    k, w, h = cfg.i[CI_K], cfg.i[CI_W], cfg.i[CI_H]
    st_i = st.st_i
    start = st_i[SI_START]
    lo = max(max(start - k, js + h - L + 1), max(k + w - 1, h))
    remark_blinks(cfg, st, lo, c_end, js)
    peak, apex = candidate_apex(tb, cfg, st, start, c_end)
    if peak < 1.0:
        st_i[SI_STATE] = IDLE
        st_i[SI_ARMED] = 0
        st_i[SI_QUIET] = c_end
        return ST_REJ_BLINK
    on, off = dominant_profile(tb, cfg, st, lo, c_end, apex, peak)
    # How long did it last? Its displacement from the shape before it: the w frames
    # ending k before the first trigger (before a slow rise began), moved back before
    # any blink near them (a blink moves the brows' points too), else the w frames
    # ending at the profile's onset.
    b_end = clean_before(cfg, st, max(start - k, lo), js)
    b_end = on if b_end < 0 else min(b_end, on)
    st.base[:, :] = st.avg[b_end % L]
    set_apex(st, apex, st.sig[apex % L, SIG_E])
    e_pk, e_ap = score_from_base(tb, cfg, st, b_end, js, on, off, apex)
    lvl, sig = cfg.f[CF_LEVEL] * e_pk, st.sig
    q = e_ap                                        # onset: where it last rose above lvl
    while q > b_end and sig[q % L, SIG_E] > lvl:
        q -= 1
    set_onset(st, q)
    q = back_within_micro(cfg, st, max(e_ap, apex), js, lvl)
    if q >= 0:
        if not final and c_end - start < cfg.i[CI_MAX_ACTIVE] and grows_after(tb, cfg, st, q, js, e_pk):
            st_i[SI_STATE] = ACTIVE
            st_i[SI_BELOW] = 0
            return ST_NONE
        return emit(q, index, t, False, tb, cfg, st)
    if (not final and c_end - start < cfg.i[CI_MAX_ACTIVE]
            and st.meta[js % L, 1] - st.st_f[SF_ONSET_T] <= cfg.f[CF_MAX_MICRO_S]):
        # not back by the newest frame, but it can still end as a micro-expression: decide
        # on a later frame (the look-ahead behind the centre can be shorter than its fall)
        st_i[SI_STATE] = ACTIVE
        return ST_NONE
    if e_pk < cfg.f[CF_MACRO_MIN]:
        # too faint to follow through the tracker's drift: the two-sided profile's extent
        set_onset(st, on)
        return emit(off, index, t, False, tb, cfg, st)
    return follow(js, index, t, tb, cfg, st)


@njit(cache=True)
def follow(js, index, t, tb, cfg, st):
    """A longer movement: its apex is the score's peak since the onset. Reported if it is
    already back below ``level`` of it or has settled, else followed from here (TRACK)."""
    sig = st.sig
    L = sig.shape[0]
    best, ap = -1e300, st.st_i[SI_ONSET]
    for q in range(st.st_i[SI_ONSET], js + 1):
        if sig[q % L, SIG_E] > best:
            best, ap = sig[q % L, SIG_E], q
    set_apex(st, ap, best)
    level = cfg.f[CF_LEVEL] * best
    st.st_f[SF_LEVEL] = level
    q = ap
    while q < js and sig[q % L, SIG_E] > level:
        q += 1
    if sig[q % L, SIG_E] <= level:
        return emit(q, index, t, True, tb, cfg, st)
    q = settled_at(cfg, st, ap + 1, js, best)
    if q >= 0:
        return emit(q, index, t, True, tb, cfg, st)
    st.st_i[SI_STATE] = TRACK
    return ST_NONE


@njit(cache=True)
def still(sig, lo, hi):
    """The score varied by less than one threshold over local frames lo..hi."""
    L = sig.shape[0]
    a, b = 1e300, -1e300
    for q in range(lo, hi + 1):
        a = min(a, sig[q % L, SIG_E])
        b = max(b, sig[q % L, SIG_E])
    return b - a < 1.0


@njit(cache=True)
def settled_at(cfg, st, lo, hi, peak):
    """The first local frame q in lo..hi - CI_STILL from which the score stays still for
    CI_STILL frames below CF_SETTLED of ``peak``, within a micro-expression's time of the
    onset; -1 if none. A real ME often leaves some displacement: it came partway back,
    then the face stopped moving, and coders put its offset there."""
    sig, meta = st.sig, st.meta
    L, n_still, frac = sig.shape[0], cfg.i[CI_STILL], cfg.f[CF_SETTLED]
    t_max = st.st_f[SF_ONSET_T] + cfg.f[CF_MAX_MICRO_S]
    for q in range(lo, hi - n_still + 1):
        if meta[q % L, 1] > t_max:
            return -1
        if sig[q % L, SIG_E] < frac * peak and still(sig, q, q + n_still):
            return q
    return -1


@njit(cache=True)
def track(js, index, t, tb, cfg, st):
    """Follow a longer movement until it returns below ``level`` of its apex, or is still
    and either most of the way back (a blink or flow drift in the shape before it can keep
    it from returning all the way) or nearer the neutral face than that shape (a movement
    first caught on its way back never returns to it), or MAX_TRACK."""
    st_i, st_f, shape = st.st_i, st.st_f, st.smo[js % st.smo.shape[0]]
    e = movement_score(shape, st.base, tb.region_pts, tb.region_ptr, st.stats, st.wts, cfg.f)
    st.sig[js % st.sig.shape[0], SIG_E] = e
    if e > st_f[SF_EPEAK]:
        set_apex(st, js, e)
        st_f[SF_LEVEL] = cfg.f[CF_LEVEL] * e
    n, n_still = js - st_i[SI_ONSET], cfg.i[CI_STILL]
    q = settled_at(cfg, st, max(st_i[SI_APEX] + 1, js - n_still), js, st_f[SF_EPEAK])
    if q >= 0:
        return emit(q, index, t, True, tb, cfg, st)
    back = n >= n_still and still(st.sig, js - n_still, js) and (
        e < 0.5 * st_f[SF_EPEAK]
        or movement_score(shape, st.neutral, tb.region_pts, tb.region_ptr, st.stats, st.wts, cfg.f) < 0.5 * e)
    if e <= st_f[SF_LEVEL] or n >= cfg.i[CI_MAX_TRACK] or back:
        return emit(js, index, t, True, tb, cfg, st)
    return ST_NONE


@njit(cache=True)
def settle(js, tb, cfg, st):
    """After a macro: re-arm once it is back under ``settle`` thresholds or still (or
    after CI_MAX_SETTLE), so its tail or a slow return never looks like a new movement."""
    st_i = st.st_i
    e = movement_score(st.smo[js % st.smo.shape[0]], st.base, tb.region_pts, tb.region_ptr, st.stats, st.wts, cfg.f)
    st.sig[js % st.sig.shape[0], SIG_E] = e
    n, n_still = js - st_i[SI_SETTLE0], cfg.i[CI_STILL]
    if e <= cfg.f[CF_SETTLE] or n >= cfg.i[CI_MAX_SETTLE] or (n >= n_still and still(st.sig, js - n_still, js)):
        st_i[SI_STATE] = IDLE
        st_i[SI_QUIET] = max(st_i[SI_QUIET], js)   # centres up to here saw the movement


# ------------------------------------------------------------------ one frame
# The per-frame path hands its helpers arrays, not records: numba increfs every array of
# a record argument on each call, which cost ~0.2 us per call and frame.
@njit(cache=True)
def shutting(ap, st_f, slot, drop, alpha):
    """Is aperture ``ap`` ``drop`` below the running open value in ``st_f[slot]``? The
    open value follows ``ap`` while the eyes are open."""
    ref = st_f[slot]
    if ref <= 0.0:
        ref = ap
    closed = ap < (1.0 - drop) * ref
    if not closed:
        ref += alpha * (ap - ref)
    st_f[slot] = ref
    return closed


@njit(cache=True)
def eyes(js, lids, corners, cfg_f, raw, sig, st_f):
    """Eye aperture at frame js (unsmoothed: a blink can last 3 frames at 30 fps) of the
    flow points and of the face mesh, each against its running open-eye aperture: either
    one shutting marks the frame."""
    L = raw.shape[0]
    ap = aperture(raw[js % L], lids, corners)
    sig[js % L, SIG_AP] = ap
    closed = shutting(ap, st_f, SF_AP_REF, cfg_f[CF_BLINK_DROP], cfg_f[CF_AP_ALPHA])
    mesh = sig[js % L, SIG_MESH_AP]
    if mesh == mesh and mesh > 0.0:
        closed = shutting(mesh, st_f, SF_MESH_AP_REF, cfg_f[CF_MESH_BLINK_DROP], cfg_f[CF_AP_ALPHA]) or closed
    sig[js % L, SIG_CLOSED] = 1.0 if closed else 0.0


@njit(cache=True)
def blink_near(sig, c, js, cfg_i):
    """Are the eyes shut within CI_NEAR (blink-affected) / CI_NEAR_NOISE (no noise sample)
    frames of centre c?"""
    L, h = sig.shape[0], cfg_i[CI_H]
    n_near, n_noise = cfg_i[CI_NEAR], cfg_i[CI_NEAR_NOISE]
    n_any = max(n_near, n_noise)
    near, near_noise = False, False
    for q in range(max(h, c - n_any), min(js, c + n_any) + 1):
        if sig[q % L, SIG_CLOSED] > 0.0:
            near = near or abs(q - c) <= n_near
            near_noise = near_noise or abs(q - c) <= n_noise
    return near, near_noise


@njit(cache=True)
def centre_values(sc, sa, sb, ready, region_pts, region_ptr, stats, cfg_f, row, bvals, sample):
    """The centre's smoothed shape ``sc`` against the w-frame means before (``sa``) and after
    (``sb``) it: b_r and u_r (zero until the noise is ready) into its sig ``row``, ``bvals``
    and the motion sample. Returns v = max u_r and the largest one-sided difference in
    thresholds (a slow ramp shows there)."""
    R = stats.shape[0]
    v, v_side = -1e300, -1e300
    for r in range(R):
        lo, hi = region_ptr[r], region_ptr[r + 1]
        d1, d2 = region_rms(sc, sa, region_pts, lo, hi), region_rms(sc, sb, region_pts, lo, hi)
        b = min(d1, d2)
        bvals[r] = b
        row[r] = b
        u = (b - stats[r, NS_MED]) / excess(stats, r, cfg_f) if ready else 0.0
        row[R + r] = u
        sample[r] = u
        v = max(v, u)
        # (before the first estimate the stats are zero: a few floors keep ramps out)
        v_side = max(v_side, (max(d1, d2) - stats[r, NS_MED]) / excess(stats, r, cfg_f))
    row[SIG_V] = v
    sample[SA_V] = v
    return v, v_side


@njit(cache=True)
def trigger(c, state, v, ready, cfg_i, cfg_f, st_i):
    """The peak state machine on centre c: re-arm below release, trigger at threshold,
    end a candidate after CI_GAP centres below release or at CI_MAX_ACTIVE. True when a
    candidate ended and is to be decided."""
    release = cfg_f[CF_RELEASE]
    if state == IDLE:
        if st_i[SI_ARMED] == 0 and v < release:
            st_i[SI_ARMED] = 1
        if ready and st_i[SI_ARMED] == 1 and c > st_i[SI_QUIET] and v >= 1.0:
            st_i[SI_STATE] = ACTIVE
            st_i[SI_START] = c
            st_i[SI_BELOW] = 0
    elif state == ACTIVE:
        st_i[SI_BELOW] = st_i[SI_BELOW] + 1 if v < release else 0
        return st_i[SI_BELOW] >= cfg_i[CI_GAP] or c - st_i[SI_START] >= cfg_i[CI_MAX_ACTIVE]
    return False


@njit(cache=True)
def step(points, eye_ap, index, t, *arrays):
    """Process one frame's landmarks and the face mesh's eye aperture (NaN: unknown);
    ``arrays`` are the stream's records flattened (``layout.unpack``). The centre frame's
    motion sample goes to ``st.sample``, a window to ``st.out``; returns a status code."""
    tb, cfg, st = _unpack(arrays)
    cfg_i, cfg_f, st_i = cfg.i, cfg.f, st.st_i
    raw, smo, avg, meta, sig, sample = st.raw, st.smo, st.avg, st.meta, st.sig, st.sample
    L = raw.shape[0]
    k, h, w = cfg_i[CI_K], cfg_i[CI_H], cfg_i[CI_W]
    sample[SA_VALID] = 0.0
    # ---- align into the ring; the neutral face and its stable points drift slowly,
    # not during movements
    j = st_i[SI_M]
    if j == 0 and not init_reference(points, tb.stable, tb.iod_pts, st.ref):
        return ST_BAD
    if not align_frame(points, tb.selected, tb.stable, st.ref, raw[j % L], st.scratch):
        return ST_BAD
    meta[j % L, 0] = index
    meta[j % L, 1] = t
    sig[j % L, SIG_MESH_AP] = eye_ap
    st_i[SI_M] = j + 1
    if st_i[SI_STATE] == IDLE:
        ema(st.ref, st.scratch, cfg_f[CF_REF_ALPHA])
        ema(st.neutral, raw[j % L], cfg_f[CF_REF_ALPHA])
    if j == 0:
        st.neutral[:, :] = raw[0]
    if j >= w - 1:
        box_mean(raw, avg[j % L], j - w + 1, j)
    # ---- the newest frame the box filter reaches: smoothed shape, eyes, and one frame
    # more of a movement being followed or settling
    js = j - h
    if js < h:
        return ST_NONE
    box_mean(raw, smo[js % L], js - h, js + h)
    eyes(js, tb.lids, tb.corners, cfg_f, raw, sig, st.st_f)
    status = ST_NONE
    if st_i[SI_STATE] == TRACK:
        status = track(js, index, t, tb, cfg, st)
    elif st_i[SI_STATE] == SETTLE:
        settle(js, tb, cfg, st)
    # ---- the centre frame: smoothed shape against the w-frame means ending k frames
    # before it and starting ka <= k frames after it (the look-ahead, so the lag)
    ka = cfg_i[CI_KA]
    c = j - ka - max(w - 1, h)
    if c - k - w + 1 < 0 or c < h:
        return status
    near, near_noise = blink_near(sig, c, js, cfg_i)
    sig[c % L, SIG_NEAR] = 1.0 if near else 0.0
    ready = st_i[SI_NB] >= cfg_i[CI_NB_MIN]
    v, v_side = centre_values(smo[c % L], avg[(c - k) % L], avg[(c + ka + w - 1) % L], ready, tb.region_pts,
                              tb.region_ptr, st.stats, cfg_f, sig[c % L], st.bvals, sample)
    sample[SA_INDEX] = meta[c % L, 0]
    sample[SA_T] = meta[c % L, 1]
    sample[SA_VALID] = 1.0
    state = st_i[SI_STATE]
    # ---- noise: quiet centres only (idle, eyes open, no side of the difference above
    # threshold: the slow ramp of a long movement is no noise sample either)
    if state == IDLE and not near_noise and v_side < (1.0 if ready else cfg_f[CF_WARM_GATE]):
        st_i[SI_SKIP] += 1
        if st_i[SI_SKIP] >= cfg_i[CI_NB_EVERY]:
            st_i[SI_SKIP] = 0
            st_i[SI_NB] = noise_sample(st.bvals, st.nbuf, st.stats, st_i[SI_NB], cfg_i, cfg_f)
    if near:    # the lids and brows are no evidence here, the rest counts at a higher threshold
        v = centre_value(sig, c % L, st.stats.shape[0], tb.blink_mask, cfg_f[CF_BLINK_GAIN])
    if trigger(c, state, v, ready, cfg_i, cfg_f, st_i):
        status = finalize(c, js, index, t, tb, cfg, st)
    return status

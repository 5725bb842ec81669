"""Plain NumPy reference of ``kernels.py``: same algorithm, same state arrays, same outputs.

Written the obvious vectorised way so the numba kernels can be checked against
it (tests compare them frame by frame) and so the algorithm can be read without
the loops numba wants. ``Spotter(backend="numpy")`` runs on it.
"""
from __future__ import annotations

import numpy as np

from .layout import (
    ACTIVE, CF_AP_ALPHA, CF_BLINK_DROP, CF_DOM, CF_FLOOR, CF_GAIN, CF_LEVEL, CF_MACRO_MIN, CF_MAX_MICRO_S,
    CF_MIN_MICRO_S, CF_Q, CF_REF_ALPHA, CF_SETTLED, CF_WARM_GATE, CF_RELEASE, CF_SENS, CF_SETTLE, CI_GAP, CI_H, CI_K, CI_MAX_ACTIVE,
    CI_MAX_SETTLE, CI_MAX_TRACK, CI_NB_EVERY, CI_NB_MIN, CI_NEAR, CI_NEAR_NOISE, CI_STILL, CI_W, IDLE, NS_GAIN,
    NS_MED, NS_Q,
    O_AP_APEX, O_AP_BASE, O_APEX, O_APEX_T, O_BLINK, O_CONF_I, O_CONF_T, O_KIND, O_OFFSET, O_OFFSET_T, O_ONSET,
    O_ONSET_T, O_PEAK, O_REG, SETTLE, SF_AP_REF, SF_APEX_I, SF_APEX_T, SF_EPEAK, SF_LEVEL, SF_ONSET_I,
    SF_ONSET_T, SF_PEAKV, SI_APEX, SI_ARMED, SI_BELOW, SI_BLINK, SI_M, SI_NB, SI_ONSET, SI_QUIET, SI_SETTLE0,
    SI_SKIP, SI_START, SI_STATE, ST_BAD, ST_NONE, ST_REJ_BLINK, ST_REJ_SHORT, ST_WINDOW, TRACK,
)


def _slots(lo, hi, L):
    return np.arange(lo, hi + 1) % L


# ------------------------------------------------------------------ geometry
def init_reference(points, stable, iod_pts, ref) -> bool:
    xy = points[:, :2].astype(np.float64)
    d = xy[iod_pts[1]].mean(axis=0) - xy[iod_pts[0]].mean(axis=0)
    iod = float(np.hypot(*d))
    if not iod > 1e-6:
        return False
    cs, sn = d / iod
    rot = np.array([[cs, sn], [-sn, cs]])
    s = xy[stable] - xy[stable].mean(axis=0)
    ref[:] = s @ rot.T / iod
    return True


def align_frame(points, selected, stable, ref, out, stable_out) -> bool:
    xy = points[:, :2].astype(np.float64)
    src = xy[stable]
    ms, md = src.mean(axis=0), ref.mean(axis=0)
    p, q = src - ms, ref - md
    var = float((p * p).sum())
    a = float((p * q).sum())
    b = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum())
    if not var > 1e-12 or not np.isfinite(a + b):
        return False
    m = np.array([[a, -b], [b, a]]) / var
    out[:] = (xy[selected] - ms) @ m.T + md
    stable_out[:] = p @ m.T + md
    return True


def region_rms_all(x, y, region_ptr, region_pts) -> np.ndarray:
    """RMS displacement of every region at once."""
    sq = ((x[region_pts] - y[region_pts]) ** 2).sum(axis=1)
    return np.sqrt(np.add.reduceat(sq, region_ptr[:-1]) / np.diff(region_ptr))


def aperture(x, lids, corners) -> float:
    """Lid opening over eye width, both eyes averaged (also used on whole face meshes by ``flow.py``)."""
    lid = np.linalg.norm(x[lids[:, :, 0]] - x[lids[:, :, 1]], axis=2).mean(axis=1)
    w = np.linalg.norm(x[corners[:, 0]] - x[corners[:, 1]], axis=1)
    return float((lid / np.maximum(w, 1e-9)).mean())


# ------------------------------------------------------------------ noise
def excess_all(stats, cfg_f) -> np.ndarray:
    e = np.maximum(cfg_f[CF_GAIN] * (stats[:, NS_Q] - stats[:, NS_MED]), cfg_f[CF_FLOOR])
    return e * stats[:, NS_GAIN] / cfg_f[CF_SENS]


def refresh(nbuf, stats, m, regions, cfg_f):
    col = np.sort(nbuf[:m][:, regions], axis=0)
    stats[regions, NS_MED] = 0.5 * (col[(m - 1) // 2] + col[m // 2])
    stats[regions, NS_Q] = col[min(m - 1, int(np.ceil(cfg_f[CF_Q] * (m - 1))))]


def noise_sample(b, nbuf, stats, n, cfg_i, cfg_f) -> int:
    nb, R = len(nbuf), len(b)
    nbuf[n % nb] = b
    n += 1
    m = min(n, nb)
    if n == cfg_i[CI_NB_MIN]:
        refresh(nbuf, stats, m, np.arange(R), cfg_f)
    elif n > cfg_i[CI_NB_MIN]:
        refresh(nbuf, stats, m, np.array([n % R]), cfg_f)
    return n


# ------------------------------------------------------------------ decisions
def strongest_region(shape, base, region_pts, region_ptr, stats, cfg_f) -> float:
    d = region_rms_all(shape, base, region_ptr, region_pts)
    return float(((d - stats[:, NS_MED]) / excess_all(stats, cfg_f)).max())


def movement_score(shape, base, region_pts, region_ptr, stats, wts, cfg_f) -> float:
    on = wts > 0
    if not on.any():
        return 0.0
    d = region_rms_all(shape, base, region_ptr, region_pts)
    z = (d - stats[:, NS_MED]) / excess_all(stats, cfg_f)
    return float((wts[on] * z[on]).sum() / wts[on].sum())


def emit(off, index, t, settle_after, cfg_f, region_pts, region_ptr, lids, corners, meta, base, apex_shape,
         st_i, st_f, out):
    L = meta.shape[0]
    st_i[SI_ARMED] = 0
    st_i[SI_QUIET] = off
    st_i[SI_STATE] = SETTLE if settle_after else IDLE
    st_i[SI_SETTLE0] = off
    onset_t, offset_t = st_f[SF_ONSET_T], meta[off % L, 1]
    dur = offset_t - onset_t
    if dur < cfg_f[CF_MIN_MICRO_S]:
        return ST_REJ_SHORT
    out[O_ONSET], out[O_APEX], out[O_OFFSET] = st_f[SF_ONSET_I], st_f[SF_APEX_I], meta[off % L, 0]
    out[O_ONSET_T], out[O_APEX_T], out[O_OFFSET_T] = onset_t, st_f[SF_APEX_T], offset_t
    out[O_KIND] = 0.0 if dur <= cfg_f[CF_MAX_MICRO_S] else 1.0
    out[O_PEAK] = st_f[SF_EPEAK]
    out[O_BLINK] = float(st_i[SI_BLINK])
    out[O_CONF_I], out[O_CONF_T] = index, t
    out[O_AP_BASE] = st_f[SF_AP_REF]
    out[O_AP_APEX] = aperture(apex_shape, lids, corners)
    out[O_REG:] = region_rms_all(apex_shape, base, region_ptr, region_pts)
    return ST_WINDOW


def set_apex(j, smo, meta, apex_shape, st_i, st_f, e):
    L = smo.shape[0]
    st_i[SI_APEX] = j
    st_f[SF_EPEAK] = e
    st_f[SF_APEX_I], st_f[SF_APEX_T] = meta[j % L]
    apex_shape[:] = smo[j % L]


def set_onset(j, meta, st_i, st_f):
    st_i[SI_ONSET] = j
    st_f[SF_ONSET_I], st_f[SF_ONSET_T] = meta[j % meta.shape[0]]


def clean_before(q, sig, cfg_i, js):
    L, col = sig.shape[0], sig.shape[1] - 3
    w, near, h = int(cfg_i[CI_W]), int(cfg_i[CI_NEAR_NOISE]), int(cfg_i[CI_H])
    first = max(js + h - L + 1, h)
    b = q
    while True:
        x = np.arange(max(first, b - w + 1 - near), min(js, b + near) + 1)
        hit = x[sig[x % L, col] > 0]
        if len(hit) == 0:
            return b
        b = int(hit[0]) - near - 1
        if b - w + 1 - near < first:
            return -1


def finalize(c_end, js, index, t, region_pts, region_ptr, lids, corners, cfg_i, cfg_f, smo, avg, meta, sig,
             stats, base, apex_shape, wts, st_i, st_f, out, final=False):
    L = smo.shape[0]
    R = len(region_ptr) - 1
    k, w, h = int(cfg_i[CI_K]), int(cfg_i[CI_W]), int(cfg_i[CI_H])
    ce = 2 * R + 4
    start = int(st_i[SI_START])
    lo = max(start - k, js + h - L + 1, k + w - 1, h)
    frames = np.arange(lo, c_end + 1)
    rows = sig[frames % L]
    u, near = rows[:, R:2 * R], rows[:, 2 * R + 3] > 0
    inside = frames >= start
    st_i[SI_BLINK] = int(near[inside].any())
    vals = np.where((inside & ~near)[:, None], u, -np.inf)
    flat = int(np.argmax(vals))             # row-major: earliest centre, then lowest region, like the kernel
    i, peak = flat // R, float(vals.flat[flat])
    apex = int(frames[i])
    st_f[SF_PEAKV] = peak if np.isfinite(peak) else -1e300
    if peak < 1.0:
        st_i[SI_STATE] = IDLE
        st_i[SI_ARMED] = 0
        st_i[SI_QUIET] = c_end
        return ST_REJ_BLINK
    wts[:] = (u[i] >= cfg_f[CF_DOM] * peak).astype(np.float64)
    on_ = wts > 0
    prof = np.where(near, -1e300, (u[:, on_] * wts[on_]).sum(axis=1) / wts.sum())
    sig[frames % L, ce] = prof
    pk = float(prof[i])
    level = cfg_f[CF_LEVEL] * pk
    below = prof <= level
    b = np.nonzero(below[1:i + 1])[0]
    on = int(frames[b[-1] + 1]) if len(b) else lo
    a = np.nonzero(below[i:-1])[0]
    off = int(frames[i + a[0]]) if len(a) else c_end
    b_end = clean_before(max(start - k, lo), sig, cfg_i, js)
    b_end = on if b_end < 0 else min(b_end, on)
    base[:] = avg[b_end % L]
    set_apex(apex, smo, meta, apex_shape, st_i, st_f, pk)
    later = np.arange(b_end, js + 1)
    e = np.array([movement_score(smo[q % L], base, region_pts, region_ptr, stats, wts, cfg_f) for q in later])
    sig[later % L, ce] = e
    span = (later >= on) & (later <= off)
    i = int(np.argmax(np.where(span, e, -np.inf)))
    lvl = cfg_f[CF_LEVEL] * float(e[i])
    up = np.nonzero(e[1:i + 1] <= lvl)[0]
    o = up[-1] + 1 if len(up) else 0
    set_onset(int(later[o]), meta, st_i, st_f)
    dt = meta[later % L, 1] - meta[later[o] % L, 1]
    s0 = max(i, apex - b_end)
    back = np.nonzero((e[s0:] <= lvl) & (dt[s0:] <= cfg_f[CF_MAX_MICRO_S]))[0]
    late = np.nonzero(dt[s0:] > cfg_f[CF_MAX_MICRO_S])[0]
    if len(back) and (not len(late) or back[0] < late[0]):
        q = s0 + back[0]
        if not final and c_end - start < cfg_i[CI_MAX_ACTIVE] and any(
                strongest_region(smo[x % L], base, region_pts, region_ptr, stats, cfg_f) > 2.0 * max(e[i], 1.0)
                for x in later[q + 1:]):
            st_i[SI_STATE] = ACTIVE             # the leading edge of a larger movement: not over
            st_i[SI_BELOW] = 0
            return ST_NONE
        return emit(int(later[q]), index, t, False, cfg_f, region_pts, region_ptr, lids, corners, meta,
                    base, apex_shape, st_i, st_f, out)
    if float(e[i]) < cfg_f[CF_MACRO_MIN]:
        set_onset(on, meta, st_i, st_f)
        return emit(off, index, t, False, cfg_f, region_pts, region_ptr, lids, corners, meta, base, apex_shape,
                    st_i, st_f, out)
    e, later = e[o:], later[o:]
    i = int(np.argmax(e))
    set_apex(int(later[i]), smo, meta, apex_shape, st_i, st_f, float(e[i]))
    level = cfg_f[CF_LEVEL] * float(e[i])
    st_f[SF_LEVEL] = level
    done = np.nonzero(e[i:] <= level)[0]
    if len(done):
        return emit(int(later[i + done[0]]), index, t, True, cfg_f, region_pts, region_ptr, lids, corners, meta,
                    base, apex_shape, st_i, st_f, out)
    q = settled_at(sig, ce, meta, int(later[i]) + 1, js, int(cfg_i[CI_STILL]), float(e[i]), cfg_f[CF_SETTLED],
                   st_f[SF_ONSET_T] + cfg_f[CF_MAX_MICRO_S])
    if q >= 0:
        return emit(q, index, t, True, cfg_f, region_pts, region_ptr, lids, corners, meta, base, apex_shape,
                    st_i, st_f, out)
    st_i[SI_STATE] = TRACK
    return ST_NONE


def still(sig, col, lo, hi):
    v = sig[_slots(lo, hi, sig.shape[0]), col]
    return v.max() - v.min() < 1.0


def settled_at(sig, col, meta, lo, hi, n_still, peak, frac, t_max) -> int:
    L = sig.shape[0]
    for q in range(lo, hi - n_still + 1):
        if meta[q % L, 1] > t_max:
            return -1
        if sig[q % L, col] < frac * peak and still(sig, col, q, q + n_still):
            return q
    return -1


def track(js, index, t, region_pts, region_ptr, lids, corners, cfg_i, cfg_f, smo, meta, sig, stats, base,
          neutral, apex_shape, wts, st_i, st_f, out):
    L = smo.shape[0]
    R = len(region_ptr) - 1
    e = movement_score(smo[js % L], base, region_pts, region_ptr, stats, wts, cfg_f)
    sig[js % L, 2 * R + 4] = e
    if e > st_f[SF_EPEAK]:
        set_apex(js, smo, meta, apex_shape, st_i, st_f, e)
        st_f[SF_LEVEL] = cfg_f[CF_LEVEL] * e
    n, n_still = js - st_i[SI_ONSET], int(cfg_i[CI_STILL])
    q = settled_at(sig, 2 * R + 4, meta, max(int(st_i[SI_APEX]) + 1, js - n_still), js, n_still, st_f[SF_EPEAK],
                   cfg_f[CF_SETTLED], st_f[SF_ONSET_T] + cfg_f[CF_MAX_MICRO_S])
    if q >= 0:
        return emit(q, index, t, True, cfg_f, region_pts, region_ptr, lids, corners, meta, base, apex_shape,
                    st_i, st_f, out)
    back = n >= n_still and still(sig, 2 * R + 4, js - n_still, js) and (
        e < 0.5 * st_f[SF_EPEAK]
        or movement_score(smo[js % L], neutral, region_pts, region_ptr, stats, wts, cfg_f) < 0.5 * e)
    if e <= st_f[SF_LEVEL] or n >= cfg_i[CI_MAX_TRACK] or back:
        return emit(js, index, t, True, cfg_f, region_pts, region_ptr, lids, corners, meta, base, apex_shape,
                    st_i, st_f, out)
    return ST_NONE


def settle(js, region_pts, region_ptr, cfg_i, cfg_f, smo, sig, stats, base, wts, st_i):
    ce = 2 * (len(region_ptr) - 1) + 4
    e = movement_score(smo[js % smo.shape[0]], base, region_pts, region_ptr, stats, wts, cfg_f)
    sig[js % sig.shape[0], ce] = e
    n, n_still = js - st_i[SI_SETTLE0], int(cfg_i[CI_STILL])
    if e <= cfg_f[CF_SETTLE] or n >= cfg_i[CI_MAX_SETTLE] or (n >= n_still and still(sig, ce, js - n_still, js)):
        st_i[SI_STATE] = IDLE
        st_i[SI_QUIET] = max(st_i[SI_QUIET], js)


# ------------------------------------------------------------------ one frame
def eyes(js, lids, corners, cfg_f, raw, sig, st_f):
    L = raw.shape[0]
    R = (sig.shape[1] - 5) // 2
    x = raw[js % L]
    ap = aperture(x, lids, corners)
    sig[js % L, 2 * R + 1] = ap
    ref = st_f[SF_AP_REF] if st_f[SF_AP_REF] > 0 else ap
    closed = ap < (1.0 - cfg_f[CF_BLINK_DROP]) * ref
    if not closed:
        ref += cfg_f[CF_AP_ALPHA] * (ap - ref)
    st_f[SF_AP_REF] = ref
    sig[js % L, 2 * R + 2] = float(closed)


def step(points, index, t, selected, stable, region_ptr, region_pts, lids, corners, iod_pts, cfg_i, cfg_f, ref,
         scratch, raw, smo, avg, meta, sig, stats, nbuf, base, neutral, apex_shape, wts, bvals, st_i, st_f, out,
         sample):
    L = raw.shape[0]
    R = len(region_ptr) - 1
    k, h, w = int(cfg_i[CI_K]), int(cfg_i[CI_H]), int(cfg_i[CI_W])
    sample[R + 3] = 0.0
    j = int(st_i[SI_M])
    if j == 0 and not init_reference(points, stable, iod_pts, ref):
        return ST_BAD
    if not align_frame(points, selected, stable, ref, raw[j % L], scratch):
        return ST_BAD
    meta[j % L] = (index, t)
    st_i[SI_M] = j + 1
    if st_i[SI_STATE] == IDLE:
        ref += cfg_f[CF_REF_ALPHA] * (scratch - ref)
        neutral += cfg_f[CF_REF_ALPHA] * (raw[j % L] - neutral)
    if j == 0:
        neutral[:] = raw[0]
    if j >= w - 1:
        avg[j % L] = raw[_slots(j - w + 1, j, L)].mean(axis=0)
    js = j - h
    if js < h:
        return ST_NONE
    smo[js % L] = raw[_slots(js - h, js + h, L)].mean(axis=0)
    eyes(js, lids, corners, cfg_f, raw, sig, st_f)
    status = ST_NONE
    if st_i[SI_STATE] == TRACK:
        status = track(js, index, t, region_pts, region_ptr, lids, corners, cfg_i, cfg_f, smo, meta, sig, stats,
                       base, neutral, apex_shape, wts, st_i, st_f, out)
    elif st_i[SI_STATE] == SETTLE:
        settle(js, region_pts, region_ptr, cfg_i, cfg_f, smo, sig, stats, base, wts, st_i)
    c = j - k - max(w - 1, h)
    if c - k - w + 1 < 0 or c < h:
        return status
    sc = smo[c % L]
    n_near, n_noise = int(cfg_i[CI_NEAR]), int(cfg_i[CI_NEAR_NOISE])
    near = bool(sig[_slots(max(h, c - n_near), min(js, c + n_near), L), 2 * R + 2].any())
    near_noise = bool(sig[_slots(max(h, c - n_noise), min(js, c + n_noise), L), 2 * R + 2].any())
    d1 = region_rms_all(sc, avg[(c - k) % L], region_ptr, region_pts)
    d2 = region_rms_all(sc, avg[(c + k + w - 1) % L], region_ptr, region_pts)
    b = np.minimum(d1, d2)
    bvals[:] = b
    ready = st_i[SI_NB] >= cfg_i[CI_NB_MIN]
    u = (b - stats[:, NS_MED]) / excess_all(stats, cfg_f) if ready else np.zeros(R)
    v = float(u.max())
    v_side = float(((np.maximum(d1, d2) - stats[:, NS_MED]) / excess_all(stats, cfg_f)).max())
    row = sig[c % L]
    row[:R], row[R:2 * R], row[2 * R], row[2 * R + 3] = b, u, v, float(near)
    sample[:R], sample[R] = u, v
    sample[R + 1], sample[R + 2] = meta[c % L]
    sample[R + 3] = 1.0
    state = st_i[SI_STATE]
    if state == IDLE and not near_noise and v_side < (1.0 if ready else cfg_f[CF_WARM_GATE]):
        st_i[SI_SKIP] += 1
        if st_i[SI_SKIP] >= cfg_i[CI_NB_EVERY]:
            st_i[SI_SKIP] = 0
            st_i[SI_NB] = noise_sample(b, nbuf, stats, int(st_i[SI_NB]), cfg_i, cfg_f)
    release = cfg_f[CF_RELEASE]
    if state == IDLE:
        if st_i[SI_ARMED] == 0 and v < release:
            st_i[SI_ARMED] = 1
        if ready and st_i[SI_ARMED] == 1 and c > st_i[SI_QUIET] and v >= 1.0 and not near:
            st_i[SI_STATE] = ACTIVE
            st_i[SI_START] = c
            st_i[SI_BELOW] = 0
    elif state == ACTIVE:
        st_i[SI_BELOW] = st_i[SI_BELOW] + 1 if v < release else 0
        if st_i[SI_BELOW] >= cfg_i[CI_GAP] or c - st_i[SI_START] >= cfg_i[CI_MAX_ACTIVE]:
            status = finalize(c, js, index, t, region_pts, region_ptr, lids, corners, cfg_i, cfg_f, smo, avg, meta,
                              sig, stats, base, apex_shape, wts, st_i, st_f, out)
    return status

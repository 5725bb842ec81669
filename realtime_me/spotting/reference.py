"""Plain NumPy reference of ``kernels.py``: same algorithm, same records, same outputs.

Written the obvious vectorised way so the numba kernels can be checked against
it (tests compare them frame by frame) and so the algorithm can be read without
the loops numba wants. ``Spotter(backend="numpy")`` runs on it.
"""
from __future__ import annotations

import numpy as np

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
def thresholds(shape, base, region_pts, region_ptr, stats, cfg_f) -> np.ndarray:
    """Displacement of every region from ``base``, in thresholds."""
    d = region_rms_all(shape, base, region_ptr, region_pts)
    return (d - stats[:, NS_MED]) / excess_all(stats, cfg_f)


def strongest_region(shape, base, region_pts, region_ptr, stats, cfg_f) -> float:
    return float(thresholds(shape, base, region_pts, region_ptr, stats, cfg_f).max())


def movement_score(shape, base, region_pts, region_ptr, stats, wts, cfg_f) -> float:
    on = wts > 0
    if not on.any():
        return 0.0
    z = thresholds(shape, base, region_pts, region_ptr, stats, cfg_f)
    return float((wts[on] * z[on]).sum() / wts[on].sum())


def score(tb, cfg, st, q, base) -> float:
    """``movement_score`` of the smoothed shape at local frame q."""
    return movement_score(st.smo[q % st.smo.shape[0]], base, tb.region_pts, tb.region_ptr, st.stats, st.wts, cfg.f)


def emit(off, index, t, settle_after, tb, cfg, st):
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
    out[O_ONSET], out[O_APEX], out[O_OFFSET] = st_f[SF_ONSET_I], st_f[SF_APEX_I], st.meta[off % L, 0]
    out[O_ONSET_T], out[O_APEX_T], out[O_OFFSET_T] = onset_t, st_f[SF_APEX_T], offset_t
    out[O_KIND] = 0.0 if dur <= cfg.f[CF_MAX_MICRO_S] else 1.0
    out[O_PEAK] = st_f[SF_EPEAK]
    out[O_BLINK] = float(st_i[SI_BLINK])
    out[O_CONF_I], out[O_CONF_T] = index, t
    out[O_AP_BASE] = st_f[SF_AP_REF]
    out[O_AP_APEX] = aperture(st.apex_shape, tb.lids, tb.corners)
    out[O_REG:] = region_rms_all(st.apex_shape, st.base, tb.region_ptr, tb.region_pts)
    return ST_WINDOW


def set_apex(st, j, e):
    L = st.smo.shape[0]
    st.st_i[SI_APEX] = j
    st.st_f[SF_EPEAK] = e
    st.st_f[SF_APEX_I], st.st_f[SF_APEX_T] = st.meta[j % L]
    st.apex_shape[:] = st.smo[j % L]


def set_onset(st, j):
    st.st_i[SI_ONSET] = j
    st.st_f[SF_ONSET_I], st.st_f[SF_ONSET_T] = st.meta[j % st.meta.shape[0]]


def clean_before(cfg, st, q, js):
    L = st.sig.shape[0]
    w, near, h = int(cfg.i[CI_W]), int(cfg.i[CI_NEAR_NOISE]), int(cfg.i[CI_H])
    first = max(js + h - L + 1, h)
    b = q
    while True:
        x = np.arange(max(first, b - w + 1 - near), min(js, b + near) + 1)
        hit = x[st.sig[x % L, SIG_CLOSED] > 0]
        if len(hit) == 0:
            return b
        b = int(hit[0]) - near - 1
        if b - w + 1 - near < first:
            return -1


def finalize(c_end, js, index, t, tb, cfg, st, final=False):
    L = st.smo.shape[0]
    R = len(tb.region_ptr) - 1
    k, w, h = int(cfg.i[CI_K]), int(cfg.i[CI_W]), int(cfg.i[CI_H])
    st_i, sig = st.st_i, st.sig
    start = int(st_i[SI_START])
    lo = max(start - k, js + h - L + 1, k + w - 1, h)
    n_near, first = int(cfg.i[CI_NEAR]), max(h, js + h - L + 1)
    for q in range(lo, c_end + 1):             # blink-affected again, the eyes known up to js
        a, b = max(first, q - n_near), min(js, q + n_near)
        if a <= b and sig[_slots(a, b, L), SIG_CLOSED].any():
            sig[q % L, SIG_NEAR] = 1.0
    frames = np.arange(lo, c_end + 1)
    rows = sig[frames % L]
    near = rows[:, SIG_NEAR] > 0
    u = np.where(near[:, None], blink_values(rows[:, R:2 * R], tb.blink_mask, cfg.f), rows[:, R:2 * R])
    inside = frames >= start
    st_i[SI_BLINK] = int(near[inside].any())
    vals = np.where(inside[:, None], u, -np.inf)
    flat = int(np.argmax(vals))             # row-major: earliest centre, then lowest region, like the kernel
    i, peak = flat // R, float(vals.flat[flat])
    apex = int(frames[i])
    st.st_f[SF_PEAKV] = peak if np.isfinite(peak) else -1e300
    if peak < 1.0:
        st_i[SI_STATE] = IDLE
        st_i[SI_ARMED] = 0
        st_i[SI_QUIET] = c_end
        return ST_REJ_BLINK
    st.wts[:] = (u[i] >= cfg.f[CF_DOM] * peak).astype(np.float64)
    on_ = st.wts > 0
    prof = np.maximum((u[:, on_] * st.wts[on_]).sum(axis=1) / st.wts.sum(), -1e300)
    sig[frames % L, SIG_E] = prof
    pk = float(prof[i])
    level = cfg.f[CF_LEVEL] * pk
    below = prof <= level
    b = np.nonzero(below[1:i + 1])[0]
    on = int(frames[b[-1] + 1]) if len(b) else lo
    a = np.nonzero(below[i:-1])[0]
    off = int(frames[i + a[0]]) if len(a) else c_end
    b_end = clean_before(cfg, st, max(start - k, lo), js)
    b_end = on if b_end < 0 else min(b_end, on)
    st.base[:] = st.avg[b_end % L]
    set_apex(st, apex, pk)
    later = np.arange(b_end, js + 1)
    e = np.array([score(tb, cfg, st, q, st.base) for q in later])
    sig[later % L, SIG_E] = e
    span = (later >= on) & (later <= off)
    i = int(np.argmax(np.where(span, e, -np.inf)))
    lvl = cfg.f[CF_LEVEL] * float(e[i])
    up = np.nonzero(e[1:i + 1] <= lvl)[0]
    o = up[-1] + 1 if len(up) else 0
    set_onset(st, int(later[o]))
    dt = st.meta[later % L, 1] - st.meta[later[o] % L, 1]
    s0 = max(i, apex - b_end)
    back = np.nonzero((e[s0:] <= lvl) & (dt[s0:] <= cfg.f[CF_MAX_MICRO_S]))[0]
    late = np.nonzero(dt[s0:] > cfg.f[CF_MAX_MICRO_S])[0]
    if len(back) and (not len(late) or back[0] < late[0]):
        q = s0 + back[0]
        if not final and c_end - start < cfg.i[CI_MAX_ACTIVE] and any(
                strongest_region(st.smo[x % L], st.base, tb.region_pts, tb.region_ptr, st.stats, cfg.f)
                > 2.0 * max(e[i], 1.0) for x in later[q + 1:]):
            st_i[SI_STATE] = ACTIVE             # the leading edge of a larger movement: not over
            st_i[SI_BELOW] = 0
            return ST_NONE
        return emit(int(later[q]), index, t, False, tb, cfg, st)
    if not final and c_end - start < cfg.i[CI_MAX_ACTIVE] and not len(back) and not len(late):
        st_i[SI_STATE] = ACTIVE                 # not back yet, may still end as a micro-expression: wait
        return ST_NONE
    if float(e[i]) < cfg.f[CF_MACRO_MIN]:
        set_onset(st, on)
        return emit(off, index, t, False, tb, cfg, st)
    return follow(js, index, t, tb, cfg, st)


def follow(js, index, t, tb, cfg, st):
    later = np.arange(st.st_i[SI_ONSET], js + 1)
    e = st.sig[later % st.sig.shape[0], SIG_E]
    i = int(np.argmax(e))
    set_apex(st, int(later[i]), float(e[i]))
    level = cfg.f[CF_LEVEL] * float(e[i])
    st.st_f[SF_LEVEL] = level
    done = np.nonzero(e[i:] <= level)[0]
    if len(done):
        return emit(int(later[i + done[0]]), index, t, True, tb, cfg, st)
    q = settled_at(cfg, st, int(later[i]) + 1, js, float(e[i]))
    if q >= 0:
        return emit(q, index, t, True, tb, cfg, st)
    st.st_i[SI_STATE] = TRACK
    return ST_NONE


def still(sig, lo, hi):
    v = sig[_slots(lo, hi, sig.shape[0]), SIG_E]
    return v.max() - v.min() < 1.0


def settled_at(cfg, st, lo, hi, peak) -> int:
    L, n_still = st.sig.shape[0], int(cfg.i[CI_STILL])
    t_max = st.st_f[SF_ONSET_T] + cfg.f[CF_MAX_MICRO_S]
    for q in range(lo, hi - n_still + 1):
        if st.meta[q % L, 1] > t_max:
            return -1
        if st.sig[q % L, SIG_E] < cfg.f[CF_SETTLED] * peak and still(st.sig, q, q + n_still):
            return q
    return -1


def track(js, index, t, tb, cfg, st):
    st_i, st_f = st.st_i, st.st_f
    e = score(tb, cfg, st, js, st.base)
    st.sig[js % st.sig.shape[0], SIG_E] = e
    if e > st_f[SF_EPEAK]:
        set_apex(st, js, e)
        st_f[SF_LEVEL] = cfg.f[CF_LEVEL] * e
    n, n_still = js - st_i[SI_ONSET], int(cfg.i[CI_STILL])
    q = settled_at(cfg, st, max(int(st_i[SI_APEX]) + 1, js - n_still), js, st_f[SF_EPEAK])
    if q >= 0:
        return emit(q, index, t, True, tb, cfg, st)
    back = n >= n_still and still(st.sig, js - n_still, js) and (
        e < 0.5 * st_f[SF_EPEAK]
        or score(tb, cfg, st, js, st.neutral) < 0.5 * e)
    if e <= st_f[SF_LEVEL] or n >= cfg.i[CI_MAX_TRACK] or back:
        return emit(js, index, t, True, tb, cfg, st)
    return ST_NONE


def settle(js, tb, cfg, st):
    e = score(tb, cfg, st, js, st.base)
    st.sig[js % st.sig.shape[0], SIG_E] = e
    n, n_still = js - st.st_i[SI_SETTLE0], int(cfg.i[CI_STILL])
    if e <= cfg.f[CF_SETTLE] or n >= cfg.i[CI_MAX_SETTLE] or (n >= n_still and still(st.sig, js - n_still, js)):
        st.st_i[SI_STATE] = IDLE
        st.st_i[SI_QUIET] = max(st.st_i[SI_QUIET], js)


# ------------------------------------------------------------------ one frame
def shutting(ap, st_f, slot, drop, alpha) -> bool:
    ref = st_f[slot] if st_f[slot] > 0 else ap
    closed = ap < (1.0 - drop) * ref
    if not closed:
        ref += alpha * (ap - ref)
    st_f[slot] = ref
    return bool(closed)


def eyes(js, lids, corners, cfg_f, raw, sig, st_f):
    L = raw.shape[0]
    ap = aperture(raw[js % L], lids, corners)
    sig[js % L, SIG_AP] = ap
    closed = shutting(ap, st_f, SF_AP_REF, cfg_f[CF_BLINK_DROP], cfg_f[CF_AP_ALPHA])
    mesh = sig[js % L, SIG_MESH_AP]
    if np.isfinite(mesh) and mesh > 0:
        closed = shutting(mesh, st_f, SF_MESH_AP_REF, cfg_f[CF_MESH_BLINK_DROP], cfg_f[CF_AP_ALPHA]) or closed
    sig[js % L, SIG_CLOSED] = float(closed)


def blink_near(sig, c, js, cfg_i):
    L, h = sig.shape[0], int(cfg_i[CI_H])
    n_near, n_noise = int(cfg_i[CI_NEAR]), int(cfg_i[CI_NEAR_NOISE])
    near = bool(sig[_slots(max(h, c - n_near), min(js, c + n_near), L), SIG_CLOSED].any())
    near_noise = bool(sig[_slots(max(h, c - n_noise), min(js, c + n_noise), L), SIG_CLOSED].any())
    return near, near_noise


def centre_values(sc, sa, sb, ready, region_pts, region_ptr, stats, cfg_f, row, bvals, sample):
    R = len(stats)
    d1 = region_rms_all(sc, sa, region_ptr, region_pts)
    d2 = region_rms_all(sc, sb, region_ptr, region_pts)
    b = np.minimum(d1, d2)
    bvals[:] = b
    exc = excess_all(stats, cfg_f)
    u = (b - stats[:, NS_MED]) / exc if ready else np.zeros(R)
    v = float(u.max())
    v_side = float(((np.maximum(d1, d2) - stats[:, NS_MED]) / exc).max())
    row[:R], row[R:2 * R], row[SIG_V] = b, u, v
    sample[:R], sample[SA_V] = u, v
    return v, v_side


def blink_values(u, blink_mask, cfg_f):
    """u (thresholds) at blink-affected centres: the regions a blink moves are no evidence,
    the others count from CF_BLINK_GAIN thresholds on."""
    return np.where(blink_mask > 0, -np.inf, u / cfg_f[CF_BLINK_GAIN])


def trigger(c, state, v, ready, cfg_i, cfg_f, st_i) -> bool:
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
        return bool(st_i[SI_BELOW] >= cfg_i[CI_GAP] or c - st_i[SI_START] >= cfg_i[CI_MAX_ACTIVE])
    return False


def step(points, eye_ap, index, t, *arrays):
    tb, cfg, st = unpack(arrays)
    cfg_i, cfg_f, st_i = cfg.i, cfg.f, st.st_i
    raw, smo, avg, meta, sig, sample = st.raw, st.smo, st.avg, st.meta, st.sig, st.sample
    L = raw.shape[0]
    k, h, w = int(cfg_i[CI_K]), int(cfg_i[CI_H]), int(cfg_i[CI_W])
    sample[SA_VALID] = 0.0
    j = int(st_i[SI_M])
    if j == 0 and not init_reference(points, tb.stable, tb.iod_pts, st.ref):
        return ST_BAD
    if not align_frame(points, tb.selected, tb.stable, st.ref, raw[j % L], st.scratch):
        return ST_BAD
    meta[j % L] = (index, t)
    sig[j % L, SIG_MESH_AP] = eye_ap
    st_i[SI_M] = j + 1
    if st_i[SI_STATE] == IDLE:
        st.ref[:] += cfg_f[CF_REF_ALPHA] * (st.scratch - st.ref)
        st.neutral[:] += cfg_f[CF_REF_ALPHA] * (raw[j % L] - st.neutral)
    if j == 0:
        st.neutral[:] = raw[0]
    if j >= w - 1:
        avg[j % L] = raw[_slots(j - w + 1, j, L)].mean(axis=0)
    js = j - h
    if js < h:
        return ST_NONE
    smo[js % L] = raw[_slots(js - h, js + h, L)].mean(axis=0)
    eyes(js, tb.lids, tb.corners, cfg_f, raw, sig, st.st_f)
    status = ST_NONE
    if st_i[SI_STATE] == TRACK:
        status = track(js, index, t, tb, cfg, st)
    elif st_i[SI_STATE] == SETTLE:
        settle(js, tb, cfg, st)
    ka = int(cfg_i[CI_KA])                # the after side looks ahead ka <= k (the lag)
    c = j - ka - max(w - 1, h)
    if c - k - w + 1 < 0 or c < h:
        return status
    near, near_noise = blink_near(sig, c, js, cfg_i)
    sig[c % L, SIG_NEAR] = float(near)
    ready = st_i[SI_NB] >= cfg_i[CI_NB_MIN]
    v, v_side = centre_values(smo[c % L], avg[(c - k) % L], avg[(c + ka + w - 1) % L], ready, tb.region_pts,
                              tb.region_ptr, st.stats, cfg_f, sig[c % L], st.bvals, sample)
    sample[SA_INDEX], sample[SA_T] = meta[c % L]
    sample[SA_VALID] = 1.0
    state = st_i[SI_STATE]
    if state == IDLE and not near_noise and v_side < (1.0 if ready else cfg_f[CF_WARM_GATE]):
        st_i[SI_SKIP] += 1
        if st_i[SI_SKIP] >= cfg_i[CI_NB_EVERY]:
            st_i[SI_SKIP] = 0
            st_i[SI_NB] = noise_sample(st.bvals, st.nbuf, st.stats, int(st_i[SI_NB]), cfg_i, cfg_f)
    if near:
        R = len(st.stats)
        v = float(blink_values(sig[c % L, R:2 * R], tb.blink_mask, cfg_f).max())
    if trigger(c, state, v, ready, cfg_i, cfg_f, st_i):
        status = finalize(c, js, index, t, tb, cfg, st)
    return status

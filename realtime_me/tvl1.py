"""Dual TV-L1 optical flow, the classifier's flow: OpenCV's ``cv2.optflow.DualTVL1OpticalFlow``
re-done in numba.

Why: the classify stage is almost all TV-L1 (35-50 ms a pair on one core here), and
OpenCV runs every step of every inner iteration as its own pass over the image (plus a
threading round-trip), which at 112x112 costs more than the arithmetic. Here the
thresholding, divergence and primal update are one pass and the dual update another:
about 4x faster on one core.

Same flow, not a look-alike: the model was trained on TV-L1 flow images, so this does
OpenCV's float32 operations in OpenCV's order (its pyramid, cubic remap, median filter and
stopping rule are OpenCV's own calls; its 5x5 median is ``_median5.median5``, exact like
any median and ~6x faster than OpenCV's float path). On the real and generated onset/apex pairs checked
(benchmarks/pipeline.py, ``classify_inputs``) the output is bit-identical. The one
deliberate difference: the dual step's |grad u| is sqrt in float64 rather than hypot,
then rounded to float32 like OpenCV's; the two agree except within a float32 rounding
boundary.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
from numba import njit

from ._median5 import median5

#: OpenCV's defaults for what ``preprocess.TVL1`` does not set
TAU, LAMBDA, THETA, SCALE_STEP, MEDIAN = 0.25, 0.15, 0.3, 0.8, 5  # MEDIAN: _median5's fixed size


@njit(cache=True)
def _centered_gradient(src, dx, dy):
    h, w = src.shape
    lr, lc = h - 1, w - 1
    half = np.float32(0.5)
    for y in range(1, lr):
        for x in range(1, lc):
            dx[y, x] = half * (src[y, x + 1] - src[y, x - 1])
            dy[y, x] = half * (src[y + 1, x] - src[y - 1, x])
    for x in range(1, lc):
        dx[0, x] = half * (src[0, x + 1] - src[0, x - 1])
        dy[0, x] = half * (src[1, x] - src[0, x])
        dx[lr, x] = half * (src[lr, x + 1] - src[lr, x - 1])
        dy[lr, x] = half * (src[lr, x] - src[lr - 1, x])
    for y in range(1, lr):
        dx[y, 0] = half * (src[y, 1] - src[y, 0])
        dy[y, 0] = half * (src[y + 1, 0] - src[y - 1, 0])
        dx[y, lc] = half * (src[y, lc] - src[y, lc - 1])
        dy[y, lc] = half * (src[y + 1, lc] - src[y - 1, lc])
    dx[0, 0] = half * (src[0, 1] - src[0, 0])
    dy[0, 0] = half * (src[1, 0] - src[0, 0])
    dx[0, lc] = half * (src[0, lc] - src[0, lc - 1])
    dy[0, lc] = half * (src[1, lc] - src[0, lc])
    dx[lr, 0] = half * (src[lr, 1] - src[lr, 0])
    dy[lr, 0] = half * (src[lr, 0] - src[lr - 1, 0])
    dx[lr, lc] = half * (src[lr, lc] - src[lr, lc - 1])
    dy[lr, lc] = half * (src[lr, lc] - src[lr - 1, lc])


@njit(cache=True)
def _flow_map(u1, u2, m1, m2):
    h, w = u1.shape
    for y in range(h):
        for x in range(w):
            m1[y, x] = np.float32(x) + u1[y, x]
            m2[y, x] = np.float32(y) + u2[y, x]


@njit(cache=True)
def _grad_rho(I0, I1w, I1wx, I1wy, u1, u2, grad, rho_c):
    h, w = I0.shape
    for y in range(h):
        for x in range(w):
            gx, gy = I1wx[y, x], I1wy[y, x]
            grad[y, x] = gx * gx + gy * gy
            rho_c[y, x] = I1w[y, x] - gx * u1[y, x] - gy * u2[y, x] - I0[y, x]


@njit(cache=True, error_model="numpy", inline="always")
def _primal(gx, gy, g, r, a1, a2, div1, div2, l_t, theta):
    rho = r + (gx * a1 + gy * a2)
    d1 = np.float32(0.0)
    d2 = np.float32(0.0)
    if rho < -l_t * g:
        d1 = l_t * gx
        d2 = l_t * gy
    elif rho > l_t * g:
        d1 = -l_t * gx
        d2 = -l_t * gy
    elif g > np.float32(1.1920929e-07):
        fi = -rho / g
        d1 = fi * gx
        d2 = fi * gy
    return (a1 + d1) + theta * div1, (a2 + d2) + theta * div2


@njit(cache=True, error_model="numpy", inline="always")
def _norm(x, y):
    return np.float32(math.sqrt(np.float64(x) * np.float64(x) + np.float64(y) * np.float64(y)))


@njit(cache=True, error_model="numpy")
def _inner(I1wx, I1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, l_t, theta, taut, iterations, scaled_eps, error,
           sq):
    """Up to ``iterations`` inner steps; stops, as OpenCV does, once the summed squared
    update is <= ``scaled_eps``. Returns that sum."""
    h, w = u1.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for _ in range(iterations):
        if not error > scaled_eps:
            break
        for y in range(h):
            for x in range(w):
                if y > 0 and x > 0:
                    div1 = (p11[y, x] - p11[y, x - 1]) + (p12[y, x] - p12[y - 1, x])
                    div2 = (p21[y, x] - p21[y, x - 1]) + (p22[y, x] - p22[y - 1, x])
                elif y == 0 and x > 0:
                    div1 = p11[0, x] - p11[0, x - 1] + p12[0, x]
                    div2 = p21[0, x] - p21[0, x - 1] + p22[0, x]
                elif x == 0 and y > 0:
                    div1 = p11[y, 0] + p12[y, 0] - p12[y - 1, 0]
                    div2 = p21[y, 0] + p22[y, 0] - p22[y - 1, 0]
                else:
                    div1 = p11[0, 0] + p12[0, 0]
                    div2 = p21[0, 0] + p22[0, 0]
                a1, a2 = u1[y, x], u2[y, x]
                n1, n2 = _primal(I1wx[y, x], I1wy[y, x], grad[y, x], rho_c[y, x], a1, a2, div1, div2, l_t, theta)
                u1[y, x] = n1
                u2[y, x] = n2
                e1 = n1 - a1
                e2 = n2 - a2
                sq[y, x] = e1 * e1 + e2 * e2
        err = np.float32(0.0)
        for y in range(h):        # summed in OpenCV's order, in float32
            for x in range(w):
                err += sq[y, x]
        error = err
        for y in range(h):
            last = y == h - 1
            for x in range(w - 1):
                c1, c2 = u1[y, x], u2[y, x]
                u1x = u1[y, x + 1] - c1
                u2x = u2[y, x + 1] - c2
                u1y = zero if last else u1[y + 1, x] - c1
                u2y = zero if last else u2[y + 1, x] - c2
                ng1 = one + taut * _norm(u1x, u1y)
                ng2 = one + taut * _norm(u2x, u2y)
                p11[y, x] = (p11[y, x] + taut * u1x) / ng1
                p12[y, x] = (p12[y, x] + taut * u1y) / ng1
                p21[y, x] = (p21[y, x] + taut * u2x) / ng2
                p22[y, x] = (p22[y, x] + taut * u2y) / ng2
            x = w - 1
            u1y = zero if last else u1[y + 1, x] - u1[y, x]
            u2y = zero if last else u2[y + 1, x] - u2[y, x]
            ng1 = one + taut * _norm(zero, u1y)
            ng2 = one + taut * _norm(zero, u2y)
            p11[y, x] = (p11[y, x] + taut * zero) / ng1
            p12[y, x] = (p12[y, x] + taut * u1y) / ng1
            p21[y, x] = (p21[y, x] + taut * zero) / ng2
            p22[y, x] = (p22[y, x] + taut * u2y) / ng2
    return error


def tvl1(I0: np.ndarray, I1: np.ndarray, scales: int = 5, warps: int = 5, inner: int = 30, outer: int = 10,
         epsilon: float = 0.01) -> np.ndarray:
    """(H,W,2) float32 flow from gray ``I0`` to ``I1`` (uint8, or float in 0..1 as OpenCV takes
    it): what ``DualTVL1OpticalFlow_create()`` with these settings (defaults: OpenCV's) returns."""
    scale = np.float32(1.0 if np.asarray(I0).dtype == np.uint8 else 255.0)
    i0s, i1s = [np.asarray(I0, np.float32) * scale], [np.asarray(I1, np.float32) * scale]
    for _ in range(1, scales):
        a = cv2.resize(i0s[-1], (0, 0), fx=SCALE_STEP, fy=SCALE_STEP, interpolation=cv2.INTER_LINEAR)
        b = cv2.resize(i1s[-1], (0, 0), fx=SCALE_STEP, fy=SCALE_STEP, interpolation=cv2.INTER_LINEAR)
        if a.shape[0] < 16 or a.shape[1] < 16:
            break
        i0s.append(a)
        i1s.append(b)
    l_t, taut, theta = np.float32(LAMBDA * THETA), np.float32(TAU / THETA), np.float32(THETA)
    u1 = u2 = None
    for a, b in zip(reversed(i0s), reversed(i1s)):
        h, w = a.shape
        if u1 is None:
            u1, u2 = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
        else:  # zoom the coarser flow
            u1 = cv2.resize(u1, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(1 / SCALE_STEP)
            u2 = cv2.resize(u2, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32(1 / SCALE_STEP)
        eps = np.float32(epsilon * epsilon * h * w)
        bx, by = np.empty_like(b), np.empty_like(b)
        _centered_gradient(b, bx, by)
        m1, m2, grad, rho, sq = (np.empty_like(b) for _ in range(5))
        p = [np.zeros_like(b) for _ in range(4)]
        for _ in range(warps):
            _flow_map(u1, u2, m1, m2)
            bw = cv2.remap(b, m1, m2, cv2.INTER_CUBIC)
            bwx = cv2.remap(bx, m1, m2, cv2.INTER_CUBIC)
            bwy = cv2.remap(by, m1, m2, cv2.INTER_CUBIC)
            _grad_rho(a, bw, bwx, bwy, u1, u2, grad, rho)
            error = np.float32(np.finfo(np.float32).max)
            for _ in range(outer):
                if not error > eps:
                    break
                u1 = median5(u1)   # cv2.medianBlur(u, MEDIAN), bit for bit, ~6x faster
                u2 = median5(u2)
                # float32 again: numba hands back a Python float, and a float64 ``error`` would
                # compile (and dispatch to) a second specialisation of _inner
                error = np.float32(_inner(bwx, bwy, grad, rho, u1, u2, p[0], p[1], p[2], p[3], l_t, theta, taut,
                                          inner, eps, error, sq))
    return np.dstack([u1, u2])


def opencv_tvl1(I0: np.ndarray, I1: np.ndarray, scales: int = 5, warps: int = 5, inner: int = 30, outer: int = 10,
                epsilon: float = 0.01) -> np.ndarray:
    """The same flow from OpenCV's own ``DualTVL1OpticalFlow`` (4x slower): the reference
    ``tvl1`` is checked against, and what benchmarks compare with."""
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    tv.setScalesNumber(scales)
    tv.setWarpingsNumber(warps)
    tv.setInnerIterations(inner)
    tv.setOuterIterations(outer)
    tv.setEpsilon(epsilon)
    return tv.calc(I0, I1, None)


def warmup() -> None:
    """Compile (or load from numba's cache) now, not on the first classification."""
    img = np.zeros((24, 24), np.uint8)
    tvl1(img, img, scales=1, warps=1, inner=1, outer=1)

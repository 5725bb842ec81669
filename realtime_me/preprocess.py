"""One preprocessing for training and live use: aligned face crops -> model inputs.

``make_inputs(onset, apex)`` (live) and ``sample_inputs(apex_jpg, flow_png)``
(composite dataset) return the same ``ModelInputs``: ``flow`` (3,28,28) float32,
channels (u, v, optical strain), each min-max scaled per image to 0..1 and
quantised to 1/255 steps like the published PNGs; ``apex`` (1,S,S) float32, the
grayscale apex crop resized to S and z-scored per image (so SAMM's gray frames,
colour lab cameras and webcams share one range).

Published flow images (STSTNet/HTNet release), checked on the 397 PNGs:
* Read with OpenCV, channel B is the optical strain (skewed: 75% of pixels
  < 30), G is v and R is u, i.e. the PNG is RGB = (u, v, strain). Signs follow
  OpenCV (u right, v down): AU1+2 samples have strongly negative v on the top
  rows (brows rise), AU12 samples negative v at the mouth corners and u < 0 on
  the image-left cheek, > 0 on the right.
* Every channel has min exactly 0 and max exactly 255, so the min-max scaling
  happened after resizing to 28x28; we do the same.
* Framing: the brows (AU1+2 v minimum) sit at row 3 and the mouth corners
  (AU12) at row ~18 of 28. ``FLOW_BOX`` is the square of the 224 template the
  flow images cover, (x0=6, y0=20, side=216) px: the box whose flow correlates
  best with the published images of the six real clips in
  ``../shared/data/realclips`` (benchmarks/flow_match.py; held out one clip at a
  time the chosen box moves by <= 8 px). It is warped with replicated borders.
* One crop for both frames: the databases cut one fixed face box per clip, so
  the published flow holds the face's motion and nothing else. Aligning onset
  and apex each by its own landmarks adds the landmark jitter between them (a
  1-2 px similarity) to the flow, and after per-image min-max scaling it
  dominates u and v. Given the two ``AlignedFace`` objects, ``make_inputs``
  therefore re-frames the apex with the onset's transform before the flow.
* Strain is computed from the 28x28 flow (as the published strain channel
  evidently was: it correlates better with that than with strain computed at
  the working size and then downscaled).

Live flow: OpenCV's Dual TV-L1 (cv2.optflow's algorithm, run by ``realtime_me.tvl1``:
the same float32 flow, ~4x faster than cv2's own loops) on the grayscale box downscaled
to 112x112, with 3 scales, 2 warps, 10 inner / 3 outer iterations, epsilon 0.02: ~10 ms
per pair on one core versus ~260 ms for cv2 with the defaults, with the same correlation
to the published images (defaults or a larger working size do not raise it; a smaller
one loses the 0.5-3 px movements).
Strain is sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2) from central differences, as
in STSTNet.

What differs from the published images: they come from the databases' own face
crops at their own resolution; we match their format, channel order, sign
convention, framing and fixed-crop flow, not bit-for-bit values.
Per-image min-max scaling stretches pure noise to the full 0..1 range, so the
classifier must only see windows the spotter accepted: on a still face its
output is meaningless.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .types import AlignedFace

PREPROCESS_VERSION = 2
FLOW_SIZE = 28
APEX_SIZE = 56
TEMPLATE = 224
#: (x0, y0, side) of the published flow images' framing, in 224-template pixels.
FLOW_BOX = (6.0, 20.0, 216.0)
FLOW_WORK_SIZE = 112
TVL1 = dict(scales=3, warps=2, inner=10, outer=3, epsilon=0.02)


@dataclass(slots=True)
class ModelInputs:
    """Normalised tensors for one sample (no batch axis)."""

    flow: np.ndarray   # (3, 28, 28) float32 in 0..1: u, v, strain
    apex: np.ndarray   # (1, S, S) float32, z-scored


def gray(img: np.ndarray) -> np.ndarray:
    """Single-channel uint8 view of a BGR or already gray image."""
    if img.ndim == 2:
        return img
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _check_crop(name: str, img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3) \
            or img.shape[0] != img.shape[1] or img.shape[0] < 16 or (img.ndim == 3 and img.shape[2] != 3):
        desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(f"{name} must be a square uint8 face crop (SxSx3 BGR or SxS gray), got {desc}")


def normalise_apex(apex_crop: np.ndarray, size: int = APEX_SIZE) -> np.ndarray:
    """(1,S,S) float32: gray, area-resized, zero mean / unit std per image."""
    g = cv2.resize(gray(apex_crop), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    g = (g - g.mean()) / max(float(g.std()), 1.0)
    return g[None]


def minmax_quantise(chans: np.ndarray) -> np.ndarray:
    """(H,W,C) float -> per-channel 0..1 in 1/255 steps, as in the published 8-bit images."""
    lo, hi = chans.min(axis=(0, 1)), chans.max(axis=(0, 1))
    scaled = (chans - lo) / np.maximum(hi - lo, 1e-9)
    return (np.round(scaled * 255) / 255).astype(np.float32)


def flow_box(crop: np.ndarray) -> np.ndarray:
    """Warp FLOW_BOX of a template-framed crop (any size S) to FLOW_WORK_SIZE gray."""
    x0, y0, side = (v * crop.shape[0] / TEMPLATE for v in FLOW_BOX)
    s = FLOW_WORK_SIZE / side
    m = np.float32([[s, 0, -x0 * s], [0, s, -y0 * s]])
    return cv2.warpAffine(gray(crop), m, (FLOW_WORK_SIZE, FLOW_WORK_SIZE), flags=cv2.INTER_AREA,
                          borderMode=cv2.BORDER_REPLICATE)


def tvl1_flow(onset_gray: np.ndarray, apex_gray: np.ndarray) -> np.ndarray:
    """(H,W,2) float32 TV-L1 flow from onset to apex: OpenCV's DualTVL1 with ``TVL1``, computed
    by ``realtime_me.tvl1`` (the same flow, ~4x faster)."""
    from .tvl1 import tvl1

    return tvl1(onset_gray, apex_gray, **TVL1)


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Strain magnitude sqrt(u_x^2 + v_y^2 + 0.5 (u_y + v_x)^2)."""
    u_y, u_x = np.gradient(flow[..., 0])
    v_y, v_x = np.gradient(flow[..., 1])
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2)


def flow_image(onset_crop: np.ndarray, apex_crop: np.ndarray) -> np.ndarray:
    """(28,28,3) float32 (u, v, strain) in 0..1 from two crops in the same framing, like the published PNGs."""
    _check_crop("onset_crop", onset_crop)
    _check_crop("apex_crop", apex_crop)
    if onset_crop.shape[:2] != apex_crop.shape[:2]:
        raise ValueError(f"onset and apex crops differ in size: {onset_crop.shape} vs {apex_crop.shape}")
    f = tvl1_flow(flow_box(onset_crop), flow_box(apex_crop))
    f = cv2.resize(f, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA)
    return minmax_quantise(np.dstack([f, optical_strain(f)]).astype(np.float32))


def in_onset_frame(onset: AlignedFace, apex: AlignedFace) -> np.ndarray:
    """The apex crop re-warped with the onset's frame->crop transform (one fixed crop for
    both frames, as the databases cut them): the flow then carries no alignment jitter."""
    a0 = np.vstack([np.asarray(onset.matrix, np.float64), [0, 0, 1]])
    a1 = np.vstack([np.asarray(apex.matrix, np.float64), [0, 0, 1]])
    rel = (a0 @ np.linalg.inv(a1))[:2]
    h, w = onset.crop.shape[:2]
    return cv2.warpAffine(apex.crop, rel, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def make_inputs(onset: AlignedFace | np.ndarray, apex: AlignedFace | np.ndarray,
                apex_size: int = APEX_SIZE) -> ModelInputs:
    """Live path: onset and apex faces -> model inputs.

    Give the two ``AlignedFace`` objects (from ``alignment.align``): the flow is then
    computed on the apex re-framed by the onset's transform (see the module docstring),
    the apex branch gets the apex's own aligned crop. Bare crops (BGR uint8) are taken
    as already in one framing.
    """
    if isinstance(onset, AlignedFace) and isinstance(apex, AlignedFace):
        onset_crop, apex_crop, flow_apex = onset.crop, apex.crop, in_onset_frame(onset, apex)
    else:
        onset_crop = onset.crop if isinstance(onset, AlignedFace) else onset
        apex_crop = flow_apex = apex.crop if isinstance(apex, AlignedFace) else apex
    flow = flow_image(onset_crop, flow_apex)
    return ModelInputs(np.ascontiguousarray(flow.transpose(2, 0, 1)), normalise_apex(apex_crop, apex_size))


def sample_inputs(apex_bgr: np.ndarray, flow_png_bgr: np.ndarray, apex_size: int = APEX_SIZE) -> ModelInputs:
    """Dataset path: a composite apex jpg and its published flow png (both as read by cv2.imread)."""
    _check_crop("apex image", apex_bgr)
    if flow_png_bgr is None or flow_png_bgr.ndim != 3 or flow_png_bgr.shape[2] != 3:
        raise ValueError(f"flow image must be HxWx3, got {getattr(flow_png_bgr, 'shape', None)}")
    rgb = flow_png_bgr[..., ::-1]  # OpenCV reads B,G,R = strain, v, u -> (u, v, strain)
    if rgb.shape[:2] != (FLOW_SIZE, FLOW_SIZE):
        rgb = cv2.resize(rgb, (FLOW_SIZE, FLOW_SIZE), interpolation=cv2.INTER_AREA)
    flow = minmax_quantise(rgb.astype(np.float32))
    return ModelInputs(np.ascontiguousarray(flow.transpose(2, 0, 1)), normalise_apex(apex_bgr, apex_size))

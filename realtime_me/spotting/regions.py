"""Facial regions the spotter watches, and the AU-like cues it reports for a window.

Indices are MediaPipe face-mesh landmarks; "left"/"right" are the subject's.
Head motion is removed with a similarity fit on ``alignment.STABLE_POINTS``
(points the facial muscles barely move), so region motion is muscle motion,
measured in inter-ocular distances (IOD) so face size does not matter.

The kernels work on a compact point set (``SELECTED``): every region point plus
the eye corners (for eye aperture and the IOD). Region membership and cue points
are given as positions in that set.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..alignment import STABLE_POINTS

#: region name -> face-mesh indices (subject's left/right)
REGIONS: dict[str, tuple[int, ...]] = {
    "brow_r": (70, 63, 105, 66, 107, 46, 53, 52, 65, 55),
    "brow_l": (300, 293, 334, 296, 336, 276, 283, 282, 295, 285),
    "glabella": (9, 8),                                              # between the brows: AU1/AU4, little jitter
    "eye_r": (159, 158, 157, 160, 161, 145, 144, 153, 154, 163),     # upper + lower lid
    "eye_l": (386, 385, 384, 387, 388, 374, 373, 380, 381, 390),
    "nose": (48, 64, 98, 129, 278, 294, 327, 358),                   # alae (AU9/10 lift them)
    "mouth_r": (61, 76, 62, 78, 146, 185),                           # lip corner
    "mouth_l": (291, 306, 292, 308, 375, 409),
    "lip_upper": (0, 37, 267, 39, 269, 13, 82, 312),
    "lip_lower": (17, 84, 314, 14, 87, 317, 181, 405),
    "chin": (152, 148, 377, 175, 199, 200, 171, 396),
}
REGION_NAMES: tuple[str, ...] = tuple(REGIONS)
#: the lid regions (their thresholds are higher: gaze and lid jitter)
EYE_REGIONS: tuple[str, ...] = ("eye_r", "eye_l")
#: regions a blink moves: the lids and, through the skin above them, the brows. Near a
#: blink they are not evidence; the rest of the face counts at a higher threshold (the
#: mesh deforms a little everywhere while the lids close)
BLINK_REGIONS: tuple[str, ...] = ("brow_r", "brow_l", "glabella", "eye_r", "eye_l")

#: eye corners (outer, inner) per eye: IOD and the eye width for the aperture ratio
EYE_CORNERS = {"r": (33, 133), "l": (263, 362)}
#: upper/lower lid pairs whose mean distance over the eye width is the aperture
LID_PAIRS = {"r": ((159, 145), (158, 153), (160, 144)), "l": ((386, 374), (385, 380), (387, 373))}


def _selected() -> np.ndarray:
    pts: list[int] = []
    for idx in REGIONS.values():
        pts.extend(i for i in idx if i not in pts)
    for pair in EYE_CORNERS.values():
        pts.extend(i for i in pair if i not in pts)
    return np.array(pts, dtype=np.int64)


#: face-mesh indices the kernels transform (regions + eye corners)
SELECTED: np.ndarray = _selected()
_POS = {int(i): k for k, i in enumerate(SELECTED)}


def pos(landmark: int) -> int:
    """Position of a face-mesh landmark in ``SELECTED``."""
    return _POS[landmark]


@dataclass(frozen=True)
class RegionTables:
    """Index arrays handed to the kernels (all int64, positions in ``SELECTED``)."""

    selected: np.ndarray      # (S,) face-mesh indices
    stable: np.ndarray        # (ns,) face-mesh indices of the alignment points
    region_ptr: np.ndarray    # (R+1,) CSR offsets into region_pts
    region_pts: np.ndarray    # positions in SELECTED, region by region
    lids: np.ndarray          # (2, 3, 2) lid pairs per eye (r, l), positions
    corners: np.ndarray       # (2, 2) eye corners per eye (r, l), positions
    eye_mask: np.ndarray      # (R,) 1 for lid regions
    iod_pts: np.ndarray       # (2, 2) face-mesh indices of the eye corners (r, l): eye centres
    blink_mask: np.ndarray    # (R,) 1 for BLINK_REGIONS


def eye_tables(index=int) -> tuple[np.ndarray, np.ndarray]:
    """Lid pairs (2, 3, 2) and eye corners (2, 2) per eye (r, l), each landmark mapped by
    ``index``: face-mesh indices by default, ``pos`` for positions in ``SELECTED``."""
    lids = np.array([[[index(a), index(b)] for a, b in LID_PAIRS[e]] for e in ("r", "l")], dtype=np.int64)
    corners = np.array([[index(a), index(b)] for a, b in (EYE_CORNERS["r"], EYE_CORNERS["l"])], dtype=np.int64)
    return lids, corners


def tables() -> RegionTables:
    ptr, pts = [0], []
    for name in REGION_NAMES:
        pts.extend(pos(i) for i in REGIONS[name])
        ptr.append(len(pts))
    lids, corners = eye_tables(pos)
    return RegionTables(
        selected=SELECTED.copy(),
        stable=np.asarray(STABLE_POINTS, dtype=np.int64).copy(),
        region_ptr=np.array(ptr, dtype=np.int64),
        region_pts=np.array(pts, dtype=np.int64),
        lids=lids,
        corners=corners,
        eye_mask=np.array([n in EYE_REGIONS for n in REGION_NAMES], dtype=np.int64),
        iod_pts=np.array([EYE_CORNERS["r"], EYE_CORNERS["l"]], dtype=np.int64),
        blink_mask=np.array([n in BLINK_REGIONS for n in REGION_NAMES], dtype=np.int64),
    )


def _mean(d: np.ndarray, landmarks: tuple[int, ...]) -> np.ndarray:
    return d[[pos(i) for i in landmarks]].mean(axis=0)


def _dist(x: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(x[pos(a)] - x[pos(b)]))


#: brow points nearest the midline (their approach is AU4's knit)
_INNER_BROW = {"r": (107, 55, 65), "l": (336, 285, 295)}


def cues(apex: np.ndarray, base: np.ndarray, aperture_apex: float, aperture_base: float) -> dict[str, float]:
    """AU-like cues of one movement: what the face did between baseline and apex.

    ``apex``/``base`` are (S, 2) aligned shapes (IOD units, y down). Directional cues
    are non-negative displacements in IOD units; ``eye_aperture`` is the signed
    relative change of the lid opening (negative: narrowing, as in AU6/7).
    """
    d = apex - base
    brows = REGIONS["brow_r"] + REGIONS["brow_l"]
    brow_dy = float(_mean(d, brows)[1])
    knit_base = _dist(base, _INNER_BROW["r"][0], _INNER_BROW["l"][0])
    knit_apex = _dist(apex, _INNER_BROW["r"][0], _INNER_BROW["l"][0])
    corner_dy = float((d[pos(61)][1] + d[pos(291)][1]) / 2)
    width = _dist(apex, 61, 291) - _dist(base, 61, 291)
    opening = _dist(apex, 13, 14) - _dist(base, 13, 14)
    rel_ap = aperture_apex / aperture_base - 1.0 if aperture_base > 1e-9 else 0.0
    out = {
        "brow_raise": max(0.0, -brow_dy),                                       # AU1/2
        "brow_lower": max(0.0, brow_dy),                                        # AU4
        "brow_knit": max(0.0, knit_base - knit_apex),                           # AU4
        "eye_aperture": float(rel_ap),                                          # AU5 / AU6-7 / blink
        "nose_wrinkle": max(0.0, -float(_mean(d, REGIONS["nose"])[1])),         # AU9
        "upper_lip_raise": max(0.0, -float(d[pos(0)][1])),                      # AU10
        "lip_corner_up": max(0.0, -corner_dy),                                  # AU12
        "lip_corner_down": max(0.0, corner_dy),                                 # AU15
        "lip_stretch": max(0.0, width),                                         # AU20
        "lip_tighten": max(0.0, -width),                                        # AU18/23
        "lower_lip_depress": max(0.0, float(d[pos(17)][1])),                    # AU16
        "lips_part": max(0.0, opening),                                         # AU25/26
        "chin_raise": max(0.0, -float(_mean(d, REGIONS["chin"])[1])),           # AU17
    }
    return {k: float(v) for k, v in out.items()}


CUE_NAMES: tuple[str, ...] = tuple(cues(np.zeros((len(SELECTED), 2)), np.zeros((len(SELECTED), 2)), 1.0, 1.0))

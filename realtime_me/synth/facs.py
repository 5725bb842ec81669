"""FACS action units as landmark pulls, and the expressions the clips show.

Pure data: which face-mesh landmarks each action unit moves and which way, so the
fields (``fields.py``) and the blinks (``eyes.py``) stay readable against Ekman &
Friesen's descriptions.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Anchors:
    """Landmarks that move together, the direction they move and how far the pull spreads.

    ``move`` is (outward, down) in face coordinates: outward is away from the face's
    midline (mirrored per side, zero on the midline). Its length is relative: an
    expression's field is normalised afterwards. ``sigma`` is the Gaussian falloff in
    inter-ocular distances.
    """

    points: tuple[int, ...]
    move: tuple[float, float]
    sigma: float


@dataclass(frozen=True)
class ActionUnit:
    number: int
    name: str
    anchors: tuple[Anchors, ...]
    pins: tuple[int, ...] = ()      # landmarks held still (the field fades to 0 there)
    pin_sigma: float = 0.04


_INNER_BROW = (107, 66, 55, 65, 336, 296, 285, 295)
_MID_BROW = (105, 52, 334, 282)
_OUTER_BROW = (70, 63, 46, 53, 300, 293, 276, 283)
_UPPER_LID = (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398)
_LOWER_LID = (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382)
_CHEEK = (117, 118, 119, 100, 101, 50, 346, 347, 348, 329, 330, 280)
_LIP_CORNER = (61, 291, 76, 306, 62, 292, 78, 308, 57, 287, 185, 409, 146, 375)
_NASOLABIAL = (206, 426, 216, 436, 207, 427, 92, 322)
_CHIN = (18, 200, 199, 201, 421, 208, 428, 83, 313, 32, 262)
_LOWER_LIP = (17, 84, 314, 181, 405)

#: FACS action units as landmark pulls (Ekman & Friesen's descriptions, seen from the front).
ACTION_UNITS: dict[int, ActionUnit] = {au.number: au for au in (
    ActionUnit(1, "inner brow raiser", (Anchors(_INNER_BROW, (0.0, -1.0), 0.15),
                                        Anchors(_MID_BROW, (0.0, -0.4), 0.15))),
    ActionUnit(2, "outer brow raiser", (Anchors(_OUTER_BROW, (0.0, -1.0), 0.15),
                                        Anchors(_MID_BROW, (0.0, -0.6), 0.15))),
    ActionUnit(4, "brow lowerer", (Anchors(_INNER_BROW, (-0.45, 0.9), 0.12),
                                   Anchors(_MID_BROW, (-0.2, 0.6), 0.12)), pins=_LOWER_LID, pin_sigma=0.08),
    ActionUnit(5, "upper lid raiser", (Anchors(_UPPER_LID, (0.0, -1.0), 0.05),), pins=_LOWER_LID),
    ActionUnit(6, "cheek raiser", (Anchors(_CHEEK, (0.15, -1.0), 0.15),
                                   Anchors(_LOWER_LID, (0.0, -0.5), 0.05))),
    ActionUnit(7, "lid tightener", (Anchors(_LOWER_LID, (0.0, -1.0), 0.05),
                                    Anchors(_UPPER_LID, (0.0, 0.35), 0.05))),
    ActionUnit(12, "lip corner puller", (Anchors(_LIP_CORNER, (0.75, -0.6), 0.12),
                                         Anchors(_NASOLABIAL, (0.35, -0.45), 0.15))),
    ActionUnit(14, "dimpler", (Anchors(_LIP_CORNER, (0.6, 0.05), 0.09),)),
    ActionUnit(15, "lip corner depressor", (Anchors(_LIP_CORNER, (0.15, 1.0), 0.12),
                                            Anchors((91, 321, 181, 405), (0.1, 0.4), 0.12))),
    ActionUnit(17, "chin raiser", (Anchors(_LOWER_LIP, (0.0, -1.0), 0.1),
                                   Anchors(_CHIN, (0.0, -0.6), 0.15))),
)}


@dataclass(frozen=True)
class Expression:
    """An emotion's AU combination; weights are the AUs' relative strengths."""

    emotion: str
    aus: tuple[tuple[int, float], ...]

    @property
    def au_numbers(self) -> list[int]:
        return sorted(n for n, _ in self.aus)


#: The MEs the clip shows, per class of the MEGC2019 composite protocol.
EXPRESSIONS: tuple[Expression, ...] = (
    Expression("positive", ((6, 0.5), (12, 1.0))),
    Expression("negative", ((4, 1.0), (7, 0.6))),
    Expression("negative", ((14, 1.0),)),
    Expression("negative", ((15, 1.0), (17, 0.7))),
    Expression("surprise", ((1, 1.0), (2, 0.8))),
    Expression("surprise", ((1, 1.0), (2, 0.8), (5, 0.5))),
)

#: Blink (AU45) eye landmarks: corners (image-left, image-right), upper lid, lower lid.
BLINK_EYES = (
    ((33, 133), (246, 161, 160, 159, 158, 157, 173), (7, 163, 144, 145, 153, 154, 155)),
    ((362, 263), (398, 384, 385, 386, 387, 388, 466), (382, 381, 380, 374, 373, 390, 249)),
)

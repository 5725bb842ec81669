"""Instruments for checking what ``synth`` renders, independent of the renderer.

The tests and ``benchmarks/synth.py`` measure a clip's motion with dense Farneback flow
(a method the generator does not use) and compare it with the truth's landmark motion.
"""
from __future__ import annotations

import cv2
import numpy as np


def flow_at(a: np.ndarray, b: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Dense Farneback flow from BGR frame ``a`` to ``b``, sampled at ``pts`` (N, 2) -> (N, 2)."""
    flow = cv2.calcOpticalFlowFarneback(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY),
                                        None, 0.5, 3, 15, 5, 5, 1.1, 0)
    x, y = pts[None, :, 0].astype(np.float32), pts[None, :, 1].astype(np.float32)
    return np.stack([cv2.remap(flow[..., c], x, y, cv2.INTER_LINEAR)[0] for c in range(2)], axis=1)


def gain_and_cosine(measured: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """Least-squares scale of ``measured`` onto ``expected`` and their cosine, over the moving
    region (points the truth moves by at least half its peak)."""
    mag = np.linalg.norm(expected, axis=1)
    reg = mag >= 0.5 * mag.max()
    m, e = measured[reg], expected[reg]
    return float((m * e).sum() / (e * e).sum()), float((m * e).sum() / np.linalg.norm(m) / np.linalg.norm(e))

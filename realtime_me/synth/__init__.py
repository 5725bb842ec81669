"""Built-in demo clips: labelled micro-expressions rendered from one real face photo.

A clip is one still face (by default scikit-image's public-domain astronaut photo)
placed at webcam size and moved by smooth displacement fields shaped like FACS
action units. Fields are anchored on the photo's face-mesh landmarks (found once)
and expressed in face coordinates (inter-ocular distance, face rotation), so any
frontal face photo works. The clip mixes the micro-expressions (MEs) to spot with
the distractors a real webcam shows: blinks, head drift, one macro-expression,
illumination flicker and sensor noise. Every event is written to a ground-truth
JSON, so the spotter can be scored without any labelled video.

``facs`` holds the action units and expressions, ``fields`` and ``eyes`` turn them
into pixel motion, ``plan`` decides what happens when, ``render`` draws frames,
``writers`` saves clips and ``cli`` is ``realtime-me synth``. ``benchmarks/synth.py``
measures the renderer and checks the rendered motion against the truth.
"""
from __future__ import annotations

from .cli import configure, run
from .facs import ACTION_UNITS, EXPRESSIONS, Expression
from .fields import apply_expression
from .plan import SynthConfig, duration_quantiles
from .render import SynthClip
from .writers import output_kind, truth_path, write_clip, y4m_header

__all__ = ["SynthConfig", "SynthClip", "write_clip", "configure", "run", "EXPRESSIONS", "ACTION_UNITS",
           "duration_quantiles", "y4m_header", "truth_path", "output_kind", "apply_expression", "Expression"]

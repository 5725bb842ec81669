"""Online micro-expression spotting from face-mesh landmark motion (see ``spotter.py``)."""
from .regions import CUE_NAMES, REGION_NAMES
from .spotter import DEFAULT_SENSITIVITY, Spotter, SpotterConfig, SpotterCounts

__all__ = ["Spotter", "SpotterConfig", "SpotterCounts", "DEFAULT_SENSITIVITY", "REGION_NAMES", "CUE_NAMES"]

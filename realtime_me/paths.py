"""Where things are found on disk, said once."""
from __future__ import annotations

from pathlib import Path

#: The research data of a checkout cloned beside ``shared/`` (``../shared/data``): the
#: default of spot-eval, loso, the tests and the benchmarks. The product never needs it.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

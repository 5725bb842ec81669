"""Shared fixtures. Real data lives in ../shared/data beside the checkout, never in the repo."""
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "composite" / "labels.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA

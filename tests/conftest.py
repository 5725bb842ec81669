"""Shared fixtures. Real data lives in ../shared/data beside the checkout, never in the repo."""
from pathlib import Path

import pytest

from realtime_me.paths import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "composite" / "labels.csv").exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (clone the repo beside shared/)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def composite(shared_data) -> Path:
    """The MEGC2019 composite set (labels.csv, apex/, flow/)."""
    return shared_data / "composite"


SHIPPED_MEDN = Path(__file__).resolve().parents[1] / "models" / "medn"


@pytest.fixture(scope="module", params=["built", "shipped"])
def weights(request, tmp_path_factory) -> Path:
    """A MEDN weights folder: built here with create_model + save_model, or the shipped models/medn."""
    if request.param == "shipped":
        return SHIPPED_MEDN
    import torch

    from realtime_me.models import create_model
    from realtime_me.weights import ModelCard, save_model

    torch.manual_seed(0)
    m = create_model("medn").eval()
    return save_model(m, ModelCard.for_model(m), tmp_path_factory.mktemp("w") / "medn")

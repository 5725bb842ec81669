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


@pytest.fixture(scope="session")
def real_sample(shared_data):
    """Look up a clip of realclips/ by name: a ``datasets.Sample``."""
    from realtime_me.datasets import read_samples

    return {s.name: s for s in read_samples(shared_data / "realclips" / "clips.json")}.__getitem__


@pytest.fixture(scope="session")
def still_real_face(real_sample):
    """casme2_sub01's first frame (BGR) and its fps: a real face to hold still."""
    from realtime_me.real_eval import ClipSource

    with ClipSource(real_sample("casme2_sub01_EP19_06f")) as src:
        return next(iter(src.frames())).image, src.info.fps


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

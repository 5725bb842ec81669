"""The shared preprocessing: live make_inputs and dataset sample_inputs give the same kind of tensors."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime_me.preprocess import APEX_SIZE, make_inputs, optical_strain, sample_inputs

@pytest.fixture()
def apex(composite):
    return cv2.imread(str(composite / "apex" / "casme2_sub01_EP02_01f.jpg"))


def _brow_raise(img, pixels=2.0):
    """Move the brow band (rows ~35 of 224) up by ``pixels``."""
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    dy = -pixels * np.exp(-((yy - 35) / 12) ** 2)
    return cv2.remap(img, xx, yy - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_strain_of_uniform_translation_is_zero_and_of_stretch_is_not():
    f = np.zeros((20, 20, 2), np.float32)
    f[..., 0] = 1.5
    assert np.allclose(optical_strain(f), 0)
    f[..., 0] = np.arange(20)[None, :] * 0.1  # u_x = 0.1
    assert np.allclose(optical_strain(f)[2:-2, 2:-2], 0.1)


def test_make_inputs_shapes_ranges_and_determinism(apex):
    a = apex
    b = _brow_raise(a)
    x1, x2 = make_inputs(a, b), make_inputs(a, b)
    assert x1.flow.shape == (3, 28, 28) and x1.flow.dtype == np.float32
    assert x1.apex.shape == (1, APEX_SIZE, APEX_SIZE) and x1.apex.dtype == np.float32
    assert np.allclose(x1.flow.min(axis=(1, 2)), 0) and np.allclose(x1.flow.max(axis=(1, 2)), 1)
    assert abs(float(x1.apex.mean())) < 1e-4 and abs(float(x1.apex.std()) - 1) < 1e-3
    assert np.array_equal(x1.flow, x2.flow) and np.array_equal(x1.apex, x2.apex)


def test_brow_raise_lands_where_published_brows_are(apex):
    """Upward motion = negative v (OpenCV convention, as in the published images) on the top rows."""
    a = apex
    x = make_inputs(a, _brow_raise(a))
    v = x.flow[1] - np.median(x.flow[1])
    row = int(np.argmin(v.mean(1)))
    assert 1 <= row <= 5   # the published AU1+2 samples peak at row 3


def test_sample_inputs_matches_make_inputs_format(apex, composite):
    a = apex
    png = cv2.imread(str(composite / "flow" / "casme2_sub01_EP02_01f.png"))
    s = sample_inputs(a, png)
    live = make_inputs(_brow_raise(a), a)  # same apex frame, different onset
    assert s.flow.shape == live.flow.shape and s.apex.shape == live.apex.shape
    assert np.array_equal(s.apex, live.apex)  # identical apex normalisation
    # channel 2 is the strain (B in the PNG), channel 0 is u (R)
    assert np.allclose(s.flow[2] * 255, png[..., 0]) and np.allclose(s.flow[0] * 255, png[..., 2])


def test_bad_crops_are_rejected():
    good = np.zeros((224, 224, 3), np.uint8)
    with pytest.raises(ValueError, match="square uint8"):
        make_inputs(good, np.zeros((224, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="square uint8"):
        make_inputs(good.astype(np.float32), good)
    with pytest.raises(ValueError, match="differ in size"):
        make_inputs(good, np.zeros((112, 112, 3), np.uint8))

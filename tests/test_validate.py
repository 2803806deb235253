"""Tests of perceptlab.validate: wrong inputs raise ValueError naming the argument."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from perceptlab.validate import check_image
from perceptlab.validate import check_positive_int
from perceptlab.validate import check_same_shape


def test_check_image_returns_valid_input_unchanged():
    x = torch.rand(2, 3, 5, 4)
    assert check_image(x, "x") is x


@pytest.mark.parametrize(
    "value, match",
    [
        (np.zeros((1, 3, 4, 4), dtype=np.float32), "must be a torch.Tensor"),
        ([[0.0, 1.0]], "must be a torch.Tensor"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "floating-point"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.int64), "floating-point"),
        (torch.zeros(3, 4, 4), r"shape \(N, C, H, W\)"),
        (torch.zeros(1, 1, 3, 4, 4), r"got shape \(1, 1, 3, 4, 4\)"),
        (torch.zeros(1, 2, 4, 4), "must have 1 or 3 channels"),
        (torch.zeros(0, 3, 4, 4), "must not be empty"),
        (torch.tensor(float("nan")).expand(1, 3, 2, 2), "NaN or infinite"),
        (torch.full((1, 3, 2, 2), float("inf")), "NaN or infinite"),
        (torch.full((1, 3, 2, 2), -float("inf")), "NaN or infinite"),
        (torch.full((1, 3, 2, 2), 1.01), r"values in \[0.0, 1.0\]"),
        (torch.full((1, 3, 2, 2), -0.01), r"values in \[0.0, 1.0\]"),
    ],
    ids=["numpy", "list", "uint8", "int64", "ndim3", "ndim5", "channels", "empty", "nan", "inf", "-inf",
         "above", "below"],
)
def test_check_image_error_names_argument(value, match):
    with pytest.raises(ValueError, match=match) as info:
        check_image(value, "my_input", channels=(1, 3))
    assert str(info.value).startswith("my_input ")


def test_check_image_nan_among_valid_values():
    x = torch.rand(1, 3, 4, 4)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="^img contains NaN"):
        check_image(x, "img")


def test_check_image_tolerance_and_custom_range():
    check_image(torch.full((1, 1, 2, 2), 1.0 + 1e-7), "x")  # within tol
    check_image(torch.full((1, 1, 2, 2), 200.0), "x", value_range=(0, 255))
    check_image(torch.full((1, 1, 2, 2), -5.0), "x", value_range=None)
    with pytest.raises(ValueError, match=r"^x must have values in \[0, 255\], got min 256, max 256"):
        check_image(torch.full((1, 1, 2, 2), 256.0), "x", value_range=(0, 255))


def test_check_image_allowed_ndims():
    check_image(torch.rand(4, 5), "x", ndim=(2, 3))
    check_image(torch.rand(3, 4, 5), "x", ndim=(2, 3), channels=(3,))
    with pytest.raises(ValueError, match=r"^x must have shape \(H, W\) or \(C, H, W\), got shape \(1, 3, 4, 5\)"):
        check_image(torch.rand(1, 3, 4, 5), "x", ndim=(2, 3))


def test_check_same_shape():
    check_same_shape(torch.zeros(2, 3), torch.ones(2, 3), "a", "b")
    with pytest.raises(ValueError, match=r"^a and b must have the same shape, got \(2, 3\) and \(3, 2\)"):
        check_same_shape(torch.zeros(2, 3), torch.zeros(3, 2), "a", "b")


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3", None])
def test_check_positive_int_rejects(bad):
    with pytest.raises(ValueError, match="^n must be a positive integer"):
        check_positive_int(bad, "n")


def test_check_positive_int_accepts():
    assert check_positive_int(7, "n") == 7

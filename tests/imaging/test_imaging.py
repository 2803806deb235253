"""Tests of perceptlab.imaging: conversion, resampling, Gaussian filters, gradients, codecs.

Checked against independent implementations: scipy.ndimage (Gaussian filter), PIL (JPEG,
PNG) and torch's own interpolation, and against closed forms.
"""
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from perceptlab import imaging


def test_to_float_and_to_uint8_round_trip():
    x = torch.rand(2, 3, 5, 5)
    u = imaging.to_uint8(x)
    assert u.dtype == torch.uint8 and torch.equal(u, (x * 255).round().to(torch.uint8))
    back = imaging.to_float(u)
    assert back.dtype == torch.float32 and (back - x).abs().max() <= 0.5 / 255 + 1e-7
    assert imaging.to_float(x) is x  # float images are returned unchanged


def test_image_grid_places_images_with_padding():
    x = torch.stack([torch.full((1, 2, 2), v) for v in (0.0, 0.25, 0.5)])
    grid = imaging.image_grid(x, nrow=2, pad=1, pad_value=1.0)
    assert grid.shape == (1, 2 * 3 + 1, 2 * 3 + 1)
    assert float(grid[0, 1, 1]) == 0.0 and float(grid[0, 1, 4]) == 0.25 and float(grid[0, 4, 1]) == 0.5
    assert float(grid[0, 4, 4]) == 1.0 and float(grid[0, 0, 0]) == 1.0  # empty cell and padding


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.3])
def test_gaussian_blur_equals_scipy_gaussian_filter(sigma):
    x = torch.rand(2, 3, 24, 20, dtype=torch.float64)
    r = max(1, int(np.ceil(3 * sigma)))
    ours = imaging.gaussian_blur(x, sigma).numpy()
    # torch's "reflect" padding is scipy's "mirror"; the radius r = truncate * sigma
    ref = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="mirror", truncate=r / sigma)
    assert np.allclose(ours, ref, atol=1e-12)
    assert torch.equal(imaging.gaussian_blur(x, 0.0), x)


def test_gaussian_window_uses_scipys_radius_rule_and_sums_to_one():
    w = imaging.gaussian_window(1.5, truncate=3.5, dtype=torch.float64)
    assert w.shape == (11,) and float(w.sum()) == pytest.approx(1.0)  # the 11 taps of SSIM
    ref = ndimage.gaussian_filter1d(np.eye(11)[5], 1.5, truncate=3.5, mode="constant")
    assert np.allclose(w.numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match="sigma"):
        imaging.gaussian_taps(0.0, 3)


def test_gradient_magnitude_of_a_ramp_and_of_a_constant():
    ramp = torch.linspace(0, 1, 33).expand(1, 1, 33, 33).contiguous()
    assert float(imaging.gradient_magnitude(ramp)[0]) == pytest.approx(1 / 32, rel=1e-5)
    assert float(imaging.gradient_magnitude(torch.full((2, 3, 8, 8), 0.3)).abs().max()) == pytest.approx(0, abs=1e-7)


@pytest.mark.parametrize("mode, antialias", [("bilinear", False), ("bilinear", True), ("bicubic", False), ("nearest", False)])
def test_resize_matches_torch_interpolate(mode, antialias):
    x = torch.rand(2, 3, 32, 32)
    kwargs = {} if mode == "nearest" else dict(align_corners=False, antialias=antialias)
    ref = F.interpolate(x, size=16, mode=mode, **kwargs).clamp(0, 1)
    assert torch.equal(imaging.resize(x, 16, mode=mode, antialias=antialias), ref)
    with pytest.raises(ValueError, match="mode"):
        imaging.resize(x, 16, mode="lanczos")


def test_resize_area_averages_blocks_for_an_integer_factor():
    x = torch.rand(2, 3, 32, 24)
    assert torch.allclose(imaging.resize(x, (16, 12), mode="area"), F.avg_pool2d(x, 2))


@pytest.mark.parametrize("method", ["bicubic", "bilinear", "lanczos", "box", "nearest"])
def test_pil_resize_is_pil_on_each_float_channel(method):
    x = torch.rand(2, 3, 30, 20)
    out = imaging.pil_resize(x, (12, 16), method)
    assert out.shape == (2, 3, 12, 16) and out.dtype == torch.float32
    filt = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS, "box": Image.BOX,
            "nearest": Image.NEAREST}[method]
    for n in range(2):
        for c in range(3):
            ref = np.asarray(Image.fromarray(x[n, c].numpy(), mode="F").resize((16, 12), resample=filt))
            assert np.allclose(out[n, c].numpy(), np.clip(ref, 0, 1), atol=0)


def test_pil_bicubic_and_torch_antialiased_bicubic_agree_when_shrinking():
    """PIL widens its filter by the shrink factor; torch's antialias=True does the same (clean-fid's point)."""
    x = torch.rand(1, 1, 64, 64)
    assert torch.allclose(imaging.pil_resize(x, 32, "bicubic"), imaging.resize(x, 32, "bicubic", antialias=True),
                          atol=1e-5)
    assert not torch.allclose(imaging.pil_resize(x, 32, "bicubic"), imaging.resize(x, 32, "bicubic", antialias=False),
                              atol=1e-3)
    with pytest.raises(ValueError, match="method"):
        imaging.pil_resize(x, 32, "area")


def test_downsample_is_a_box_average_and_bicubic_keeps_constants():
    x = torch.rand(1, 3, 8, 12)
    lr = imaging.downsample(x, 4)
    assert lr.shape == (1, 3, 2, 3) and torch.allclose(lr[0, 1, 1, 2], x[0, 1, 4:8, 8:12].mean())
    assert torch.allclose(imaging.upsample_bicubic(torch.full((1, 3, 4, 4), 0.3), 4), torch.full((1, 3, 16, 16), 0.3))


@pytest.mark.parametrize("channels, mode", [(1, "L"), (3, "RGB")])
def test_jpeg_equals_a_pil_round_trip_and_keeps_channels(channels, mode):
    x = torch.rand(2, channels, 16, 16)
    out = imaging.jpeg(x, 75)
    assert out.shape == x.shape and out.dtype == x.dtype
    for im, got in zip(x, out):
        arr = (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if channels == 1 else arr, mode).save(buf, format="JPEG", quality=75)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        assert np.array_equal(got.permute(1, 2, 0).numpy().squeeze(-1) if channels == 1 else got.permute(1, 2, 0).numpy(), ref)
    assert float((out - x).abs().mean()) > 0  # lossy
    with pytest.raises(ValueError, match="images"):
        imaging.jpeg(torch.rand(1, 2, 8, 8), 75)


def test_save_png_writes_the_grid_losslessly(tmp_path):
    x = torch.rand(3, 3, 6, 6)
    path = imaging.save_png(x, tmp_path / "sub" / "grid.png", nrow=3)
    read = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1)
    assert torch.equal(read, imaging.to_uint8(imaging.image_grid(x, nrow=3)))
    gray = imaging.save_png(imaging.to_uint8(torch.rand(2, 1, 4, 4)), tmp_path / "g.png")
    assert np.asarray(Image.open(gray)).ndim == 2

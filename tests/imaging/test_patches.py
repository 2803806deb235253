"""The window convention of Chapter 5: window grids, patches per window, pooling, and the biased MMD."""
import pytest
import torch
import torch.nn.functional as F

from perceptlab.imaging import patches as pt


def test_window_grid_counts_windows_without_padding():
    assert pt.window_grid(64, 64, 3, 32, 16) == (3, 3)
    assert pt.window_grid(70, 48, 3, 32, 16) == (3, 2)  # the last 6 rows are not covered: (70 - 32) % 16 = 6
    assert pt.window_grid(32, 32, 3, 32, 16) == (1, 1)
    assert pt.patches_per_window(3, 32) == 900


@pytest.mark.parametrize("args, name", [((64, 64, 5, 4, 2), "patch_size"), ((20, 64, 3, 32, 16), "window"),
                                        ((64, 64, 3, 32, 0), "stride"), ((64, 64, 0, 32, 16), "patch_size"),
                                        ((64, 64, 3, 32.0, 16), "window")])
def test_window_grid_rejects_bad_geometry_naming_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        pt.window_grid(*args)


def test_window_patches_are_the_stride_one_patches_inside_each_window():
    x = torch.rand(2, 3, 11, 9, dtype=torch.float64)
    P, W, S = 3, 6, 3
    got = pt.window_patches(x, P, W, S)
    rows, cols = pt.window_grid(11, 9, P, W, S)
    assert got.shape == (2, rows * cols, (W - P + 1) ** 2, 3 * P * P)
    for n in range(2):
        for l in range(rows * cols):
            r0, c0 = (l // cols) * S, (l % cols) * S
            expected = torch.stack([x[n, :, r0 + i: r0 + i + P, c0 + j: c0 + j + P].flatten()
                                    for i in range(W - P + 1) for j in range(W - P + 1)])
            assert torch.equal(got[n, l], expected)


def test_center_patches_removes_each_channels_mean():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    p = pt.window_patches(x, 3, 8, 8, normalize_channels=True)
    assert p.view(*p.shape[:-1], 3, 9).mean(-1).abs().max() < 1e-12
    raw = pt.window_patches(x, 3, 8, 8)
    assert torch.allclose(p, pt.center_patches(raw, 3))


def test_pooling_a_valid_convolution_averages_each_windows_patch_responses():
    """The identity that makes the S-CNN, the exact MMD and the RFF share one set of windows."""
    x = torch.rand(2, 3, 40, 35, dtype=torch.float64)
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    pooled = pt.pool_windows(F.conv2d(x, w), 3, 16, 8)
    direct = (pt.window_patches(x, 3, 16, 8) @ w.flatten(1).T).mean(2)  # (N, L, 5)
    rows, cols = pt.window_grid(40, 35, 3, 16, 8)
    assert pooled.shape == (2, 5, rows, cols)
    assert torch.allclose(pooled.flatten(2).transpose(1, 2), direct)


def test_image_patches_make_a_convolution_a_matrix_product():
    x = torch.rand(2, 3, 10, 12, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    rows = pt.image_patches(x, 3) @ w.flatten(1).T
    assert torch.allclose(pt.patch_map(rows, 10, 12, 3), F.conv2d(x, w))


def test_mmd2_with_a_linear_kernel_is_the_squared_distance_of_the_means():
    a, b = torch.randn(4, 7, 5, dtype=torch.float64), torch.randn(4, 9, 5, dtype=torch.float64) + 1
    linear = lambda u, v: u @ v.transpose(-1, -2)  # noqa: E731
    expected = (a.mean(1) - b.mean(1)).pow(2).sum(1)
    assert torch.allclose(pt.mmd2(linear, a, b), expected)
    assert torch.allclose(pt.mmd2(linear, a, b, chunk=1), expected)  # one set at a time
    with pytest.raises(ValueError, match="a and b"):
        pt.mmd2(linear, a, b[:, :, :4])

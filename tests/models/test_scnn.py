"""The random S-CNN and its infinite-width limit (Amir & Weiss 2021, Theorem 2.1)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perceptlab.data.images import load_image
from perceptlab.imaging.filters import gaussian_blur
from perceptlab.imaging.patches import window_patches
from perceptlab.models import SCNN, infinite_width_distance, infinite_width_kernel, relu_kernel_step, scnn_input


def _pairs(size=16):
    a = load_image("astronaut", size=64)[:, :, 10:10 + size, 20:20 + size]
    b = load_image("chelsea", size=64)[:, :, 20:20 + size, 20:20 + size]
    c = load_image("coffee", size=64)[:, :, 20:20 + size, 20:20 + size]
    return torch.cat([a, c]), torch.cat([b, gaussian_blur(c, 1.0)])


def test_the_papers_setting_is_the_default_and_weights_follow_he_initialisation():
    net = SCNN(width=512, seed=3)
    assert (net.patch_size, net.depth, net.window, net.stride) == (3, 6, 32, 16)
    assert SCNN.__init__.__defaults__[:5] == (3, 6, 1024, 32, 16)
    shapes = [tuple(w.shape) for w in net.weights]
    assert shapes == [(512, 3, 3, 3)] + [(512, 512, 1, 1)] * 6
    for w in net.weights:
        fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        assert w.var().item() == pytest.approx(2 / fan_in, rel=0.05)  # N(0, 2 / fan_in)
        assert abs(w.mean().item()) < 4 * math.sqrt(2 / fan_in / w.numel())
        assert not w.requires_grad
    assert not any(n.endswith("bias") for n, _ in net.named_parameters())
    assert torch.equal(SCNN(width=64, seed=3).weights[1], SCNN(width=64, seed=3).weights[1])
    assert not torch.equal(SCNN(width=64, seed=3).weights[1], SCNN(width=64, seed=4).weights[1])


def test_responses_are_the_convolutions_and_relus_and_the_distance_is_normalised_by_width():
    net = SCNN(width=16, depth=2, window=8, stride=4, seed=1)
    x, y = torch.rand(2, 3, 12, 14), torch.rand(2, 3, 12, 14)
    h = scnn_input(x)
    for w in net.weights:
        h = F.relu(F.conv2d(h, w))
    assert torch.allclose(net.responses(x), h, atol=1e-5)
    hx, hy = net(x), net(y)
    assert hx.shape == (2, 16, 2, 2)  # windows at rows 0, 4 and columns 0, 4 (the last 2 columns unused)
    assert torch.allclose(hx, F.avg_pool2d(h, 6, 4), atol=1e-6)
    assert torch.allclose(net.distance(x, y), (hx - hy).pow(2).flatten(1).sum(1) / 16)


def test_zero_mean_filters_make_the_network_ignore_each_channels_mean():
    net = SCNN(width=32, depth=1, window=8, stride=4, normalize_channels=True)
    assert net.weights[0].mean((2, 3)).abs().max() < 1e-6
    x = torch.rand(1, 3, 12, 12) * 0.6
    cast = x + torch.tensor([0.2, 0.0, 0.3]).view(1, 3, 1, 1)
    assert torch.allclose(net(x), net(cast), atol=1e-5)
    assert not torch.allclose(SCNN(width=32, depth=1, window=8, stride=4)(x), SCNN(width=32, depth=1, window=8,
                                                                                   stride=4)(cast), atol=1e-3)


def test_relu_kernel_step_is_the_expected_product_of_relus_of_gaussians():
    """Cho & Saul's arc-cosine kernel: E[relu(u) relu(v)] for (u, v) ~ N(0, 2 [[kxx, kxy], [kxy, kyy]])."""
    g = torch.Generator().manual_seed(0)
    for kxx, kyy, kxy in ((1.0, 1.0, 0.3), (0.5, 2.0, -0.6), (1.5, 0.7, 0.9)):
        cov = 2 * torch.tensor([[kxx, kxy], [kxy, kyy]], dtype=torch.float64)
        z = torch.randn(2_000_000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
        mc = (F.relu(z[:, 0]) * F.relu(z[:, 1])).mean().item()
        exact = relu_kernel_step(*(torch.tensor(v, dtype=torch.float64) for v in (kxy, kxx, kyy))).item()
        assert exact == pytest.approx(mc, rel=0.01)
    assert relu_kernel_step(torch.tensor(2.0), torch.tensor(2.0), torch.tensor(2.0)).item() == pytest.approx(2.0)
    assert relu_kernel_step(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(1.0)).item() == 0.0  # a zero patch


def test_infinite_width_kernel_is_the_limit_of_a_wide_first_layer():
    """Depth 0: (1/C) sum_c relu(w_c . p) relu(w_c . q) with w ~ N(0, 2/d) -> K(p, q)."""
    p = torch.randn(1, 4, 27, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    w = torch.randn(400_000, 27, generator=g, dtype=torch.float64) * math.sqrt(2 / 27)
    a = F.relu(p[0] @ w.T)
    mc = a @ a.T / w.shape[0]
    assert torch.allclose(infinite_width_kernel(0)(p, p)[0], mc, rtol=0.02, atol=1e-3)
    k = infinite_width_kernel(6)(p, p)[0]
    assert torch.allclose(k.diagonal(), (p[0] ** 2).sum(1) / 27)  # He initialisation keeps the diagonal


def test_infinite_width_distance_sums_each_windows_mmd_with_that_kernel():
    x, y = torch.rand(2, 3, 12, 12, dtype=torch.float64), torch.rand(2, 3, 12, 12, dtype=torch.float64)
    got = infinite_width_distance(x, y, patch_size=3, depth=2, window=8, stride=4)
    kernel = infinite_width_kernel(2)
    px, py = window_patches(2 * x - 1, 3, 8, 4), window_patches(2 * y - 1, 3, 8, 4)
    expected = torch.zeros(2, dtype=torch.float64)
    for n in range(2):
        for l in range(px.shape[1]):
            a, b = px[n, l][None], py[n, l][None]
            expected[n] += (kernel(a, a).mean() - 2 * kernel(a, b).mean() + kernel(b, b).mean())
    assert torch.allclose(got, expected)
    assert torch.all(got > 0)
    assert torch.allclose(infinite_width_distance(x, x, 3, 2, 8, 4), torch.zeros(2, dtype=torch.float64), atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_finite_width_distance_converges_to_the_limit_like_one_over_root_width(normalize):
    """Theorem 2.1 on real image pairs: the relative error's RMS over 16 networks falls like C^(-1/2).

    Measured (depth 1; seeds 0-15 and 100-115): slopes -0.54 to -0.60, RMS at C = 2048 0.034-0.051.
    """
    x, y = _pairs()
    kw = dict(patch_size=3, depth=1, window=8, stride=4, normalize_channels=normalize)
    limit = infinite_width_distance(x.double(), y.double(), **kw)
    widths = (32, 128, 512, 2048)
    rms = []
    for width in widths:
        rel = torch.stack([(SCNN(width=width, seed=s, **kw).distance(x, y).double() - limit) / limit
                           for s in range(16)])
        rms.append(rel.pow(2).mean().sqrt().item())
    slope = np.polyfit(np.log(widths), np.log(rms), 1)[0]
    assert -0.8 < slope < -0.4
    assert rms == sorted(rms, reverse=True) and rms[-1] < 0.1


def test_the_papers_depth_converges_too():
    """Depth 6 (the paper's D): measured RMS at C = 2048 0.09-0.12 (four seed sets), at C = 32 0.5-2.0."""
    x, y = _pairs()
    kw = dict(patch_size=3, depth=6, window=8, stride=4)
    limit = infinite_width_distance(x.double(), y.double(), **kw)
    rel = torch.stack([(SCNN(width=2048, seed=s, **kw).distance(x, y).double() - limit) / limit for s in range(8)])
    assert rel.pow(2).mean().sqrt().item() < 0.2


@pytest.mark.parametrize("kwargs, name", [(dict(depth=-1), "depth"), (dict(patch_size=5, window=4), "patch_size"),
                                          (dict(width=0), "width"), (dict(stride=0), "stride")])
def test_bad_arguments_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SCNN(**kwargs)


def test_bad_inputs_raise_naming_them():
    net = SCNN(width=8, depth=1, window=8, stride=4)
    with pytest.raises(ValueError, match="window"):
        net(torch.rand(1, 3, 6, 6))
    with pytest.raises(ValueError, match="x"):
        net(torch.full((1, 3, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="channels"):
        net(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="same shape"):
        net.distance(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 9, 9))
    with pytest.raises(ValueError, match="depth"):
        infinite_width_distance(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), depth=-2, window=8)

"""The patch MMD of Amir & Weiss (2021, Sec. 3), exact and with random Fourier features, and the S-CNN loss."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perceptlab import losses
from perceptlab.data.images import load_image
from perceptlab.gim import generalized_mean
from perceptlab.imaging.filters import gaussian_blur
from perceptlab.losses import PatchMMD, PatchMMDRFF, SCNNLoss, patch_mmd, registry, window_mmd
from perceptlab.losses.patch_mmd import gaussian_cross_mean


def brute_force(x, y, P, W, S, sigma, normalize=False):
    """A double loop over windows and patch pairs, straight from the definition."""
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * sigma ** 2))  # noqa: E731
    out = []
    for n in range(x.shape[0]):
        values = []
        for r in range(0, x.shape[-2] - W + 1, S):
            for c in range(0, x.shape[-1] - W + 1, S):
                def patches(z):
                    ps = []
                    for i in range(W - P + 1):
                        for j in range(W - P + 1):
                            p = z[n, :, r + i: r + i + P, c + j: c + j + P]
                            if normalize:
                                p = p - p.mean(dim=(1, 2), keepdim=True)
                            ps.append(p.flatten())
                    return ps
                a, b = patches(x), patches(y)
                m = len(a)
                values.append((sum(k(u, v) for u in a for v in a) - 2 * sum(k(u, v) for u in a for v in b)
                               + sum(k(u, v) for u in b for v in b)) / m ** 2)
        out.append(sum(values) / len(values))
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("normalize", [False, True])
def test_exact_patch_mmd_matches_a_brute_force_double_loop(normalize):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 10, 11, generator=g, dtype=torch.float64), torch.rand(2, 3, 10, 11, generator=g,
                                                                                 dtype=torch.float64)
    got = patch_mmd(x, y, patch_size=3, window=6, stride=4, sigma=0.6, normalize_channels=normalize)
    assert got.shape == (2,)
    assert torch.allclose(got, brute_force(x, y, 3, 6, 4, 0.6, normalize), rtol=1e-10)
    assert torch.allclose(PatchMMD(3, 6, 4, 0.6, normalize)(x, y), got)


def test_patch_mmd_is_zero_for_equal_images_symmetric_and_positive_otherwise():
    x = load_image("astronaut", size=64)
    y = gaussian_blur(x, 1.5)
    assert patch_mmd(x, x).abs().max() < 1e-6
    assert patch_mmd(x, y).item() > 1e-3
    assert patch_mmd(x, y).item() == pytest.approx(patch_mmd(y, x).item(), rel=1e-4)
    # the MMD of mean-removed patches ignores a brightness shift; the raw one does not
    bright = (x + 0.1).clamp(0, 1)
    assert patch_mmd(x, bright, normalize_channels=True).item() < 0.2 * patch_mmd(x, bright).item()


def test_the_defaults_are_the_papers():
    assert (3, 32, 16) == patch_mmd.__defaults__[:3]
    assert 0.5 < losses.SIGMA < 0.75 and patch_mmd.__defaults__[3] == losses.SIGMA
    rff = PatchMMDRFF()
    assert (rff.n_features, rff.patch_size, rff.window, rff.stride, rff.sigma) == (1024, 3, 32, 16, losses.SIGMA)


def test_window_mmd_is_patch_mmd_of_a_single_window():
    x, y = torch.rand(1, 3, 8, 8, dtype=torch.float64), torch.rand(1, 3, 8, 8, dtype=torch.float64)
    p = F.unfold(x, 3)[0].T
    q = F.unfold(y, 3)[0].T
    assert window_mmd(p, q, 0.6).item() == pytest.approx(patch_mmd(x, y, 3, 8, 8, 0.6).item(), rel=1e-12)


def test_rff_filters_have_the_distribution_of_the_gaussian_kernels_spectrum():
    w, b = losses.random_fourier_filters(20000, 3, 3, 0.5, torch.Generator().manual_seed(0))
    assert w.shape == (20000, 3, 3, 3) and b.shape == (20000,)
    assert w.std().item() == pytest.approx(1 / 0.5, rel=0.01)  # w ~ N(0, 1 / sigma^2)
    assert b.min() >= 0 and b.max() <= 2 * math.pi and b.mean().item() == pytest.approx(math.pi, rel=0.02)
    wn, _ = losses.random_fourier_filters(10, 3, 3, 0.5, torch.Generator().manual_seed(0), normalize_channels=True)
    assert wn.mean((2, 3)).abs().max() < 1e-12


def _images():
    x = load_image("coffee", size=64)
    return torch.cat([x, load_image("astronaut", size=64)]).double(), \
        torch.cat([gaussian_blur(x, 1.0), load_image("chelsea", size=64)]).double()


@pytest.mark.parametrize("normalize", [False, True])
def test_rff_estimate_is_unbiased(normalize):
    x, y = _images()
    exact = patch_mmd(x, y, normalize_channels=normalize)
    draws = torch.stack([PatchMMDRFF(256, seed=s, normalize_channels=normalize)(x, y) for s in range(100)])
    se = draws.std(0) / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - exact).abs() < 4 * se)


def test_rff_error_shrinks_like_one_over_root_r():
    x, y = _images()
    exact = patch_mmd(x, y)
    rs = (32, 128, 512, 2048)
    rms = [((torch.stack([PatchMMDRFF(r, seed=s)(x, y) for s in range(24)]) - exact) / exact).pow(2).mean().sqrt()
           for r in rs]
    slope = np.polyfit(np.log(rs), np.log([float(v) for v in rms]), 1)[0]
    assert -0.65 < slope < -0.35


def test_pooled_features_equal_the_direct_convolution_cosine_and_pooling_with_gradients():
    x0, y = torch.rand(2, 3, 40, 40, dtype=torch.float64), torch.rand(2, 3, 40, 40, dtype=torch.float64)
    loss = PatchMMDRFF(200, window=16, stride=8, seed=1)
    w, b = loss.filters(3)
    x = x0.clone().requires_grad_(True)
    loss(x, y).sum().backward()
    direct_x = x0.clone().requires_grad_(True)
    feats = lambda z: math.sqrt(2 / 200) * F.avg_pool2d(torch.cos(F.conv2d(z, w, b)), 14, 8)  # noqa: E731
    d = (feats(direct_x) - feats(y)).pow(2).flatten(1).sum(1) / 16  # 4 x 4 windows
    d.sum().backward()
    assert torch.allclose(loss(x0, y), d.detach())
    assert torch.allclose(x.grad, direct_x.grad)


def test_rff_draws_are_seeded_and_redrawn_on_request():
    x, y = _images()
    assert torch.equal(PatchMMDRFF(64, seed=3)(x, y), PatchMMDRFF(64, seed=3)(x, y))
    assert not torch.equal(PatchMMDRFF(64, seed=3)(x, y), PatchMMDRFF(64, seed=4)(x, y))
    fixed = PatchMMDRFF(64, seed=3)
    assert torch.equal(fixed(x, y), fixed(x, y))
    redraw = PatchMMDRFF(64, seed=3, redraw=True)
    first, second = redraw(x, y), redraw(x, y)
    assert not torch.equal(first, second)
    assert torch.equal(PatchMMDRFF(64, seed=3, redraw=True)(x, y), first)  # the sequence of draws is seeded
    with pytest.raises(ValueError, match="redraw"):
        redraw.mean_objective(x)


@pytest.mark.parametrize("make", [lambda: PatchMMD(window=16, stride=8), lambda: PatchMMDRFF(128, window=16, stride=8),
                                  lambda: SCNNLoss(width=32, depth=2, window=16, stride=8).double()],
                         ids=["exact", "rff", "scnn"])
def test_mean_objective_is_the_mean_loss_over_the_targets(make):
    loss = make()
    targets = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    y = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    objective = loss.mean_objective(targets)
    expected = torch.stack([loss(y, t[None]).sum() for t in targets]).mean()
    assert objective(y).item() == pytest.approx(expected.item(), rel=1e-9)
    y.requires_grad_(True)
    grad_obj, = torch.autograd.grad(objective(y), y)
    grad_mean, = torch.autograd.grad(torch.stack([loss(y, t[None]).sum() for t in targets]).mean(), y)
    assert torch.allclose(grad_obj, grad_mean, rtol=1e-6, atol=1e-12)


def test_gaussian_cross_mean_gradient():
    p = torch.rand(2, 5, 4, dtype=torch.float64, requires_grad=True)
    t = torch.rand(2, 7, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: gaussian_cross_mean(p, t, 0.6, 3), (p,))


def test_gim_under_the_exact_patch_mmd_keeps_the_targets_patch_contrast():
    """The corollary in miniature: from the blurry pixel mean, GIM under the patch MMD sharpens."""
    from perceptlab.gim import shifted_crops
    from perceptlab.metrics import relative_sharpness

    targets = shifted_crops(load_image("astronaut", size=64), 32, 4, 5, seed=0)
    mean = targets.mean(0, keepdim=True)
    out = generalized_mean(targets, PatchMMD(window=16, stride=8), steps=60, lr=0.05, init=mean)
    assert relative_sharpness(out, targets) > relative_sharpness(mean, targets) + 0.2


def test_registry_builds_the_chapter_5_distances():
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    for name in ("patch-mmd", "patch-mmd-norm", "patch-mmd-rff", "patch-mmd-rff-norm", "scnn-random-c128",
                 "scnn-random-c128-norm"):
        metric = registry.make(name)
        d = metric(x, y)
        assert d.shape == (2,) and torch.all(d > 0), name
        assert metric.label
    assert "C=1024" in registry.make("scnn-random").label
    assert "zero-mean" in registry.make("scnn-random-c128-norm").label


@pytest.mark.parametrize("call, name", [
    (lambda x, y: patch_mmd(x, y, sigma=0.0), "sigma"),
    (lambda x, y: patch_mmd(x, y, sigma=-1.0), "sigma"),
    (lambda x, y: patch_mmd(x, y, patch_size=40, window=32), "patch_size"),
    (lambda x, y: patch_mmd(x, y, window=80), "window"),
    (lambda x, y: patch_mmd(x, y, stride=0), "stride"),
    (lambda x, y: patch_mmd(x, y[:, :, :60]), "same shape"),
    (lambda x, y: patch_mmd(x, torch.full_like(y, float("nan"))), "y"),
    (lambda x, y: PatchMMDRFF(0), "n_features"),
    (lambda x, y: PatchMMDRFF(sigma=0), "sigma"),
    (lambda x, y: PatchMMDRFF(patch_size=5, window=4), "patch_size"),
    (lambda x, y: PatchMMDRFF(stride=0), "stride"),
    (lambda x, y: PatchMMDRFF()(x, y[:, :, :60]), "same shape"),
    (lambda x, y: PatchMMDRFF(window=80)(x, y), "window"),
    (lambda x, y: PatchMMDRFF()(torch.full_like(x, float("nan")), y), "x"),
    (lambda x, y: PatchMMD(sigma=-0.1), "sigma"),
])
def test_bad_input_raises_naming_the_argument(call, name):
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match=name):
        call(x, y)

"""Tests of perceptlab.metrics: the Frechet distance, streaming statistics, FID and KID.

References: pytorch-fid's scipy.linalg.sqrtm formula (written out below), clean-fid's
``fid_from_feats`` and ``kernel_distance``, torchmetrics' ``KernelInceptionDistance``.
"""
from __future__ import annotations

import math
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg
from torch import nn

from perceptlab import metrics
from perceptlab.metrics.distributions import FeatureStats
from perceptlab.metrics.distributions import Score
from perceptlab.metrics.distributions import fid
from perceptlab.metrics.distributions import fid_from_features
from perceptlab.metrics.distributions import frechet_distance
from perceptlab.metrics.distributions import kid
from perceptlab.metrics.distributions import kid_from_features


def pytorch_fid_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's ``calculate_frechet_distance`` (fid_score.py), minus its asserts and print.

    pytorch-fid calls ``sqrtm(..., disp=False)``; SciPy 1.16 deprecated ``disp``, which only changes
    the return format, so the plain call is used here.
    """
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"Imaginary component {np.max(np.abs(covmean.imag))}")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def gaussian_features(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """n samples (drawn with ``seed``) of a correlated d-dimensional Gaussian (a fixed well-conditioned mixing)."""
    mix = np.eye(d) + 0.3 * np.random.default_rng(d).standard_normal((d, d)) / math.sqrt(d)
    return scale * np.random.default_rng(seed).standard_normal((n, d)) @ mix + shift


def stats(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


# --------------------------------------------------------------------------- frechet_distance


@pytest.mark.parametrize("d, n", [(1, 50), (2, 100), (16, 500), (64, 2000), (2048, 3000)])
def test_frechet_distance_matches_pytorch_fid_sqrtm_formula(d, n):
    mu1, s1 = stats(gaussian_features(n, d, seed=d))
    mu2, s2 = stats(gaussian_features(n, d, seed=d + 1, scale=1.2, shift=0.05))
    ours = frechet_distance(mu1, s1, mu2, s2)
    reference = pytorch_fid_frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(ours, float)
    assert ours == pytest.approx(reference, rel=1e-6)
    assert ours == pytest.approx(frechet_distance(mu2, s2, mu1, s1), rel=1e-9)  # symmetric


def test_frechet_distance_is_zero_for_identical_statistics_and_accepts_torch():
    mu, s = stats(gaussian_features(300, 8, seed=0))
    assert frechet_distance(mu, s, mu, s) == 0.0
    assert frechet_distance(mu, s, mu.copy(), s.copy()) == 0.0
    t = frechet_distance(torch.from_numpy(mu), torch.from_numpy(s), torch.from_numpy(mu), torch.from_numpy(s))
    assert t == 0.0
    mu2, s2 = stats(gaussian_features(300, 8, seed=1))
    as_torch = frechet_distance(torch.from_numpy(mu), torch.from_numpy(s), torch.from_numpy(mu2), torch.from_numpy(s2))
    assert as_torch == frechet_distance(mu, s, mu2, s2)
    as_lists = frechet_distance(mu.tolist(), s.tolist(), mu2.tolist(), s2.tolist())
    assert as_lists == pytest.approx(as_torch, rel=1e-12)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(3)
    d = 40
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    a[:5] = 0.0  # singular too
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4.0 + 1.0)


def test_frechet_distance_is_finite_real_and_non_negative_for_singular_covariances():
    """Fewer samples than dimensions: both covariances have rank N - 1 < D."""
    d = 64
    f1 = gaussian_features(20, d, seed=0)
    f2 = gaussian_features(30, d, seed=1, shift=0.1)
    mu1, s1 = stats(f1)
    mu2, s2 = stats(f2)
    assert np.linalg.matrix_rank(s1) == 19 and np.linalg.matrix_rank(s2) == 29
    value = frechet_distance(mu1, s1, mu2, s2)
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    # the exact value: tr sqrt(S1 S2) from the eigenvalues of S1 S2 in extended precision is not
    # available here, but pytorch-fid's formula (with its 1e-6 I patch when needed) is close
    reference = pytorch_fid_frechet_distance(mu1, s1, mu2, s2)
    assert value == pytest.approx(reference, rel=1e-3)
    # rank-1 covariances S1 = uu^T, S2 = vv^T: S1 S2 = (u.v) u v^T has the one eigenvalue (u.v)^2,
    # so tr sqrt(S1 S2) = |u.v| and FID = |u|^2 + |v|^2 - 2 |u.v|; the sqrtm formula gets NaN or
    # complex values here and needs its 1e-6 I patch
    u = np.ones(d) / 8
    for v in (np.linspace(-1, 1, d), np.linspace(-0.5, 1, d)):  # orthogonal to u, then not
        s1, s2 = np.outer(u, u), np.outer(v, v)
        expected = u @ u + v @ v - 2 * abs(u @ v)
        assert frechet_distance(np.zeros(d), s1, np.zeros(d), s2) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_never_negative_near_identical_statistics():
    mu, s = stats(gaussian_features(2000, 256, seed=5))
    rng = np.random.default_rng(0)
    for k in range(5):
        noise = 1e-13 * rng.standard_normal(s.shape)
        value = frechet_distance(mu, s, mu, s + (noise + noise.T) / 2)
        assert value >= 0.0 and value < 1e-6


def test_frechet_distance_rejects_bad_inputs():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="mu1 and mu2 must have the same length"):
        frechet_distance(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="sigma2 must have shape \\(3, 3\\)"):
        frechet_distance(mu, s, mu, np.eye(4))
    with pytest.raises(ValueError, match="sigma1 must have 2 dimension"):
        frechet_distance(mu, np.ones((3, 3, 1)), mu, s)
    with pytest.raises(ValueError, match="mu2 contains NaN"):
        frechet_distance(mu, s, np.array([0, np.nan, 0]), s)
    with pytest.raises(ValueError, match="mu1 must be a numeric"):
        frechet_distance("abc", s, mu, s)


# --------------------------------------------------------------------------- clean-fid and torchmetrics


def test_fid_from_features_equals_clean_fid_and_fetches_nothing(monkeypatch, empty_torch_home):
    from cleanfid import fid as cleanfid_fid

    def no_network(*args, **kwargs):
        raise AssertionError("clean-fid's fid_from_feats must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    f1 = gaussian_features(600, 64, seed=0).astype(np.float32)
    f2 = gaussian_features(500, 64, seed=1, scale=1.1, shift=0.2).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # clean-fid passes sqrtm's deprecated disp=
        reference = cleanfid_fid.fid_from_feats(f1, f2)
    assert fid_from_features(f1, f2) == pytest.approx(reference, rel=1e-6)
    assert fid_from_features(torch.from_numpy(f1), torch.from_numpy(f2)) == pytest.approx(reference, rel=1e-6)
    assert not any(empty_torch_home.iterdir())  # nothing was downloaded into torch's cache


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_equals_torchmetrics_with_the_same_subset_draws():
    from torchmetrics.image.kid import KernelInceptionDistance

    f1 = torch.from_numpy(gaussian_features(300, 32, seed=0))
    f2 = torch.from_numpy(gaussian_features(250, 32, seed=1, scale=1.1, shift=0.1))
    metric = KernelInceptionDistance(feature=nn.Identity(), subsets=20, subset_size=100)
    metric.update(f1, real=True)
    metric.update(f2, real=False)
    torch.manual_seed(7)
    tm_mean, tm_std = metric.compute()
    mean, std = kid_from_features(f1, f2, num_subsets=20, subset_size=100, seed=7)
    assert mean == pytest.approx(tm_mean.item(), rel=1e-10)
    assert std == pytest.approx(tm_std.item(), rel=1e-8)
    assert mean > 3 * std / math.sqrt(20)  # different distributions: clearly positive


def test_kid_on_full_sets_is_deterministic_and_equals_clean_fid_kernel_distance():
    from cleanfid.fid import kernel_distance

    f1 = gaussian_features(200, 16, seed=2)
    f2 = gaussian_features(200, 16, seed=3, shift=0.05)
    mean, std = kid_from_features(f1, f2, num_subsets=3, subset_size=1000, seed=0)  # subsets = both full sets
    assert std < 1e-12 * abs(mean)
    np.random.seed(0)
    reference = kernel_distance(f1, f2, num_subsets=1, max_subset_size=200)
    assert mean == pytest.approx(reference, rel=1e-10)
    assert kid_from_features(f1, f2, num_subsets=1, subset_size=200, seed=123)[0] == pytest.approx(mean, rel=1e-12)


def test_kid_is_unbiased_zero_for_identical_distributions():
    """Mean over independent draws of KID between two samples of one distribution: ~0 (not positive,
    unlike FID), with individual estimates of both signs; a small shift is clearly detected."""
    same = [kid_from_features(gaussian_features(40, 8, seed=2 * k) , gaussian_features(40, 8, seed=2 * k + 1),
                              num_subsets=1, subset_size=40)[0] for k in range(100)]
    same = np.array(same)
    stderr = same.std(ddof=1) / math.sqrt(len(same))
    assert abs(same.mean()) < 4 * stderr
    assert (same < 0).any() and (same > 0).any()
    shifted = [kid_from_features(gaussian_features(40, 8, seed=2 * k), gaussian_features(40, 8, seed=2 * k + 1,
                                                                                             shift=0.5),
                                 num_subsets=1, subset_size=40)[0] for k in range(20)]
    assert np.mean(shifted) > 10 * stderr


# --------------------------------------------------------------------------- streaming statistics


def test_feature_stats_streaming_equals_numpy_for_uneven_batches():
    f = gaussian_features(187, 24, seed=0, shift=3.0)
    stats_ = FeatureStats()
    start = 0
    for k, size in enumerate([1, 7, 13, 64, 2, 100]):
        batch = f[start: start + size]
        stats_.update(torch.from_numpy(batch) if k % 2 else batch)  # torch and numpy batches
        start += size
    assert start == 187 and stats_.n == 187 and stats_.dim == 24
    np.testing.assert_allclose(stats_.mean, f.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats_.cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
    assert np.array_equal(stats_.cov, stats_.cov.T)
    one_shot = FeatureStats.from_features(f)
    np.testing.assert_allclose(one_shot.cov, stats_.cov, rtol=1e-10, atol=1e-12)
    merged = FeatureStats.from_features(f[:50]).merge(FeatureStats.from_features(f[50:]))
    np.testing.assert_allclose(merged.cov, np.cov(f, rowvar=False), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(merged.mean, f.mean(0), rtol=1e-12)


def test_feature_stats_are_accurate_far_from_the_origin():
    """A large common offset ruins the naive sum-of-outer-products formula in float64; Welford/Chan do not."""
    f = 1e6 + gaussian_features(1000, 8, seed=1) * 1e-2
    s = FeatureStats()
    for batch in np.array_split(f, 17):
        s.update(batch)
    np.testing.assert_allclose(s.cov, np.cov(f, rowvar=False), rtol=1e-7, atol=1e-12)


def test_feature_stats_checks():
    s = FeatureStats()
    with pytest.raises(ValueError, match="no samples"):
        s.mean
    s.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        s.cov
    with pytest.raises(ValueError, match="3 features per row"):
        s.update(np.ones((2, 4)))
    with pytest.raises(ValueError, match="shape \\(N, D\\)"):
        s.update(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        s.update(np.full((2, 3), np.nan))
    assert "n=1" in repr(s)


# --------------------------------------------------------------------------- fid / kid on images


class PooledPixels(nn.Module):
    """A deterministic toy extractor: 4x4 average-pooled grey pixels (N, 16)."""

    label = "4x4 pooled pixels (test extractor)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x.mean(1, keepdim=True), 4).flatten(1)


@pytest.fixture(scope="module")
def image_sets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.rand(53, 1, 16, 16, generator=g)
    fake = (torch.rand(41, 1, 16, 16, generator=g) * 0.8 + 0.1) ** 2
    return real, fake


def test_fid_streams_tensors_loaders_generators_and_single_images_alike(image_sets):
    real, fake = image_sets
    ext = PooledPixels()
    expected = fid_from_features(ext(real), ext(fake))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(fake, torch.zeros(len(fake))), batch_size=7)
    inputs = [
        (real, fake),
        (real, loader),  # (images, labels) batches of 7, the last one shorter
        ((b for b in real.split(10)), list(fake.split(5))),  # a generator and a list of batches
        (iter(real), torch.utils.data.TensorDataset(fake)),  # single images (C, H, W), grouped into batches
    ]
    for r, f in inputs:
        score = fid(r, f, ext, batch_size=8)
        assert isinstance(score, Score)
        assert score.value == pytest.approx(expected, rel=1e-9)
        assert (score.n_real, score.n_fake, score.metric, score.std) == (53, 41, "FID", None)
        assert score.feature_space == ext.label
    assert float(score) == score.value and f"{score:.3f}" == f"{score.value:.3f}"
    assert str(score).startswith(f"FID = {score.value:.4g} (53 real, 41 fake; 4x4 pooled pixels")


def test_fid_accepts_features_and_feature_stats(image_sets):
    real, fake = image_sets
    ext = PooledPixels()
    f_real, f_fake = ext(real), ext(fake)
    expected = fid_from_features(f_real, f_fake)
    s_real = metrics.feature_stats(real, ext, batch_size=5, name="real")
    assert s_real.feature_space == ext.label and s_real.n == 53
    assert fid(s_real, fake, ext).value == pytest.approx(expected, rel=1e-9)
    assert fid(s_real, f_fake.numpy(), ext).value == pytest.approx(expected, rel=1e-9)
    raw = fid(f_real, f_fake)
    assert raw.value == pytest.approx(expected, rel=1e-9) and raw.feature_space == metrics.NO_LABEL
    assert fid(f_real, f_fake, feature_space="my features").feature_space == "my features"
    other = FeatureStats.from_features(f_fake, "another space")
    with pytest.raises(ValueError, match="different feature spaces"):
        fid(s_real, other)


def test_kid_on_images_returns_mean_and_std_with_the_feature_space(image_sets):
    real, fake = image_sets
    ext = PooledPixels()
    score = kid(real, torch.utils.data.DataLoader(fake, batch_size=10), ext, num_subsets=10, subset_size=30, seed=1)
    mean, std = kid_from_features(ext(real), ext(fake), num_subsets=10, subset_size=30, seed=1)
    assert score.metric == "KID" and score.value == pytest.approx(mean, rel=1e-12)
    assert score.std == pytest.approx(std, rel=1e-12) and score.std > 0
    assert score.feature_space == ext.label and (score.n_real, score.n_fake) == (53, 41)
    assert "+-" in str(score)


def test_metrics_reject_bad_inputs(image_sets):
    real, fake = image_sets
    ext = PooledPixels()
    with pytest.raises(ValueError, match="real must have values in \\[0.0, 1.0\\]"):
        fid(real * 2, fake, ext)
    with pytest.raises(ValueError, match="batch 1 of fake must have values"):
        fid(real, [fake[:5], fake[5:] - 1], ext)
    with pytest.raises(ValueError, match="floating-point"):
        fid((real * 255).to(torch.uint8), fake, ext)
    with pytest.raises(ValueError, match="pass an extractor"):
        fid(real, fake)
    with pytest.raises(ValueError, match="training mode"):
        fid(real, fake, nn.Sequential(nn.Flatten(), nn.Dropout()).train())
    assert fid(real, fake, nn.Sequential(nn.Flatten(), nn.Dropout()).eval()).value > 0
    with pytest.raises(ValueError, match="features \\(N, D\\)"):
        fid(real, fake, nn.Identity().eval())
    with pytest.raises(ValueError, match="same dimension"):
        fid(np.ones((5, 3)) + np.arange(5)[:, None], np.ones((5, 4)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid(real[:1], fake, ext)
    with pytest.raises(ValueError, match="must be images as a torch tensor \\(N, C, H, W\\)"):
        fid(real[0], fake, ext)
    with pytest.raises(ValueError, match="got str"):
        fid("folder/", fake, ext)
    with pytest.raises(ValueError, match="real is empty"):
        fid([], fake, ext)
    with pytest.raises(ValueError, match="mixes images and features"):
        fid([real[:4], ext(real[4:])], fake, ext)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        fid(real, fake, ext, batch_size=0)
    with pytest.raises(ValueError, match="KID needs the features themselves"):
        kid(FeatureStats.from_features(ext(real)), fake, ext)
    with pytest.raises(ValueError, match="num_subsets must be a positive integer"):
        kid(real, fake, ext, num_subsets=0)
    with pytest.raises(ValueError, match="subset_size must be at least 2"):
        kid_from_features(np.ones((4, 2)), np.ones((4, 2)), subset_size=1)
    with pytest.raises(ValueError, match="same feature dimension"):
        kid_from_features(np.ones((4, 2)), np.ones((4, 3)))


# --------------------------------------------------------------------------- defects found by probing (issue 11)


def test_frechet_distance_rejects_what_is_not_a_covariance():
    mu, eye = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="sigma1 must be positive semi-definite"):
        frechet_distance(mu, -eye, mu, eye)
    with pytest.raises(ValueError, match="sigma2 must be a symmetric covariance"):
        frechet_distance(mu, eye, mu, np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]))
    with pytest.raises(ValueError, match="at least one dimension"):
        frechet_distance(np.zeros(0), np.zeros((0, 0)), np.zeros(0), np.zeros((0, 0)))
    assert frechet_distance(mu, eye, mu + 1, eye) == pytest.approx(3.0)  # valid inputs still work


def test_feature_stats_merge_refuses_another_space_or_a_tensor():
    a = FeatureStats("digits classifier").update(torch.randn(5, 4))
    with pytest.raises(ValueError, match="another space"):
        a.merge(FeatureStats("Inception pool3").update(torch.randn(5, 4)))
    with pytest.raises(ValueError, match="other must be a FeatureStats"):
        a.merge(torch.randn(5, 4))
    merged = FeatureStats().merge(a)  # an unlabelled, empty one takes the label
    assert merged.feature_space == "digits classifier" and merged.n == 5


@pytest.mark.parametrize("n", [0, 1])
def test_fid_from_features_needs_two_samples_and_says_so(n):
    with pytest.raises(ValueError, match=f"f1 must hold at least 2 feature vectors.*N = {n}"):
        fid_from_features(torch.randn(n, 3), torch.randn(10, 3))

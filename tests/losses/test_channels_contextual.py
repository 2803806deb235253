"""The channel-subset feature loss (Tariq et al. 2020, eq. 1) and the contextual loss (Mechrez et al. 2018),
each against a direct computation."""
import math

import numpy as np
import pytest
import torch

from perceptlab import losses, probing
from perceptlab.losses import registry
from perceptlab.models import backbone


@pytest.fixture(scope="module")
def vgg():
    return backbone("vgg16", "random")


def pair(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.rand(n, 3, size, size, generator=g)


def test_channel_distance_is_eq_1():
    g = torch.Generator().manual_seed(1)
    fx, fy = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g)
    keep = torch.tensor([0, 3])
    direct = ((fx[:, keep] - fy[:, keep]) ** 2).sum((1, 2, 3)) / (2 * 3 * 4)
    assert torch.allclose(losses.channel_distance(fx, fy, keep), direct)
    w = torch.tensor([1.0, 0.0, 2.0, 0.5, 1.5])
    direct_w = sum(w[m] * ((fx[:, m] - fy[:, m]) ** 2).sum((1, 2)) for m in range(5)) / (5 * 3 * 4)
    assert torch.allclose(losses.channel_distance(fx, fy, weights=w), direct_w)


def test_all_channels_with_unit_weights_is_the_one_layer_feature_loss(vgg):
    x, y = pair()
    ours = losses.ChannelFeatureLoss(vgg, "relu2_2", reduction="none")(x, y)
    johnson = losses.FeatureLoss(vgg, ["relu2_2"], reduction="none")(x, y)
    assert torch.allclose(ours, johnson, rtol=1e-5)
    ones = losses.ChannelFeatureLoss(vgg, "relu2_2", channel_weights=torch.ones(128), reduction="none")(x, y)
    assert torch.allclose(ones, johnson, rtol=1e-5)


def test_subsets_from_efficacy(vgg):
    stim = probing.Stimuli(size=32, ppd=16.0, freqs=(0.5, 1.0, 2.0, 4.0, 8.0), phases=(0.0, math.pi))
    pe = probing.probe(vgg, "relu2_2", stim)["relu2_2"]["pe"]
    h = losses.ChannelFeatureLoss.from_efficacy(vgg, "relu2_2", "H", 10, pe=pe)
    low = losses.ChannelFeatureLoss.from_efficacy(vgg, "relu2_2", "L", 10, pe=pe)
    assert torch.equal(h.channels, probing.channel_subset(pe, "H", 10)) and "H-10" in h.label
    assert set(h.channels.tolist()).isdisjoint(low.channels.tolist())
    assert pe[h.channels].min() > pe[low.channels].max()
    w = losses.ChannelFeatureLoss.from_efficacy(vgg, "relu2_2", "W", pe=pe)
    assert w.channel_weights.mean().item() == pytest.approx(1.0, rel=1e-5)
    x, y = pair()
    assert h(x, y) > 0 and torch.isfinite(w(x, y))


def test_channel_loss_rejects_bad_channels_and_weights(vgg):
    with pytest.raises(ValueError, match="channels"):
        losses.ChannelFeatureLoss(vgg, "relu2_2", channels=[0, 128])
    with pytest.raises(ValueError, match="channels"):
        losses.ChannelFeatureLoss(vgg, "relu2_2", channels=[1, 1])
    with pytest.raises(ValueError, match="channel_weights"):
        losses.ChannelFeatureLoss(vgg, "relu2_2", channel_weights=torch.ones(3))
    with pytest.raises(ValueError, match="x"):
        losses.ChannelFeatureLoss(vgg, "relu2_2")(torch.full((1, 3, 32, 32), 2.0), torch.rand(1, 3, 32, 32))


def test_registry_entries_are_pe_subsets():
    h, low = registry.make("vgg-random-relu2_2-h10"), registry.make("vgg-random-relu2_2-l10")
    assert isinstance(h, losses.ChannelFeatureLoss) and len(h.channels) == len(low.channels) == 13
    assert not registry.REGISTRY["vgg-imagenet-relu2_2-h10"].offline


# ---------------------------------------------------------------- contextual loss
def direct_cx(fx: np.ndarray, fy: np.ndarray, h: float, eps: float, w=None) -> float:
    """CX of one image pair, written with loops from Mechrez et al. (2018), eqs. 2-4."""
    c = fx.shape[0]
    x, y = fx.reshape(c, -1).T, fy.reshape(c, -1).T  # (P, C) points
    mu = y.mean(0)
    x, y = x - mu, y - mu
    if w is not None:
        x, y = x * w, y * w
    n = x.shape[0]
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d[i, j] = 1 - x[i] @ y[j] / (np.linalg.norm(x[i]) * np.linalg.norm(y[j]))
    cx = np.zeros((n, n))
    for i in range(n):
        dn = d[i] / (d[i].min() + eps)
        wi = np.exp((1 - dn) / h)
        cx[i] = wi / wi.sum()
    return float(np.mean([cx[:, j].max() for j in range(n)]))


@pytest.mark.parametrize("weighted", [False, True])
def test_contextual_similarity_matches_a_direct_computation(weighted):
    g = torch.Generator().manual_seed(3)
    fx, fy = torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, 3, 3, generator=g,
                                                                                      dtype=torch.float64)
    w = torch.tensor([0.5, 2.0, 1.0, 0.0], dtype=torch.float64) if weighted else None
    ours = losses.contextual_similarity(fx, fy, 0.5, 1e-5, w)
    for n in range(2):
        expected = direct_cx(fx[n].numpy(), fy[n].numpy(), 0.5, 1e-5, None if w is None else w.numpy())
        assert ours[n].item() == pytest.approx(expected, rel=1e-9)


def test_contextual_loss_is_zero_for_identical_images_and_ignores_positions(vgg):
    x, y = pair(1)
    cx = losses.ContextualLoss(vgg, "relu2_2", reduction="none")
    assert cx(x, x).item() == pytest.approx(0.0, abs=1e-3)
    f = vgg(x, ["relu2_2"])["relu2_2"]
    perm = torch.randperm(f.shape[2] * f.shape[3], generator=torch.Generator().manual_seed(0))
    shuffled = f.flatten(2)[..., perm].view_as(f)  # the same feature vectors, at other positions
    assert losses.contextual_similarity(shuffled, f).item() == pytest.approx(1.0, abs=1e-3)
    assert cx(x, y).item() > 0.1


def test_contextual_loss_gradients_and_bad_input(vgg):
    x, y = pair(1)
    x.requires_grad_(True)
    losses.ContextualLoss(vgg, "relu2_2", channel_weights=torch.rand(128))(x, y).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="h must be positive"):
        losses.ContextualLoss(vgg, h=0.0)
    with pytest.raises(ValueError, match="layer"):
        losses.ContextualLoss(vgg, layer="fc7")
    with pytest.raises(ValueError, match="same shape"):
        losses.contextual_similarity(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))

import pytest
import torch

from perceptlab import losses
from perceptlab import models
from perceptlab.losses import registry
from perceptlab.models import exemplar
from perceptlab.models.weights import WeightsUnavailableError

OFFLINE = [name for name, entry in registry.REGISTRY.items() if entry.offline]
ONLINE = [name for name, entry in registry.REGISTRY.items() if not entry.offline]


@pytest.fixture
def tiny_exemplar(monkeypatch):
    """Stand in a small untrained Exemplar-CNN for the cached comparator, so no training runs."""
    net = models.ExemplarCNN(4, (4, 8, 8)).backbone
    net.requires_grad_(False)
    monkeypatch.setattr(exemplar, "exemplar_cnn", lambda *a, **k: net)
    return net


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_distances_build_and_give_one_distance_per_image(name, tiny_exemplar):
    metric = registry.make(name, reduction="none")
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d = metric(x, y)
    assert d.shape == (2,) and torch.isfinite(d).all() and (d >= 0).all()
    if name.startswith("watson"):  # the released code's eps placement leaves a floor d(x, x) > 0
        assert (metric(x, x) < 0.02 * d).all()
    else:
        assert torch.allclose(metric(x, x), torch.zeros(2), atol=1e-6)
    assert isinstance(metric.label, str) and metric.label


def test_pixel_distances_equal_the_loss_functions():
    x, y = torch.rand(3, 3, 24, 24), torch.rand(3, 3, 24, 24)
    assert torch.equal(registry.make("l2")(x, y), losses.mse(x, y, reduction="none"))
    assert torch.allclose(registry.make("ssim")(x, y), 1 - losses.ssim(x, y, reduction="none"))
    assert registry.make("l2", reduction="mean")(x, y).shape == ()


def test_vgg_distances_use_the_lpips_layers_and_their_options(tiny_exemplar):
    plain, norm, zm = (registry.make(n) for n in ("vgg-random", "vgg-random-norm", "vgg-random-zm-norm"))
    assert plain.layers == list(losses.VGG_LAYERS)
    assert not plain.normalize_channels and norm.normalize_channels
    first = zm.net.features[0].weight
    assert torch.allclose(first.mean(dim=(1, 2, 3)), torch.zeros(first.shape[0]), atol=1e-6)
    assert "zero-mean" in zm.label
    assert registry.make("exemplar-norm").layers == list(losses.EXEMPLAR_LAYERS)


@pytest.mark.parametrize("name", ONLINE)
def test_imagenet_distances_fail_fast_offline(name, empty_torch_home):
    """This machine and CI have no internet: the ImageNet entries must fail with instructions."""
    with pytest.raises(WeightsUnavailableError, match="Put the file"):
        registry.make(name)


def test_unknown_distance_name_raises():
    with pytest.raises(ValueError, match="name must be one of"):
        registry.make("vgg-perfect")


def test_channel_normalised_vgg_distance_equals_lpips_without_linear_weights():
    """Weighting each layer by its channel count turns the mean over (C, H, W) into LPIPS's
    sum over channels: the registry's normalised VGG distance is LPIPS-VGG with w = 1."""
    ours = registry.make("vgg-random-norm")
    assert [ours.layer_weights[l] for l in ours.layers] == [64, 128, 256, 512, 512]
    lpips = losses.LPIPS("vgg", backbone_weights=models.backbone("vgg16", "random", seed=0), lin_weights=None,
                         reduction="none")
    x, y = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.rand(2, 3, 64, 64)
    assert torch.allclose(ours(x, y), lpips(x, y), rtol=1e-4)
    assert "LPIPS without linear weights" in ours.label


def test_unnormalised_feature_distance_weights_layers_equally(tiny_exemplar):
    plain = registry.make("exemplar")
    assert plain.layer_weights is None and not plain.normalize_channels

"""Tests of perceptlab.nets: backbones by name, the weights policy and named features."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from perceptlab import models
from perceptlab.models.backbones import BACKBONES
from perceptlab.models.backbones import FeatureExtractor
from perceptlab.models.backbones import backbone
from perceptlab.models.weights import WeightsUnavailableError

from conftest import load_or_fail_fast_offline


@pytest.fixture(scope="module")
def random_nets() -> dict[str, models.Backbone]:
    """Each backbone with seed-0 random weights, built once (VGG16's init takes seconds)."""
    return {name: backbone(name, "random", seed=0) for name in BACKBONES}


@pytest.fixture(scope="module")
def x64() -> torch.Tensor:
    return torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", BACKBONES)
def test_random_backbone_builds_in_eval_mode_without_grads(random_nets, name):
    net = random_nets[name]
    assert isinstance(net, models.Backbone) and net.name == name
    assert not net.training
    assert not any(p.requires_grad for p in net.parameters())
    assert net.weights_label == "random (seed 0)"
    assert "random (seed 0)" in repr(net)
    assert len(net.layer_names) == len(net.features) == len(set(net.layer_names))


@pytest.mark.parametrize("name", BACKBONES)
def test_random_weights_are_seeded_and_leave_global_rng_alone(random_nets, name):
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    again = backbone(name, "random", seed=0)
    other = backbone(name, "random", seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # building did not consume the global RNG
    assert _same_weights(again.features, random_nets[name].features)
    first = next(m for m in other.features if isinstance(m, nn.Conv2d))
    first0 = next(m for m in again.features if isinstance(m, nn.Conv2d))
    assert not torch.equal(first.weight, first0.weight)


def test_random_weights_match_torchvision_init_under_same_seed():
    import torchvision

    torch.manual_seed(5)
    reference = torchvision.models.squeezenet1_1(weights=None).features
    assert _same_weights(backbone("squeezenet1_1", "random", seed=5).features, reference)


def test_vgg16_layer_names(random_nets):
    names = random_nets["vgg16"].layer_names
    assert len(names) == 31
    for layer in ("conv1_1", "relu1_2", "pool1", "conv3_3", "pool4", "conv5_3", "relu5_3", "pool5"):
        assert layer in names
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert names[-3:] == ["conv5_3", "relu5_3", "pool5"]


def test_alexnet_and_squeezenet_layer_names(random_nets):
    alex = random_nets["alexnet"].layer_names
    assert [n for n in alex if n.startswith("relu")] == ["relu1", "relu2", "relu3", "relu4", "relu5"]
    assert alex[:3] == ["conv1", "relu1", "pool1"] and alex[-1] == "pool5"
    assert models.layer_names("alexnet") == alex
    squeeze = random_nets["squeezenet1_1"].layer_names
    assert squeeze[:3] == ["conv1", "relu1", "pool1"] and squeeze[-1] == "fire9"
    assert [type(m).__name__ for m in random_nets["squeezenet1_1"].features][-1] == "Fire"
    # every name matches the module type it labels
    for net in random_nets.values():
        for name, module in zip(net.layer_names, net.features):
            kind = {"conv": nn.Conv2d, "relu": nn.ReLU, "pool": nn.MaxPool2d}.get(name.rstrip("0123456789_"))
            if kind is not None:
                assert isinstance(module, kind), (net.name, name, module)


@pytest.mark.parametrize(
    "name, layer, shape",
    [("vgg16", "relu1_2", (2, 64, 64, 64)), ("vgg16", "relu2_2", (2, 128, 32, 32)),
     ("vgg16", "relu3_3", (2, 256, 16, 16)), ("vgg16", "relu5_3", (2, 512, 4, 4)), ("vgg16", "pool5", (2, 512, 2, 2)),
     ("alexnet", "relu1", (2, 64, 15, 15)), ("alexnet", "relu2", (2, 192, 7, 7)), ("alexnet", "relu5", (2, 256, 3, 3)),
     ("squeezenet1_1", "relu1", (2, 64, 31, 31)), ("squeezenet1_1", "fire3", (2, 128, 15, 15)),
     ("squeezenet1_1", "fire9", (2, 512, 3, 3))],
)
def test_output_shapes_for_64px_input(random_nets, x64, name, layer, shape):
    assert tuple(random_nets[name](x64, [layer])[layer].shape) == shape


def test_forward_returns_exactly_requested_layers_matching_full_pass(random_nets, x64):
    net = random_nets["alexnet"]
    everything = net(x64)
    assert list(everything) == net.layer_names
    out = FeatureExtractor(net, ["relu2", "conv1"])(x64)
    assert set(out) == {"relu2", "conv1"}
    assert torch.equal(out["relu2"], everything["relu2"])
    assert torch.equal(out["conv1"], everything["conv1"])


def test_forward_matches_manual_sequential_pass_with_normalisation(random_nets, x64):
    net = random_nets["vgg16"]
    mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    h = (x64 - mean) / std
    for module in list(net.features)[:9]:  # up to relu2_2
        h = module(h)
    assert torch.allclose(net(x64, ["relu2_2"])["relu2_2"], h, atol=1e-6)


def test_normalize_false_feeds_raw_input(x64):
    net = backbone("alexnet", "random", seed=0, normalize=False)
    conv1 = net.features[0]
    assert torch.allclose(net(x64, ["conv1"])["conv1"], conv1(x64), atol=1e-6)


def test_pre_activation_is_not_overwritten_by_relu(random_nets, x64):
    out = FeatureExtractor(random_nets["vgg16"], ["conv3_1", "relu3_1"])(x64)
    assert float(out["conv3_1"].min()) < 0
    assert torch.equal(out["relu3_1"], F.relu(out["conv3_1"]))
    fire_relus = [m for m in random_nets["squeezenet1_1"].features.modules() if isinstance(m, nn.ReLU)]
    assert fire_relus and not any(m.inplace for m in fire_relus)


def test_feature_extractor_rejects_unknown_layer(random_nets, x64):
    with pytest.raises(ValueError, match=r"layers must be names of alexnet layers .* unknown \['relu9'\]"):
        FeatureExtractor(random_nets["alexnet"], ["relu1", "relu9"])
    with pytest.raises(ValueError, match="unknown"):
        random_nets["alexnet"](x64, ["conv1_1"])


def test_zero_mean_first_layer_filters():
    plain = backbone("alexnet", "random", seed=2)
    zm = backbone("alexnet", "random", seed=2, zero_mean_first=True)
    w0, w = plain.features[0].weight, zm.features[0].weight
    assert w.mean(dim=(2, 3)).abs().max() < 1e-7  # zero-mean for every input channel of every filter
    assert w0.mean(dim=(2, 3)).abs().max() > 1e-4  # it was not zero-mean before
    assert torch.allclose(w, w0 - w0.mean(dim=(2, 3), keepdim=True))
    assert torch.equal(zm.features[3].weight, plain.features[3].weight)  # deeper layers untouched
    assert zm.weights_label == "random (seed 2), zero-mean first layer"
    # the first layer ignores a constant added to one channel (a colour cast), away from the zero padding
    x = torch.rand(1, 3, 64, 64) * 0.5
    cast = x + torch.tensor([0.3, 0.0, 0.1]).view(1, 3, 1, 1)
    conv = zm.features[0]
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    assert torch.allclose(conv(x)[inner], conv(cast)[inner], atol=1e-5)
    assert not torch.allclose(plain.features[0](x)[inner], plain.features[0](cast)[inner], atol=1e-3)


def test_imagenet_weights_offline_raise_quickly_naming_url_and_path(empty_torch_home):
    path = models.imagenet_weights_path("squeezenet1_1")
    assert str(path).startswith(str(empty_torch_home))
    url = models.imagenet_weights("squeezenet1_1").url
    net = load_or_fail_fast_offline(lambda: backbone("squeezenet1_1", "imagenet", timeout=5), url, path)
    if net is not None:  # online: the weights were really downloaded into the temporary cache
        assert net.weights_label.startswith("imagenet")


def test_imagenet_weights_from_hub_cache(empty_torch_home):
    import torchvision

    torch.manual_seed(11)
    full = torchvision.models.squeezenet1_1(weights=None)
    path = models.imagenet_weights_path("squeezenet1_1")
    path.parent.mkdir(parents=True)
    torch.save(full.state_dict(), path)
    net = backbone("squeezenet1_1", "imagenet")
    assert _same_weights(net.features, full.features)
    assert net.weights_label == "imagenet (SqueezeNet1_1_Weights.IMAGENET1K_V1)"


def test_weights_from_local_features_state_dict(tmp_path, random_nets):
    source = backbone("alexnet", "random", seed=3)
    path = tmp_path / "alexnet_features.pth"
    torch.save(source.features.state_dict(), path)
    net = backbone("alexnet", path)
    assert _same_weights(net.features, source.features)
    assert not _same_weights(net.features, random_nets["alexnet"].features)
    assert net.weights_label == "file alexnet_features.pth"


def test_weights_from_local_full_model_state_dict(tmp_path):
    import torchvision

    torch.manual_seed(4)
    full = torchvision.models.squeezenet1_1(weights=None)
    path = tmp_path / "squeezenet_full.pth"
    torch.save(full.state_dict(), path)  # keys "features.*" and "classifier.*"
    assert _same_weights(backbone("squeezenet1_1", str(path)).features, full.features)


def test_weights_missing_path_raises(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        backbone("alexnet", tmp_path / "nope.pth")


def test_unknown_backbone_raises():
    with pytest.raises(ValueError, match="name must be one of"):
        backbone("resnet50")


@pytest.mark.parametrize(
    "bad, match",
    [(torch.rand(1, 1, 32, 32), "must have 3 channels"), (torch.rand(1, 3, 32, 32) * 2, r"values in \[0.0, 1.0\]"),
     (torch.rand(3, 32, 32), r"shape \(N, C, H, W\)"), (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating")],
)
def test_bad_inputs_raise_naming_x(random_nets, bad, match):
    with pytest.raises(ValueError, match=match) as info:
        random_nets["squeezenet1_1"](bad)
    assert str(info.value).startswith("x ")


def test_gradients_flow_to_input(random_nets):
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    random_nets["alexnet"](x, ["relu2"])["relu2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- damaged weight files


def _damaged_files(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(backbone("vgg16", "random").features.state_dict(), good)
    data = good.read_bytes()
    files = {"empty": b"", "truncated": data[: len(data) // 3], "random bytes": bytes(range(256)) * 40}
    out = {}
    for name, content in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.pth"
        out[name].write_bytes(content)
    return out


@pytest.mark.parametrize("kind", ["empty", "truncated", "random bytes"])
def test_a_damaged_weights_file_gives_a_clear_error_naming_it(tmp_path, kind):
    path = _damaged_files(tmp_path)[kind]
    with pytest.raises(WeightsUnavailableError, match=f"{path} cannot be read as a vgg16 state dict.*Fix: pass the path"):
        backbone("vgg16", path)


def test_another_networks_weights_file_is_named_as_such(tmp_path):
    path = tmp_path / "alexnet.pth"
    torch.save(backbone("alexnet", "random").features.state_dict(), path)
    with pytest.raises(ValueError, match=f"weights file {path} does not fit vgg16's convolutional layers"):
        backbone("vgg16", path)


def test_a_damaged_file_in_the_hub_cache_says_to_delete_it(tmp_path, monkeypatch):
    from perceptlab.models import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    path = weights.imagenet_weights_path("vgg16")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsUnavailableError, match=f"{path} cannot be read as ImageNet weights.*Fix: delete {path} so that it is downloaded"):
        backbone("vgg16", "imagenet")
    assert path.exists()  # the library does not delete it either

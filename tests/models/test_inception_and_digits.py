"""Tests of perceptlab.extractors: Inception-v3 pool3 (weights policy, TF FID architecture) and
the digits classifier trained and cached by the library."""
from __future__ import annotations


import pytest
import torch

from perceptlab import metrics
from perceptlab import models
from perceptlab.course import spread
from perceptlab.models import digits
from perceptlab.data.images import load_digits
from perceptlab.models.digits import DigitsClassifierConfig
from perceptlab.models.digits import DigitsFeatures
from perceptlab.models.inception import InceptionFeatures
from perceptlab.models.weights import WeightsUnavailableError

from conftest import load_or_fail_fast_offline

TINY = dict(widths=(4, 8, 8), feature_dim=8, steps=6, batch=16, ckpt_every=2)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- Inception-v3


@pytest.fixture(scope="module")
def random_inception() -> InceptionFeatures:
    """Seeded random Inception at input size 80 (cheap on a CPU; 299 is the default)."""
    return InceptionFeatures("random", seed=0, size=80)


def test_random_inception_maps_grey_and_rgb_images_to_2048_features(random_inception):
    net = random_inception
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    assert net.dim == 2048 and net.architecture == "torchvision"
    assert "Inception-v3 pool3 (2048-d), random weights (seed 0)" in net.label and "not comparable" in net.label
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(2, 1, 32, 32, generator=g)
    f = net(grey)
    assert f.shape == (2, 2048) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert torch.equal(f, net(grey.expand(-1, 3, -1, -1)))  # grey is replicated to 3 channels
    assert net(torch.rand(3, 3, 96, 64, generator=g)).shape == (3, 2048)
    net.train()
    assert not net.training  # a fixed measuring instrument


def test_random_inception_is_seeded_and_leaves_the_global_rng_alone(random_inception):
    torch.manual_seed(3)
    state = torch.get_rng_state()
    again = InceptionFeatures("random", seed=0, size=80)
    assert torch.equal(torch.get_rng_state(), state)
    assert _same_weights(again, random_inception)


def test_inception_preprocessing_resizes_to_299_and_scales_to_minus_one_one():
    x = torch.rand(2, 1, 32, 32)
    h = models.inception_preprocess(x)
    assert h.shape == (2, 3, 299, 299) and h.min() >= -1 and h.max() <= 1
    assert torch.equal(h[:, 0], h[:, 2])
    big = torch.rand(1, 3, 600, 600)
    smooth = models.inception_preprocess(big)
    assert smooth.std() < models.inception_preprocess(big, antialias=False).std()  # antialiased shrinking
    assert torch.equal(models.inception_preprocess(torch.ones(1, 3, 80, 80), None), torch.ones(1, 3, 80, 80))
    with pytest.raises(ValueError, match="at least 75x75"):
        models.inception_preprocess(torch.rand(1, 3, 32, 32), None)


def test_inception_rejects_bad_inputs_and_arguments(random_inception, tmp_path):
    with pytest.raises(ValueError, match="x must have 1 or 3 channels"):
        random_inception(torch.rand(1, 2, 80, 80))
    with pytest.raises(ValueError, match="x must have values in"):
        random_inception(torch.rand(1, 3, 80, 80) + 1)
    with pytest.raises(ValueError, match="size must be at least 75"):
        InceptionFeatures("random", size=32)
    with pytest.raises(ValueError, match="architecture must be one of"):
        InceptionFeatures("random", architecture="keras")
    with pytest.raises(ValueError, match="need architecture='torchvision'"):
        InceptionFeatures("imagenet", architecture="tf_fid")
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        InceptionFeatures(tmp_path / "nope.pth")
    with pytest.raises(ValueError, match="weights must be one of"):
        InceptionFeatures(3)


@pytest.mark.parametrize("weights", ["imagenet", "fid"])
def test_inception_weights_offline_raise_quickly_naming_url_and_path(empty_torch_home, weights):
    if weights == "imagenet":
        path, url = models.imagenet_weights_path("inception_v3"), models.imagenet_weights("inception_v3").url
    else:
        path, url = models.fid_weights_path(), models.FID_WEIGHTS_URL
    assert str(path).startswith(str(empty_torch_home))
    net = load_or_fail_fast_offline(lambda: InceptionFeatures(weights, timeout=5), url, path)
    if net is not None:  # online: the weights were really downloaded into the temporary cache
        assert net.label.startswith("Inception-v3 pool3")


def _tf_fid_stand_in() -> dict:
    """A state dict in the format of pytorch-fid's pt_inception-2015-12-05-6726825d.pth: all keys and
    shapes of inception_v3(num_classes=1008, aux_logits=False), random weights and BatchNorm statistics."""
    torch.manual_seed(0)
    net = models.inception_net("tf_fid", num_classes=1008)
    state = net.state_dict()
    g = torch.Generator().manual_seed(1)
    for k, v in state.items():
        if k.endswith("running_mean"):
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
        elif k.endswith("running_var"):
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
    assert state["fc.weight"].shape == (1008, 2048) and not any(k.startswith("AuxLogits") for k in state)
    return state


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision")  # pytorch-fid's code passes pretrained=False
def test_tf_fid_weights_load_from_the_hub_cache_and_match_pytorch_fid(empty_torch_home):
    """The stand-in, put where pytorch-fid keeps the real file, loads; our TF FID blocks give the same
    features as pytorch-fid's FIDInception code (as vendored by clean-fid) with the same weights."""
    from cleanfid.inception_pytorch import InceptionV3 as PytorchFidInception

    state = _tf_fid_stand_in()
    path = models.fid_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    ours = InceptionFeatures("fid", size=None)
    assert ours.architecture == "tf_fid"
    assert "TF FID Inception weights" in ours.label and "comparable with pytorch-fid" in ours.label
    assert "NOT" not in ours.label
    loaded = ours.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.startswith("fc."))

    reference = PytorchFidInception(output_blocks=[3], resize_input=False, normalize_input=True).eval()
    x = torch.rand(2, 3, 80, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x)[0].flatten(1)
    assert torch.allclose(ours(x), expected, rtol=1e-5, atol=1e-6)
    # the blocks matter: torchvision's architecture with the same weights gives other features
    assert not torch.allclose(_torchvision_arch_features(state, x), expected, atol=1e-4)


def _torchvision_arch_features(state: dict, x: torch.Tensor) -> torch.Tensor:
    net = models.inception_net("torchvision", num_classes=1008)
    net.load_state_dict(state)
    net.eval()
    h = 2 * x - 1
    with torch.no_grad():
        for name in models.INCEPTION_LAYERS:
            h = getattr(net, name)(h)
    return h.flatten(1)


def test_inception_weights_from_a_file_detect_the_architecture(tmp_path):
    state = _tf_fid_stand_in()
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    net = InceptionFeatures(path, size=None)
    assert net.architecture == "tf_fid" and "TF FID architecture" in net.label
    assert InceptionFeatures(path, size=None, architecture="torchvision").architecture == "torchvision"
    broken = {k: v for k, v in state.items() if not k.startswith("Mixed_7c.")}
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="not a state dict of torchvision's inception_v3.*missing \\['Mixed_7c"):
        InceptionFeatures(tmp_path / "broken.pth")
    torch.save({**state, "fc.weight": torch.zeros(10, 2048)}, tmp_path / "ten.pth")
    with pytest.raises(ValueError, match="fc has 10 classes"):
        InceptionFeatures(tmp_path / "ten.pth")


def test_imagenet_inception_weights_from_the_hub_cache(empty_torch_home):
    import torchvision

    torch.manual_seed(1)
    full = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = models.imagenet_weights_path("inception_v3")
    path.parent.mkdir(parents=True)
    torch.save(full.state_dict(), path)  # the real file's format: with AuxLogits.* and fc (1000 classes)
    net = InceptionFeatures("imagenet", size=None)
    assert net.architecture == "torchvision"
    assert net.weights_label == "torchvision Inception_V3_Weights.IMAGENET1K_V1"
    assert "NOT comparable with published FID" in net.label
    assert torch.equal(net.net.Mixed_7c.branch_pool.conv.weight, full.Mixed_7c.branch_pool.conv.weight)
    x = torch.rand(1, 3, 80, 80)
    full.eval()
    with torch.no_grad():  # torchvision's own forward with transform_input on ImageNet-normalised input
        full.transform_input = True
        mean = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
        h = full._transform_input((x - mean) / std)
        for name in models.INCEPTION_LAYERS:
            h = getattr(full, name)(h)
    assert torch.allclose(net(x), h.flatten(1), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- the digits classifier


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """The quick preset's digits classifier, trained from scratch into an empty cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PERCEPTLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield models.digits_classifier()
    mp.undo()


def test_digits_classifier_generalises(trained_digits):
    net = trained_digits
    config = DigitsClassifierConfig()
    assert isinstance(net, DigitsFeatures) and net.meta["steps_done"] == config.steps
    # seeds 0-4 x 1, 2 threads: test accuracy 0.984 +- 0.009, min 0.969 (perceptlab.course.spread.OUTCOMES["digits"])
    assert spread.failed_checks("digits", {"test_accuracy": net.test_accuracy}) == []
    _, _, x_test, y_test = models.digits_split(config)
    assert len(y_test) == config.n_test
    assert (net.classify(x_test).argmax(1) == y_test).float().mean().item() == pytest.approx(net.test_accuracy)
    assert net.label.startswith(f"digits classifier trained here (test accuracy {net.test_accuracy:.3f}")
    assert "64-d penultimate layer" in net.label


def test_digits_split_is_disjoint_and_seeded():
    config = DigitsClassifierConfig()
    x_train, y_train, x_test, y_test = models.digits_split(config)
    assert len(y_train) + len(y_test) == 1797
    flat_train = {tuple(r.tolist()) for r in x_train.flatten(1)}
    assert sum(tuple(r.tolist()) in flat_train for r in x_test.flatten(1)) <= 2  # sklearn has a few duplicates
    assert torch.equal(models.digits_split(config)[3], y_test)


def test_digits_features_shapes_channels_and_sizes(trained_digits):
    net = trained_digits
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    images, _ = load_digits(32)
    x = images[:10]
    f = net(x)
    assert f.shape == (10, 64) and f.dtype == torch.float32 and (f >= 0).all()
    assert torch.allclose(net(x.expand(-1, 3, -1, -1)), f, atol=1e-5)  # RGB -> grey (BT.709 weights sum to 1)
    assert net(torch.nn.functional.interpolate(x, size=28, mode="bilinear")).shape == (10, 64)  # MNIST-sized
    with pytest.raises(ValueError, match="x must have 1 or 3 channels"):
        net(torch.rand(2, 2, 32, 32))


def test_digits_classifier_is_cached_and_reloaded_without_training(trained_digits, monkeypatch):
    net = trained_digits
    config = DigitsClassifierConfig()
    assert (digits.cache_path(config) / "model.pt").exists()

    def no_training(*args, **kwargs):
        raise AssertionError("a cached digits classifier must not be trained again")

    monkeypatch.setattr(digits, "train_digits_classifier", no_training)
    again = models.digits_classifier()
    assert _same_weights(again, net) and again.label == net.label
    assert isinstance(models.extractor_for_preset("quick"), DigitsFeatures)
    with pytest.raises(AssertionError, match="must not be trained"):
        models.digits_classifier(retrain=True)


def test_digits_classifier_training_resumes_exactly(tmp_path, empty_data_dir):
    config = DigitsClassifierConfig(**TINY)
    full, _ = models.train_digits_classifier(config, out_dir=tmp_path / "a")
    models.train_digits_classifier(config, out_dir=tmp_path / "b", stop_after=3)
    resumed, meta = models.train_digits_classifier(config, out_dir=tmp_path / "b")
    assert meta["steps_done"] == config.steps
    assert _same_weights(full, resumed)
    assert digits.config_key(config) != digits.config_key(DigitsClassifierConfig())


def test_fid_in_digits_space_ranks_held_out_digits_above_noisy_ones(trained_digits):
    """Held-out real digits are much closer to the training digits than noisy or blurred ones."""
    net = trained_digits
    x_train, _, x_test, _ = models.digits_split(DigitsClassifierConfig())
    g = torch.Generator().manual_seed(0)
    noisy = (x_test + 0.3 * torch.randn(x_test.shape, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(x_test, 5, 1, 2)
    real = metrics.fid(x_train, x_test, net)
    assert real.feature_space == net.label and real.n_fake == len(x_test)
    assert metrics.fid(x_train, noisy, net).value > 3 * real.value
    assert metrics.fid(x_train, blurred, net).value > 2 * real.value
    score = metrics.kid(x_train, x_test, net, subset_size=200, num_subsets=20)
    assert score.value < metrics.kid(x_train, noisy, net, subset_size=200, num_subsets=20).value


def test_extractor_for_preset_full_is_inception():
    net = models.extractor_for_preset("full", inception_weights="random", size=80)
    assert isinstance(net, InceptionFeatures) and "random weights" in net.label

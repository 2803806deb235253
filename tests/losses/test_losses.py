import pytest
import torch

from perceptlab import losses
from perceptlab import models


def _pair(seed=0, shape=(3, 2, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_mse_and_l1_match_torch_reference():
    x, y = _pair()
    assert torch.allclose(losses.mse(x, y), torch.nn.functional.mse_loss(x, y))
    assert torch.allclose(losses.l1(x, y), torch.nn.functional.l1_loss(x, y))


def test_reduction_none_gives_one_value_per_image():
    x, y = _pair()
    per = losses.mse(x, y, reduction="none")
    assert per.shape == (3,)
    assert torch.allclose(per, ((x - y) ** 2).flatten(1).mean(1))
    assert torch.allclose(per.mean(), losses.mse(x, y))


def test_modules_equal_functions():
    x, y = _pair(1)
    assert torch.equal(losses.MSELoss()(x, y), losses.mse(x, y))
    assert torch.equal(losses.L1Loss(reduction="none")(x, y), losses.l1(x, y, "none"))


def test_registry_resolves_names_and_passes_callables_through():
    x, y = _pair(3)
    assert losses.registry.resolve(losses.mse) is losses.mse
    assert torch.equal(losses.registry.resolve("l2")(x, y), losses.mse(x, y))  # reduction "mean" by default
    assert torch.equal(losses.registry.resolve("l1", reduction="none")(x, y), losses.l1(x, y, reduction="none"))
    x16, y16 = _pair(3, (2, 3, 16, 16))
    assert torch.allclose(losses.registry.resolve("ssim")(x16, y16), losses.ssim_loss(x16, y16))
    with pytest.raises(ValueError, match="loss must be a callable loss"):
        losses.registry.resolve("ssim?")


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x, y[:, :1]), "same shape"),
    (lambda x, y: (x * 2, y), r"x must have values in \[0"),
    (lambda x, y: (x, y.double().long()), "y must be a floating-point"),
    (lambda x, y: (x[0], y[0]), "x must have shape"),
])
def test_bad_inputs_raise_value_error_naming_argument(bad, match):
    x, y = _pair()
    with pytest.raises(ValueError, match=match):
        losses.mse(*bad(x, y))


def test_bad_reduction_raises():
    x, y = _pair()
    with pytest.raises(ValueError, match="reduction"):
        losses.l1(x, y, reduction="sum")


# --------------------------------------------------------------------------- PSNR

def test_psnr_per_image_matches_formula_and_is_inf_for_identical_images():
    x, y = _pair(2)
    per = losses.psnr(x, y, reduction="none")
    expected = 10 * torch.log10(1 / ((x - y) ** 2).flatten(1).mean(1))
    assert per.shape == (3,) and torch.allclose(per, expected)
    assert torch.allclose(losses.psnr(x, y), expected.mean())
    assert torch.equal(losses.PSNR(reduction="none")(x, y), per)
    same = losses.psnr(torch.cat([x[:1], x[1:]]), torch.cat([x[:1], y[1:]]), reduction="none")
    assert same[0] == float("inf") and torch.isfinite(same[1:]).all()


def test_psnr_data_range_scales_peak_and_bounds_the_inputs():
    x, y = _pair(3)
    assert torch.allclose(losses.psnr(255 * x, 255 * y, data_range=255.0), losses.psnr(x, y), atol=1e-4)
    with pytest.raises(ValueError, match=r"x must have values in \[0.0, 1.0\]"):
        losses.psnr(255 * x, 255 * y)
    with pytest.raises(ValueError, match="data_range"):
        losses.psnr(x, y, data_range=0)


def test_psnr_from_mse_closed_form():
    assert float(losses.psnr_from_mse(torch.tensor(0.01))) == pytest.approx(20.0)
    assert float(losses.psnr_from_mse(torch.tensor(0.0))) == float("inf")


# --------------------------------------------------------------------------- SSIM

def _skimage_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of skimage with the settings of Wang et al. 2004, on (N, C, H, W) tensors."""
    from skimage.metrics import structural_similarity
    return torch.tensor([structural_similarity(a.double().numpy(), b.double().numpy(), gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                               channel_axis=0) for a, b in zip(x, y)], dtype=torch.float64)


def _astronaut(grey: bool) -> torch.Tensor:
    from skimage import color, data
    img = data.astronaut()
    arr = color.rgb2gray(img)[None] if grey else img.transpose(2, 0, 1) / 255.0
    return torch.from_numpy(arr).float().clamp(0, 1)


@pytest.mark.parametrize("shape", [(2, 3, 32, 48), (3, 1, 11, 11), (2, 3, 64, 64), (1, 3, 17, 40)])
def test_ssim_matches_skimage_on_random_images(shape):
    g = torch.Generator().manual_seed(sum(shape))
    x, y = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    ref = _skimage_ssim(x, y)
    assert (losses.ssim(x, y, reduction="none").double() - ref).abs().max() < 1e-4  # float32
    assert (losses.ssim(x.double(), y.double(), reduction="none") - ref).abs().max() < 1e-10


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("size", [(32, 48), (64, 64), (45, 31)])
def test_ssim_matches_skimage_on_natural_image_crops(grey, size):
    img = _astronaut(grey)
    h, w = size
    tops = [(30, 200), (100, 150), (300, 260)]
    # pairs: a crop against a slightly shifted crop and against a noisy/darkened copy
    x = torch.stack([img[:, t:t + h, l:l + w] for t, l in tops])
    y = torch.stack([img[:, t + 2:t + 2 + h, l + 1:l + 1 + w] for t, l in tops[:2]]
                    + [(0.8 * img[:, t:t + h, l:l + w] + 0.05 * torch.rand(img.shape[0], h, w)).clamp(0, 1)
                       for t, l in tops[2:]])
    ours = losses.ssim(x, y, reduction="none")
    assert (ours.double() - _skimage_ssim(x, y)).abs().max() < 1e-4
    assert ((ours > 0) & (ours < 1)).all()


def test_ssim_structured_cases_identical_constant_and_shift():
    x, _ = _pair(5, (2, 3, 16, 16))
    assert torch.allclose(losses.ssim(x, x, reduction="none"), torch.ones(2))
    assert float(losses.ssim_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    # constant images a, b: SSIM reduces to the luminance term (2ab + C1) / (a^2 + b^2 + C1)
    a, b, c1 = 0.3, 0.6, 0.01 ** 2
    ca, cb = torch.full((1, 1, 12, 12), a), torch.full((1, 1, 12, 12), b)
    assert float(losses.ssim(ca, cb)) == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-5)
    # a constant shift keeps structure and contrast: below 1, and as skimage says
    xs = 0.8 * x
    shifted = xs + 0.2
    s = losses.ssim(xs, shifted, reduction="none")
    assert (s < 1).all() and (s.double() - _skimage_ssim(xs, shifted)).abs().max() < 1e-4


def test_ssim_is_differentiable_with_finite_nonzero_gradient():
    x, y = _pair(6, (2, 3, 24, 24))
    x.requires_grad_(True)
    losses.ssim_loss(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_ssim_passes_gradcheck_in_float64():
    g = torch.Generator().manual_seed(7)
    x = (0.1 + 0.8 * torch.rand(1, 1, 11, 12, generator=g, dtype=torch.float64)).requires_grad_(True)
    y = 0.1 + 0.8 * torch.rand(1, 1, 11, 12, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: losses.ssim(a, y), (x,))


def test_ssim_modules_and_loss_registered_by_name():
    x, y = _pair(8, (2, 3, 16, 16))
    assert torch.equal(losses.SSIM(reduction="none")(x, y), losses.ssim(x, y, reduction="none"))
    assert torch.allclose(losses.SSIMLoss()(x, y), 1 - losses.ssim(x, y))
    assert losses.ssim(x, y, reduction="none").shape == (2,)


@pytest.mark.parametrize("bad, match", [
    (lambda x, y: (x[0], y[0]), "x must have shape"),
    (lambda x, y: (x.masked_fill(x > 0.9, float("nan")), y), "x contains NaN"),
    (lambda x, y: (x, y + 1), r"y must have values in \[0"),
    (lambda x, y: (x[..., :10, :], y[..., :10, :]), "x must be at least 11x11"),
])
def test_ssim_bad_inputs_raise_value_error_naming_argument(bad, match):
    x, y = _pair(9, (2, 3, 16, 16))
    with pytest.raises(ValueError, match=match):
        losses.ssim(*bad(x, y))


def test_ssim_bad_options_raise():
    x, y = _pair(9, (2, 3, 16, 16))
    with pytest.raises(ValueError, match="sigma"):
        losses.ssim(x, y, sigma=0)
    with pytest.raises(ValueError, match="reduction"):
        losses.ssim(x, y, reduction="sum")


# --------------------------------------------------------------------------- feature losses

@pytest.fixture(scope="module")
def vgg():
    return models.backbone("vgg16", "random", seed=0)


@pytest.fixture(scope="module")
def alex():
    return models.backbone("alexnet", "random", seed=0)


def _images(seed=0, n=2, size=32):
    return _pair(seed, (n, 3, size, size))


def test_feature_distance_is_weighted_mean_squared_difference_per_layer():
    g = torch.Generator().manual_seed(0)
    fx = {"a": torch.randn(2, 4, 3, 3, generator=g), "b": torch.randn(2, 6, 2, 5, generator=g)}
    fy = {k: torch.randn(v.shape, generator=g) for k, v in fx.items()}
    msd = {k: ((fx[k] - fy[k]) ** 2).flatten(1).mean(1) for k in fx}
    assert torch.allclose(losses.feature_distance(fx, fy), msd["a"] + msd["b"])
    assert torch.allclose(losses.feature_distance(fx, fy, {"a": 2.0, "b": 0.5}), 2 * msd["a"] + 0.5 * msd["b"])
    with pytest.raises(ValueError, match="same, non-empty layer keys"):
        losses.feature_distance(fx, {"a": fy["a"]})
    with pytest.raises(ValueError, match="layer_weights must have the keys"):
        losses.feature_distance(fx, fy, {"a": 1.0})


def test_feature_distance_channel_normalisation_is_invariant_to_positive_scaling():
    g = torch.Generator().manual_seed(1)
    fx, fy = {"a": torch.randn(2, 5, 4, 4, generator=g)}, {"a": torch.randn(2, 5, 4, 4, generator=g)}
    scale = torch.tensor([3.0, 0.2]).view(2, 1, 1, 1)
    scaled = {"a": fx["a"] * scale}
    d = losses.feature_distance(fx, fy, normalize_channels=True)
    assert torch.allclose(losses.feature_distance(scaled, fy, normalize_channels=True), d, atol=1e-6)
    assert not torch.allclose(losses.feature_distance(scaled, fy), losses.feature_distance(fx, fy))
    unit = lambda f: f / f.norm(dim=1, keepdim=True)  # noqa: E731
    assert torch.allclose(d, ((unit(fx["a"]) - unit(fy["a"])) ** 2).flatten(1).mean(1), atol=1e-6)


def test_feature_loss_one_layer_equals_hand_computed_feature_mse(vgg):
    x, y = _images(1)
    fx, fy = vgg(x, ["relu2_2"])["relu2_2"], vgg(y, ["relu2_2"])["relu2_2"]
    expected = ((fx - fy) ** 2).mean(dim=(1, 2, 3))
    loss = losses.FeatureLoss(vgg, layers=("relu2_2",), reduction="none")
    assert loss(x, y).shape == (2,)
    assert torch.allclose(loss(x, y), expected, rtol=1e-5)
    assert torch.allclose(losses.feature_loss(x, y, vgg, ["relu2_2"]), expected.mean(), rtol=1e-5)


def test_feature_loss_layer_weights_scale_linearly_as_sequence_or_dict(vgg):
    x, y = _images(2)
    layers = ("relu1_2", "relu3_3")
    single = [losses.FeatureLoss(vgg, layers=(l,))(x, y) for l in layers]
    weighted = losses.FeatureLoss(vgg, layers=layers, layer_weights=(2.0, 0.25))(x, y)
    assert torch.allclose(weighted, 2 * single[0] + 0.25 * single[1], rtol=1e-5)
    by_dict = losses.FeatureLoss(vgg, layers=layers, layer_weights={"relu3_3": 0.25, "relu1_2": 2.0})(x, y)
    assert torch.allclose(by_dict, weighted)


def test_feature_loss_layer_distances_are_unweighted_columns_in_layer_order(vgg):
    x, y = _images(7)
    layers = ("relu3_3", "relu1_2")  # not in forward order
    loss = losses.FeatureLoss(vgg, layers=layers, layer_weights=(0.5, 4.0), reduction="none")
    cols = loss.layer_distances(x, y)
    assert cols.shape == (2, 2)
    for k, layer in enumerate(layers):
        assert torch.allclose(cols[:, k], losses.FeatureLoss(vgg, layers=(layer,), reduction="none")(x, y))
    assert torch.allclose(loss(x, y), 0.5 * cols[:, 0] + 4.0 * cols[:, 1], rtol=1e-5)


def test_feature_loss_normalize_channels_matches_feature_distance(vgg):
    x, y = _images(3)
    layers = ["relu1_2", "relu2_2"]
    loss = losses.FeatureLoss(vgg, layers=layers, normalize_channels=True, reduction="none")
    expected = losses.feature_distance(vgg(x, layers), vgg(y, layers), normalize_channels=True)
    assert torch.allclose(loss(x, y), expected)
    assert "unit-normalised" in loss.label


def test_feature_loss_pre_activation_uses_conv_outputs(vgg, alex):
    x, y = _images(4)
    pre = losses.FeatureLoss(vgg, layers=("relu2_2",), pre_activation=True, reduction="none")
    assert pre.layers == ["conv2_2"] and "pre-activation" in pre.label
    conv, relu = vgg(x, ["conv2_2", "relu2_2"]).values()
    assert conv.min() < 0 and relu.min() >= 0
    assert torch.allclose(pre(x, y), ((conv - vgg(y, ["conv2_2"])["conv2_2"]) ** 2).mean((1, 2, 3)), rtol=1e-5)
    assert losses.FeatureLoss(alex, layers=("relu2", "relu5"), pre_activation=True).layers == ["conv2", "conv5"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=("relu9_9",)), "layers must be distinct names of vgg16 layers"),
    (dict(layers=()), "layers must be"),
    (dict(layers=("relu1_2", "relu2_2"), layer_weights=(1.0,)), "one weight per layer"),
    (dict(layers=("relu1_2",), layer_weights={"relu2_2": 1.0}), "one entry per layer"),
    (dict(layers=("relu1_2",), layer_weights=(-1.0,)), "non-negative"),
    (dict(layers=("pool2",), pre_activation=True), "no pre-activation counterpart"),
    (dict(reduction="sum"), "reduction"),
])
def test_feature_loss_bad_options_raise_value_error(vgg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.FeatureLoss(vgg, **kwargs)


def test_feature_loss_squeezenet_fire_layer_has_no_pre_activation():
    with pytest.raises(ValueError, match="'fire3' has no pre-activation counterpart"):
        losses.FeatureLoss("squeezenet1_1", layers=("relu1", "fire3"), pre_activation=True)


def test_feature_loss_gradient_reaches_x_not_backbone(alex):
    x, y = _images(5)
    x.requires_grad_(True)
    loss = losses.FeatureLoss(alex, layers=("relu1", "relu3"))
    loss.train()
    loss(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())
    assert not loss.net.training


def test_feature_loss_builds_backbone_by_name_and_labels_it():
    loss = losses.FeatureLoss("alexnet", layers=("relu1", "relu2"), layer_weights=(1, 0.5), seed=3)
    assert loss.net.name == "alexnet" and "seed 3" in loss.label
    assert "relu1, relu2" in loss.label and "weights 1, 0.5" in loss.label
    assert loss.label in repr(loss)
    x, y = _images(6)
    assert loss(x, y).shape == ()


# --------------------------------------------------------------------------- LPIPS

@pytest.fixture(scope="module", params=["alex", "vgg", "squeeze"])
def lpips_pair(request):
    """(our trunk, the lpips package's model) for one net, with our random trunk weights copied into theirs."""
    import warnings
    lpips = pytest.importorskip("lpips")
    net = request.param
    ours = models.backbone(losses.LPIPS_NETS[net][0], "random", seed=0, normalize=False)
    with warnings.catch_warnings():  # lpips calls torchvision with the deprecated pretrained=False
        warnings.simplefilter("ignore")
        theirs = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    slices = [m for name, m in theirs.net.named_children() if name.startswith("slice")]
    assert len(slices) == len(losses.LPIPS_NETS[net][1])
    for s in slices:  # slice modules are named by their index in torchvision's `features`
        for index, module in s.named_children():
            module.load_state_dict(ours.features[int(index)].state_dict())
    return net, ours, theirs


@pytest.mark.parametrize("lin", ["v0.1", None])
def test_lpips_equals_the_lpips_package(lpips_pair, lin):
    net, trunk, theirs = lpips_pair
    ours = losses.LPIPS(net, backbone_weights=trunk, lin_weights=lin, reduction="none")
    x, y = _pair(10, (2, 3, 64, 64))
    theirs.lpips = lin is not None  # their forward reads the flag: False sums channels (no linear layers)
    try:
        with torch.no_grad():
            expected = theirs(x, y, normalize=True).flatten()
    finally:
        theirs.lpips = True
    got = ours(x, y)
    assert got.shape == (2,)
    assert (got - expected).abs().max() < 1e-5


def test_lpips_layers_are_where_the_package_slices_end(lpips_pair):
    net, trunk, theirs = lpips_pair
    slices = [m for name, m in theirs.net.named_children() if name.startswith("slice")]
    ends = [max(int(index) for index, _ in s.named_children()) for s in slices]
    assert ends == [trunk.layer_names.index(layer) for layer in losses.LPIPS_NETS[net][1]]


def test_lpips_scaling_is_the_package_s_and_imagenet_normalisation_in_disguise():
    lpips = pytest.importorskip("lpips")
    assert torch.equal(torch.tensor(losses.LPIPS_SHIFT).view(1, 3, 1, 1), lpips.ScalingLayer().shift)
    assert torch.equal(torch.tensor(losses.LPIPS_SCALE).view(1, 3, 1, 1), lpips.ScalingLayer().scale)
    # ((2x - 1) - shift) / scale = (x - mean) / std with shift = 2 mean - 1, scale = 2 std
    mean, std = torch.tensor(models.IMAGENET_MEAN), torch.tensor(models.IMAGENET_STD)
    assert torch.allclose(torch.tensor(losses.LPIPS_SHIFT), 2 * mean - 1, atol=1e-6)
    assert torch.allclose(torch.tensor(losses.LPIPS_SCALE), 2 * std, atol=1e-6)


def test_lpips_is_symmetric_zero_on_identical_and_differentiable(alex):
    model = losses.LPIPS("alex", backbone_weights=alex, lin_weights="v0.1", reduction="none")
    x, y = _pair(11, (2, 3, 32, 32))
    assert torch.allclose(model(x, y), model(y, x))
    assert torch.allclose(model(x, x), torch.zeros(2))
    assert (model(x, y) > 0).all()
    x.requires_grad_(True)
    losses.lpips(x, y, model).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert model.label == f"LPIPS-alex (backbone {alex.weights_label}; lin lpips v0.1)"


@pytest.fixture(scope="module")
def squeeze():
    return models.backbone("squeezenet1_1", "random", seed=0, normalize=False)


def test_lpips_uniform_weights_sum_channels_and_file_weights_load(tmp_path, squeeze):
    model = losses.LPIPS("squeeze", squeeze, lin_weights=None, reduction="none")
    assert all(float(l.weight.min()) == 1.0 == float(l.weight.max()) for l in model.lins)
    path = tmp_path / "mine.pth"
    torch.save({f"lin{l}.model.1.weight": 2 * torch.ones(1, m.weight.shape[1], 1, 1) for l, m in enumerate(model.lins)},
               path)
    doubled = losses.LPIPS("squeeze", squeeze, lin_weights=path, reduction="none")
    x, y = _pair(12, (2, 3, 32, 32))
    assert torch.allclose(doubled(x, y), 2 * model(x, y))
    assert "file mine.pth" in doubled.label


def test_lpips_bad_options_raise(alex, tmp_path):
    with pytest.raises(ValueError, match="net must be one of"):
        losses.LPIPS("resnet")
    with pytest.raises(ValueError, match="must be a vgg16 Backbone"):
        losses.LPIPS("vgg", backbone_weights=alex)  # an alexnet for the vgg trunk
    with pytest.raises(FileNotFoundError, match="does not exist"):
        losses.LPIPS("alex", backbone_weights=alex, lin_weights=tmp_path / "missing.pth")
    torch.save({"lin0.model.1.weight": torch.ones(1, 3, 1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="must hold lin0"):
        losses.LPIPS("alex", backbone_weights=alex, lin_weights=tmp_path / "bad.pth")
    model = losses.LPIPS("alex", backbone_weights=alex)
    x, y = _pair(13, (2, 1, 32, 32))
    with pytest.raises(ValueError, match="x must have 3 channels"):
        model(x, y)


def test_lpips_without_the_package_names_pip_install(monkeypatch, alex):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lpips" else real(name, *a))
    with pytest.raises(FileNotFoundError, match="pip install lpips"):
        losses.LPIPS("alex", backbone_weights=alex)
    assert losses.LPIPS("alex", backbone_weights=alex, lin_weights=None)  # uniform weights need no package


# --------------------------------------------------------------------------- defects found by probing (issue 11)


def test_psnr_of_identical_images_has_zero_not_nan_gradients():
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    value = losses.psnr(x, x.detach())
    value.backward()
    assert value.item() == float("inf") and torch.equal(x.grad, torch.zeros_like(x))


def test_ssim_accepts_mixed_float32_and_float64():
    x = torch.rand(1, 3, 16, 16)
    assert float(losses.ssim(x, x.double())) == pytest.approx(1.0)


def test_feature_loss_and_lpips_accept_float64_images():
    x, y = torch.rand(2, 3, 32, 32, dtype=torch.float64), torch.rand(2, 3, 32, 32, dtype=torch.float64)
    f = losses.FeatureLoss("vgg16", ["relu1_2", "relu2_2"])
    assert torch.allclose(f(x, y), f(x.float(), y.float()))
    lp = losses.LPIPS("vgg", "random", lin_weights=None)
    assert torch.allclose(lp(x, y), lp(x.float(), y.float()))


@pytest.mark.parametrize("net, size, minimum", [("alex", 30, 31), ("vgg", 15, 16)])
def test_lpips_says_the_minimum_image_size(net, size, minimum):
    x = torch.rand(1, 3, size, size)
    with pytest.raises(ValueError, match=f"x must be at least {minimum}x{minimum} pixels"):
        losses.LPIPS(net, "random", lin_weights=None)(x, x)
    ok = torch.rand(1, 3, minimum, minimum)
    assert torch.isfinite(losses.LPIPS(net, "random", lin_weights=None)(ok, ok))


def test_feature_loss_on_tiny_images_says_the_minimum_size():
    x = torch.rand(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"x must be at least \d+x\d+ pixels for vgg16 up to layer relu4_3"):
        losses.FeatureLoss("vgg16", ["relu1_2", "relu4_3"])(x, x)

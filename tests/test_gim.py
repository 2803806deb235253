from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from perceptlab import data
from perceptlab import gim
from perceptlab import imaging
from perceptlab import losses
from perceptlab import metrics
from perceptlab.course import spread
from perceptlab.experiments import gim as gim_experiment
from perceptlab.losses import registry
from perceptlab.data.images import load_image


@pytest.fixture(scope="module")
def crops():
    image = data.load_image("astronaut", size=96)
    return gim.shifted_crops(image, size=48, max_shift=6, n=9, seed=0)


def test_shifted_crops_are_windows_of_the_image_with_bounded_shift():
    image = data.load_image("camera", size=64)
    crops = gim.shifted_crops(image, size=32, max_shift=4, n=5, seed=3)
    assert crops.shape == (5, 1, 32, 32)
    for crop in crops:
        hits = [(dy, dx) for dy in range(-4, 5) for dx in range(-4, 5)
                if torch.equal(image[0, :, 16 + dy: 48 + dy, 16 + dx: 48 + dx], crop)]
        assert hits
    assert torch.equal(crops, gim.shifted_crops(image, 32, 4, 5, seed=3))


def test_shifted_crops_rejects_shift_that_does_not_fit():
    with pytest.raises(ValueError, match="max_shift"):
        gim.shifted_crops(torch.rand(1, 1, 40, 40), size=32, max_shift=8, n=2)


def test_gim_with_l2_is_the_pixel_mean(crops):
    solution = gim.generalized_mean(crops, "l2", steps=300, lr=0.05)
    assert solution.shape == (1, 3, 48, 48)
    assert torch.allclose(solution, crops.mean(0, keepdim=True), atol=1e-4)


def test_gim_with_l1_is_the_pixel_median(crops):
    # odd number of targets: the median is unique
    solution = gim.generalized_mean(crops, "l1", steps=400, lr=0.05)
    median = crops.median(0, keepdim=True).values
    assert (solution - median).abs().mean() < 1e-3
    assert (solution - median).abs().max() < 2e-2


def test_gim_accepts_a_custom_loss_and_records_history(crops):
    history = []
    solution = gim.generalized_mean(crops, lambda x, y: ((x - y) ** 2).mean(), steps=50, history=history)
    assert len(history) == 50 and history[-1] < history[0]
    assert solution.min() >= 0 and solution.max() <= 1


def test_gim_validates_inputs(crops):
    with pytest.raises(ValueError, match="targets"):
        gim.generalized_mean(crops * 3, "l2", steps=5)
    with pytest.raises(ValueError, match="init must have shape"):
        gim.generalized_mean(crops, "l2", steps=5, init=torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="steps"):
        gim.generalized_mean(crops, "l2", steps=0)


def test_gradient_magnitude_closed_form_on_a_ramp():
    # f(x, y) = a * x: forward differences are a everywhere, so the magnitude is a.
    a = 0.01
    ramp = (torch.arange(32, dtype=torch.float32) * a).expand(1, 1, 32, 32).clone()
    assert torch.allclose(imaging.gradient_magnitude(ramp), torch.tensor([a]), atol=1e-6)


def test_blur_lowers_both_sharpness_measures():
    image = data.load_image("astronaut", size=64)
    kernel = torch.ones(3, 1, 5, 5) / 25
    blurred = F.conv2d(F.pad(image, (2, 2, 2, 2), mode="reflect"), kernel, groups=3)
    assert metrics.relative_sharpness(blurred, image) < 0.6
    assert metrics.relative_sharpness(blurred, image, metrics.high_frequency_fraction) < 0.4
    assert metrics.relative_sharpness(image, image) == pytest.approx(1.0)


def test_high_frequency_fraction_of_pure_tones():
    x = torch.arange(64, dtype=torch.float32)
    low = (0.5 + 0.4 * torch.cos(2 * torch.pi * 0.0625 * x)).expand(1, 1, 64, 64)
    high = (0.5 + 0.4 * torch.cos(2 * torch.pi * 0.375 * x)).expand(1, 1, 64, 64)
    assert metrics.high_frequency_fraction(low).item() == pytest.approx(0.0, abs=1e-6)
    assert metrics.high_frequency_fraction(high).item() == pytest.approx(1.0, abs=1e-6)


def test_run_gim_l2_is_blurrier_than_l1_and_targets():
    # seeds 0-4 x 1, 2 threads: sharpness L2 0.448 +- 0.005, L1 0.635 +- 0.011 (perceptlab.course.spread.OUTCOMES["gim"])
    result = gim_experiment.run_gim(spread.gim_test_config())
    assert spread.failed_checks("gim", {f"sharpness_{k}": v for k, v in result["sharpness"].items()}) == []
    assert set(result["metrics"]) == {"sharpness_l2", "sharpness_l1", "ssim_mean", "ssim_l2", "ssim_l1"}
    assert abs(result["ssim"]["l2"] - result["ssim"]["mean"]) < 0.01  # the L2 GIM is the pixel mean
    assert result["ssim"]["mean"] < 1


def test_run_gim_can_start_from_the_pixel_mean_and_checks_init():
    config = replace(spread.gim_test_config(), losses=("l2",), steps=1, init="mean")
    result = gim_experiment.run_gim(config)
    assert torch.allclose(result["solutions"]["l2"], result["mean"], atol=0.05)  # one step from the mean stays there
    with pytest.raises(ValueError, match="init"):
        gim_experiment.run_gim(replace(config, init="noise"))


def test_full_preset_differs_only_in_sizes():
    quick, full = gim_experiment.GIMConfig.for_preset("quick"), gim_experiment.GIMConfig.for_preset("full")
    assert full.image == quick.image and full.losses == quick.losses
    assert full.n > quick.n and full.crop > quick.crop


def test_gim_resolves_loss_names_through_the_registry_with_mean_reduction():
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.equal(registry.resolve("l2")(x, y), losses.mse(x, y))
    vgg = registry.resolve("vgg-random-norm")
    assert isinstance(vgg, losses.FeatureLoss) and vgg.reduction == "mean" and vgg.normalize_channels
    targets = torch.rand(3, 1, 8, 8)
    by_name = gim.generalized_mean(targets, "l2", steps=5)
    assert torch.equal(by_name, gim.generalized_mean(targets, losses.mse, steps=5))


def test_gim_with_a_feature_loss_lowers_the_average_feature_distance():
    targets = gim.shifted_crops(load_image("astronaut", size=64), 32, 4, 5, seed=0)
    loss = losses.FeatureLoss("vgg16", ["relu1_2", "relu2_2"], normalize_channels=True)
    history = []
    y = gim.generalized_mean(targets, loss, steps=30, lr=0.05, history=history)
    grey = torch.full_like(targets[:1], 0.5)
    assert history[-1] < history[0]
    assert float(loss(y.expand_as(targets), targets)) == pytest.approx(history[-1], rel=0.1)
    assert float(loss(y.expand_as(targets), targets)) < float(loss(grey.expand_as(targets), targets))


def test_perceptual_gim_presets_differ_only_in_sizes_and_losses():
    quick, full = gim_experiment.PerceptualGIMConfig.for_preset("quick"), gim_experiment.PerceptualGIMConfig.for_preset("full")
    assert all(name in registry.REGISTRY or name in ("l2", "l1", "ssim")
               for name in quick.losses + full.losses)
    assert "lpips-vgg" in full.losses and "lpips-vgg" not in quick.losses
    assert quick.image == full.image and full.crop > quick.crop


# --------------------------------------------------------------------------- defects found by probing (issue 11)


def test_generalized_mean_names_its_own_arguments():
    small = torch.rand(3, 3, 8, 8)
    with pytest.raises(ValueError, match="targets do not suit the loss.*at least 11x11"):
        gim.generalized_mean(small, "ssim", steps=2)
    with pytest.raises(ValueError, match="loss must be a callable loss"):
        gim.generalized_mean(small, "l3", steps=2)
    for lr in (-0.1, float("nan"), 0):
        with pytest.raises(ValueError, match="lr must be a positive finite number"):
            gim.generalized_mean(small, "l2", steps=2, lr=lr)


def test_generalized_mean_fails_on_half_precision_and_on_a_nan_loss():
    with pytest.raises(ValueError, match="targets must be float32 or float64"):
        gim.generalized_mean(torch.rand(3, 1, 8, 8).half(), "l2", steps=2)
    nan_loss = lambda y, t: (y - t).pow(2).mean() * float("nan")  # noqa: E731
    with pytest.raises(ValueError, match="the loss became nan at step 1"):
        gim.generalized_mean(torch.rand(3, 1, 8, 8), nan_loss, steps=2)

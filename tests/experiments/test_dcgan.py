"""Tests of perceptlab.gan: DCGAN networks, GAN losses on logits, the resumable training loop, presets."""
from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same, write_celeba
import torch.nn.functional as F
from PIL import Image

from perceptlab import experiments
from perceptlab import imaging
from perceptlab import losses
from perceptlab import metrics
from perceptlab import models
from perceptlab.course import spread
from perceptlab.experiments import dcgan
from perceptlab.models import digits
from perceptlab.data.datasets import DataUnavailableError
from perceptlab.train import CHECKPOINT

# 128 digits, 16 per batch: 8 steps per epoch, 3 epochs
TINY = dict(n_train=128, batch=16, steps=24, nz=8, g_width=4, d_width=4, n_grid=9, n_samples=6, n_reference=64,
            ckpt_every=4)


@pytest.fixture(scope="module")
def tiny_run() -> dict:
    return dcgan.run_gan(dcgan.GANConfig(**TINY), "cpu")


# --------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size, channels", [(32, 1), (64, 3), (32, 3), (8, 1)])
def test_generator_and_discriminator_shapes(size, channels):
    G = models.Generator(nz=10, channels=channels, image_size=size, width=4)
    D = models.Discriminator(channels=channels, image_size=size, width=4)
    with torch.no_grad():
        x = G(torch.randn(5, 10))
    assert x.shape == (5, channels, size, size)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    logits = D(x)
    assert logits.shape == (5,) and torch.isfinite(logits).all()


def test_dcgan_64_has_the_reference_architecture():
    # the DCGAN reference code (and the PyTorch DCGAN example) for 64x64 RGB, nz 100, ngf = ndf = 64
    G, D = models.Generator(100, 3, 64, 64), models.Discriminator(3, 64, 64)
    assert sum(p.numel() for p in G.parameters()) == 3_576_704
    assert sum(p.numel() for p in D.parameters()) == 2_765_568
    g_convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in g_convs] == [512, 256, 128, 64, 3]
    d_convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in d_convs] == [64, 128, 256, 512, 1]
    # batch norm everywhere except G's output and D's input layer
    assert isinstance(list(G.net)[-1], torch.nn.Tanh) and isinstance(list(D.net)[1], torch.nn.LeakyReLU)


def test_dcgan_initialisation():
    torch.manual_seed(0)
    G = models.Generator(100, 3, 64, 64)
    w = torch.cat([m.weight.detach().flatten() for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert float(w.mean()) == pytest.approx(0, abs=1e-3) and float(w.std()) == pytest.approx(0.02, rel=0.02)
    gamma = torch.cat([m.weight.detach() for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    assert float(gamma.mean()) == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("size", [0, 4, 48, 100])
def test_image_size_must_be_a_power_of_two_from_8(size):
    with pytest.raises(ValueError, match="image_size"):
        models.Generator(image_size=size)
    with pytest.raises(ValueError, match="image_size"):
        models.Discriminator(image_size=size)


def test_networks_check_their_inputs():
    G, D = models.Generator(nz=8, channels=1, image_size=32, width=4), models.Discriminator(1, 32, 4)
    with pytest.raises(ValueError, match="z must have shape"):
        G(torch.randn(2, 9))
    with pytest.raises(ValueError, match="x must have shape"):
        D(torch.rand(2, 3, 32, 32))


def test_generate_is_seeded_batched_and_leaves_the_global_rng_alone():
    G = models.Generator(nz=8, channels=1, image_size=32, width=4).eval()
    state = torch.get_rng_state()
    a = models.generate(G, 10, seed=3, batch_size=4)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (10, 1, 32, 32)
    assert torch.allclose(a, models.generate(G, 10, seed=3, batch_size=10), atol=1e-6)
    assert not torch.allclose(a, models.generate(G, 10, seed=4))


# --------------------------------------------------------------------------- losses


def test_losses_at_zero_logits_are_the_closed_forms():
    zero = torch.zeros(7)
    assert losses.discriminator_loss(zero, zero).item() == pytest.approx(math.log(4))  # -V(D = 1/2) = log 4
    assert losses.value_estimate(zero, zero).item() == pytest.approx(-math.log(4))
    assert losses.generator_loss(zero, "minimax").item() == pytest.approx(-math.log(2))  # log(1 - 1/2)
    assert losses.generator_loss(zero, "non_saturating").item() == pytest.approx(math.log(2))  # -log(1/2)


def test_losses_equal_binary_cross_entropy_and_the_log_formulas():
    torch.manual_seed(0)
    real, fake = 3 * torch.randn(50), 3 * torch.randn(40)
    bce = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
           + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    assert torch.allclose(losses.discriminator_loss(real, fake), bce, atol=1e-6)
    r, f = real.double(), fake.double()
    v = torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean()
    assert losses.value_estimate(r, f).item() == pytest.approx(v.item(), rel=1e-10)
    minimax, non_saturating = torch.log(1 - torch.sigmoid(f)).mean(), -torch.log(torch.sigmoid(f)).mean()
    assert losses.generator_loss(f, "minimax").item() == pytest.approx(minimax.item(), rel=1e-10)
    assert losses.generator_loss(f, "non_saturating").item() == pytest.approx(non_saturating.item(), rel=1e-10)


def test_losses_are_finite_for_confident_discriminators():
    extreme = torch.tensor([-200.0, -50.0, 50.0, 200.0], requires_grad=True)
    for loss in (losses.discriminator_loss(extreme, extreme), losses.generator_loss(extreme, "minimax"),
                 losses.generator_loss(extreme, "non_saturating")):
        (g,) = torch.autograd.grad(loss, extreme)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
    # a perfect discriminator has (almost) zero loss
    assert losses.discriminator_loss(torch.full((3,), 50.0), torch.full((3,), -50.0)).item() < 1e-20


def _grad(kind: str, logit: float) -> float:
    l = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(losses.generator_loss(l, kind), l)
    return g.item()


@pytest.mark.parametrize("logit", [-15.0, -8.0, -3.0, 0.0, 2.0])
def test_generator_loss_gradients_match_closed_forms_and_finite_differences(logit):
    s = 1 / (1 + math.exp(-logit))
    assert _grad("minimax", logit) == pytest.approx(-s, rel=1e-9)  # d/dl log(1 - sigmoid(l))
    assert _grad("non_saturating", logit) == pytest.approx(-(1 - s), rel=1e-9)  # d/dl -log sigmoid(l)
    h = 1e-5
    for kind in losses.GENERATOR_LOSSES:
        f = lambda t: losses.generator_loss(torch.tensor([t], dtype=torch.float64), kind).item()  # noqa: E731
        assert _grad(kind, logit) == pytest.approx((f(logit + h) - f(logit - h)) / (2 * h), rel=1e-5, abs=1e-12)


def test_minimax_saturates_where_non_saturating_does_not():
    # D(G(z)) -> 0: D rejects the fakes confidently, as early in training (Goodfellow et al. 2014, Sec. 3)
    logits = [-2.0, -5.0, -10.0, -20.0]
    minimax = [abs(_grad("minimax", l)) for l in logits]
    non_sat = [abs(_grad("non_saturating", l)) for l in logits]
    assert all(a > b for a, b in zip(minimax, minimax[1:]))  # vanishing ...
    assert minimax[-1] < 1e-8  # ... to nothing at D(G(z)) = 2e-9
    assert all(g > 0.88 for g in non_sat) and non_sat[-1] == pytest.approx(1.0)  # stays ~1
    # both push the logit of fakes up (minimise the loss by fooling D)
    assert _grad("minimax", -5.0) < 0 and _grad("non_saturating", -5.0) < 0


def test_loss_module_twins_and_bad_arguments():
    real, fake = torch.randn(6), torch.randn(6)
    assert torch.equal(losses.DiscriminatorLoss()(real, fake), losses.discriminator_loss(real, fake))
    for kind in losses.GENERATOR_LOSSES:
        assert torch.equal(losses.GeneratorLoss(kind)(fake), losses.generator_loss(fake, kind))
    assert "minimax" in repr(losses.GeneratorLoss("minimax"))
    with pytest.raises(ValueError, match="kind"):
        losses.generator_loss(fake, "wasserstein")
    with pytest.raises(ValueError, match="kind"):
        losses.GeneratorLoss("hinge")
    with pytest.raises(ValueError, match="real_logits"):
        losses.discriminator_loss(torch.ones(3, dtype=torch.long), fake)
    with pytest.raises(ValueError, match="fake_logits"):
        losses.generator_loss(torch.empty(0))


# --------------------------------------------------------------------------- helpers


def test_pixel_w1_closed_forms():
    a, b = torch.full((4, 1, 8, 8), 0.2), torch.full((3, 1, 8, 8), 0.7)
    assert metrics.pixel_w1(a, a) == pytest.approx(0.0)
    assert metrics.pixel_w1(a, b) == pytest.approx(0.5)
    half = torch.zeros(2, 1, 8, 8)
    half[:, :, :4] = 1  # half the pixels white
    assert metrics.pixel_w1(half, torch.zeros_like(half)) == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="y must have values"):
        metrics.pixel_w1(a, b + 1)


def test_save_png_writes_the_grid(tmp_path):
    images = torch.rand(6, 3, 8, 8)
    path = imaging.save_png(images, tmp_path / "sub" / "grid.png", nrow=3)
    with Image.open(path) as im:
        assert im.size == (3 * 10 + 2, 2 * 10 + 2) and im.mode == "RGB"
        first = np.asarray(im)[2:10, 2:10]
    assert np.abs(first.astype(float) / 255 - images[0].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-6
    with Image.open(imaging.save_png(imaging.to_uint8(images[:, :1]), tmp_path / "g.png")) as im:
        assert im.mode == "L"


def test_steps_per_epoch():
    assert dcgan.steps_per_epoch(1797, 64) == 29 and dcgan.steps_per_epoch(128, 16) == 8


# --------------------------------------------------------------------------- configs and data


def test_presets_differ_only_in_sizes_and_data():
    quick, full = dcgan.GANConfig.for_preset("quick"), dcgan.GANConfig.for_preset("full")
    assert (quick.data, quick.image_size) == ("digits", 32)
    assert (full.data, full.image_size, full.nz, full.g_width, full.d_width) == ("celeba", 64, 100, 64, 64)
    assert full.steps * full.batch > 10 * quick.steps * quick.batch  # images seen in training
    same = {f.name for f in fields(dcgan.GANConfig)} - set(dcgan.GANConfig.FULL)
    assert {"lr", "beta1", "loss", "seed"} <= same  # DCGAN's optimiser and loss in both presets
    assert (quick.lr, quick.beta1) == (2e-4, 0.5)


def test_quick_data_are_digits_at_32px():
    images = dcgan.load_gan_data(dcgan.GANConfig())
    assert images.shape == (1797, 1, 32, 32) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert dcgan.load_gan_data(dcgan.GANConfig(n_train=10, image_size=16)).shape == (10, 1, 16, 16)


def test_bad_config_raises():
    with pytest.raises(ValueError, match="config.data"):
        dcgan.load_gan_data(dcgan.GANConfig(data="lsun"))
    with pytest.raises(ValueError, match="image_size"):
        dcgan.load_gan_data(dcgan.GANConfig(image_size=28))
    with pytest.raises(ValueError, match="config.loss"):
        dcgan.run_gan(dcgan.GANConfig(loss="wgan"), "cpu")
    with pytest.raises(ValueError, match="eval_every"):
        dcgan.run_gan(dcgan.GANConfig(**TINY), "cpu", eval_every=-1)


# --------------------------------------------------------------------------- training


def test_run_returns_models_history_grids_and_samples(tiny_run):
    r = tiny_run
    assert isinstance(r["generator"], models.Generator) and isinstance(r["discriminator"], models.Discriminator)
    assert len(r["history"].records) == TINY["steps"]
    rec = r["history"].records[0]
    assert {"loss_d", "loss_g", "d_real", "d_fake", "acc_d"} <= set(rec)
    assert all(math.isfinite(v) for rec in r["history"].records for v in rec.values())
    assert r["samples"].shape == (6, 1, 32, 32) and r["real"].shape == (64, 1, 32, 32)
    assert r["fixed_noise"].shape == (9, 8)
    assert r["metrics"]["steps_per_epoch"] == 8
    assert set(r["metrics"]) >= {"pixel_w1_init", "pixel_w1_final", "d_real", "d_fake", "acc_d"}


def test_one_fixed_noise_grid_per_epoch(tiny_run, tmp_path):
    r = tiny_run
    assert r["grid_steps"] == [8, 16, 24]
    assert r["grids"].shape == (3, 9, 1, 32, 32)
    epochs = [(rec["step"], rec["epoch"]) for rec in r["history"].records if "epoch" in rec]
    assert epochs == [(8, 1.0), (16, 2.0), (24, 3.0)]
    # the last grid is G(fixed noise) with the final weights, stored as uint8
    G = r["generator"].eval()
    with torch.no_grad():
        assert (G(r["fixed_noise"]) - r["grids"][-1]).abs().max() <= 0.5 / 255 + 1e-5
    # a run ending mid-epoch adds a grid at its last step; with out_dir the grids are PNGs too
    part = dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 12}), "cpu", out_dir=tmp_path)
    assert part["grid_steps"] == [8, 12]
    pngs = sorted(p.name for p in (tmp_path / "grids").glob("*.png"))
    assert pngs == ["step_000008.png", "step_000012.png"]
    with Image.open(tmp_path / "grids" / pngs[0]) as im:
        assert im.size == (3 * 34 + 2, 3 * 34 + 2)  # 9 images of 32 px, 3 per row, 2 px padding


def _checkpoint(folder: Path) -> dict:
    return torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=False)




def test_resume_after_interruption_is_exact(tiny_run, tmp_path):
    config = dcgan.GANConfig(**TINY)
    whole = dcgan.run_gan(config, "cpu", out_dir=tmp_path / "whole")
    stopped = dcgan.run_gan(config, "cpu", out_dir=tmp_path / "resumed", stop_after=10)  # dies after step 10
    assert len(stopped["history"].records) == 10 and _checkpoint(tmp_path / "resumed")["step"] == 8
    resumed = dcgan.run_gan(config, "cpu", out_dir=tmp_path / "resumed")
    a, b = _checkpoint(tmp_path / "whole"), _checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == TINY["steps"]
    for key in ("G", "D", "opt_g", "opt_d", "grids"):
        assert_same(a["state"][key], b["state"][key])
    assert a["history"] == b["history"]
    assert whole["history"].records == resumed["history"].records
    assert torch.equal(whole["grids"], resumed["grids"]) and whole["grid_steps"] == resumed["grid_steps"]
    assert torch.equal(whole["samples"], resumed["samples"])
    assert whole["metrics"] == resumed["metrics"]
    # checkpoints do not change the run: it equals the run without out_dir
    assert whole["history"].records == tiny_run["history"].records
    for x, y in zip(whole["generator"].state_dict().values(), tiny_run["generator"].state_dict().values()):
        assert torch.equal(x, y)


def test_eval_fn_hook_gets_the_generator_in_eval_mode(tmp_path):
    calls = []

    def eval_fn(G, step):
        calls.append((step, G.training, torch.is_grad_enabled()))
        torch.rand(5)  # a hook may draw from the global RNG
        images = models.generate(G, 8, seed=0)
        return {"mean_brightness": images.mean().item()}

    r = dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 10}), "cpu", eval_fn=eval_fn, eval_every=4)
    assert calls == [(4, False, False), (8, False, False), (10, False, False)]
    steps, values = r["history"].series("mean_brightness")
    assert steps == [4, 8, 10] and all(0 <= v <= 1 for v in values)
    # the hook (which may use the global RNG) does not change training
    plain = dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 10}), "cpu")
    strip = lambda recs: [{k: v for k, v in rec.items() if k != "mean_brightness"} for rec in recs]  # noqa: E731
    assert strip(r["history"].records) == plain["history"].records
    # by default once per epoch (8 steps here) and at the last step; eval_every=0: only at the last step
    calls.clear()
    dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 20}), "cpu", eval_fn=eval_fn)
    assert [c[0] for c in calls] == [8, 16, 20]
    calls.clear()
    dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 5}), "cpu", eval_fn=eval_fn, eval_every=0)
    assert [c[0] for c in calls] == [5]


def test_minimax_loss_trains_too():
    r = dcgan.run_gan(dcgan.GANConfig(**{**TINY, "steps": 4, "loss": "minimax"}), "cpu")
    assert all(rec["loss_g"] <= 0 for rec in r["history"].records)  # log(1 - D(G(z))) <= 0


def test_quick_preset_learns_the_pixel_statistics_of_digits():
    """A shortened quick run (800 of its 2400 steps, 15 epochs): D tells the digits from an untrained G's
    mid-grey output at once; G's samples then move towards the digits' pixel histogram (black
    background, white strokes), and D starts to make mistakes.  Bounds from the spread over seeds
    (perceptlab.course.spread.OUTCOMES["dcgan"]; seeds 0-9: pixel W1 0.34 at the start, 0.020-0.061 at the
    end; D's accuracy >= 0.998 early, 0.86-0.92 in the last epoch)."""
    r = dcgan.run_gan(spread.dcgan_test_config(), "cpu")
    assert spread.failed_checks("dcgan", spread.dcgan_metrics(r)) == []


# --------------------------------------------------------------------------- full preset code path


def test_full_preset_code_path_runs_on_a_celeba_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    write_celeba(tmp_path / "data")
    config = dcgan.GANConfig.for_preset("full", steps=3, batch=2, nz=8, g_width=4, d_width=4, n_grid=4, n_samples=3,
                                      n_reference=4, ckpt_every=2)
    assert (config.data, config.image_size) == ("celeba", 64)
    images = dcgan.load_gan_data(config)
    assert images.shape == (4, 3, 64, 64) and images.dtype == torch.uint8  # the 4 training-split images
    r = dcgan.run_gan(config, "cpu", out_dir=tmp_path / "run")
    assert r["samples"].shape == (3, 3, 64, 64)
    assert r["grids"].shape == (2, 4, 3, 64, 64) and r["grid_steps"] == [2, 3]  # 2 steps per epoch
    assert (tmp_path / "run" / CHECKPOINT).exists() and (tmp_path / "run" / "grids" / "step_000002.png").exists()


def test_cifar10_at_32_and_64_px_on_a_stand_in(tmp_path, monkeypatch):
    from conftest import write_cifar_batch  # the real python-2 pickle format of the CIFAR-10 batches

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8),
                           [0, 1], f"training batch {i} of 5".encode())
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    config = dcgan.GANConfig.for_preset("full", data="cifar10", image_size=32, steps=2, batch=4, nz=8, g_width=4,
                                      d_width=4, n_grid=4, n_samples=2, n_reference=4)
    images = dcgan.load_gan_data(config)
    assert images.shape == (10, 3, 32, 32) and images.dtype == torch.uint8
    assert dcgan.run_gan(config, "cpu")["samples"].shape == (2, 3, 32, 32)
    assert dcgan.load_gan_data(dcgan.GANConfig(data="cifar10", image_size=64, n_train=3)).shape == (3, 3, 64, 64)


def test_full_preset_without_data_fails_fast_with_instructions(empty_data_dir):
    with pytest.raises(DataUnavailableError, match="by hand"):
        dcgan.run_gan(dcgan.GANConfig.for_preset("full"), "cpu")


# --------------------------------------------------------------------------- FID/KID during training


class _TinyFeatures(torch.nn.Module):
    """A fixed random conv feature map with a label, standing in for an extractor."""

    label = "tiny random conv features (test)"

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 8, 4, 4)
        self.requires_grad_(False)

    def forward(self, x):
        return F.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2).flatten(1)


def test_held_out_real_digits_are_the_ones_not_trained_on():
    from perceptlab.data.images import load_digits

    config = dcgan.GANConfig(n_train=1297)
    held = dcgan.held_out_real(config, 500)
    assert torch.equal(held, load_digits(32)[0][1297:])
    assert dcgan.held_out_real(config, 10).shape == (10, 1, 32, 32)
    with pytest.raises(ValueError, match="n_train"):
        dcgan.held_out_real(dcgan.GANConfig(), 10)


def test_fid_eval_fn_scores_generators_deterministically():
    from perceptlab.data.images import load_digits

    real = load_digits(32)[0][:200]
    evaluator = dcgan.fid_eval_fn(_TinyFeatures(), real, n=100, seed=3)
    assert evaluator.feature_space == _TinyFeatures.label and evaluator.kid_subset_size == 50
    G = models.Generator(nz=8, channels=1, image_size=32, width=4).eval()
    a, b = evaluator(G, 0), evaluator(G)
    assert a == b and set(a) == {"fid", "kid", "kid_std"}
    assert a["fid"] > 0 and a["kid_std"] > 0 and evaluator.seconds > 0
    with pytest.raises(ValueError):
        dcgan.fid_eval_fn(_TinyFeatures(), real[:1], n=10)


def test_run_gan_records_fid_and_kid_at_every_epoch_end():
    from perceptlab.data.images import load_digits

    evaluator = dcgan.fid_eval_fn(_TinyFeatures(), load_digits(32)[0][128:228], n=50)
    result = dcgan.run_gan(dcgan.GANConfig(**TINY), "cpu", eval_fn=evaluator)
    steps, fids = result["history"].series("fid")
    assert steps == [8, 16, 24] and all(math.isfinite(v) for v in fids)
    assert len(result["history"].series("kid_std")[1]) == 3


def test_gan_runner_reports_fid_against_held_out_digits(tmp_path, monkeypatch):

    monkeypatch.setattr(digits, "extractor_for_preset", lambda preset=None, **kw: _TinyFeatures())
    result = experiments.run("gan", "quick", "cpu", out=tmp_path, **TINY)
    m = result["metrics"]
    assert m["fid_feature_space"] == _TinyFeatures.label and m["fid_n_real"] == 500 and m["fid_n_fake"] == 500
    assert m["fid_reference"].startswith("held-out") and math.isfinite(m["fid"]) and m["kid_std"] >= 0
    assert (tmp_path / "metrics.json").exists()


def test_gan_runner_fails_before_training_without_inception_weights(monkeypatch):
    from perceptlab.models.weights import WeightsUnavailableError

    def missing(preset=None, **kw):
        raise WeightsUnavailableError("put the file at /somewhere/inception.pth")

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the weights")

    monkeypatch.setattr(digits, "extractor_for_preset", missing)
    monkeypatch.setattr(experiments, "run_gan", no_training)
    with pytest.raises(WeightsUnavailableError, match="FID/KID.*\n.*somewhere"):
        experiments._gan(dcgan.GANConfig(**{**TINY, "data": "celeba"}), "cpu", None)

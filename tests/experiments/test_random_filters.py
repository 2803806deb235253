"""Chapter 5's experiments at toy sizes, their registration, and the full preset's code path on stand-ins."""
import json

import pytest
import torch

from perceptlab import experiments
from perceptlab.experiments import dcgan
from perceptlab.experiments import random_filters as rf


def test_chapter_5_experiments_are_registered_with_both_presets():
    assert {"random-2afc", "scnn-limit", "patch-gim", "patch-mmd-costs"} <= set(experiments.EXPERIMENTS)
    quick, full = (experiments.make_config("random-2afc", p) for p in ("quick", "full"))
    assert not quick.bapps and full.bapps and full.vote_k == 20 and quick.vote_k < full.vote_k
    assert "scnn-random" in full.metrics and "vgg-imagenet-norm" in full.metrics
    assert all(not name.endswith("imagenet") and "lpips" not in name for name in quick.metrics)  # offline
    limit = experiments.make_config("scnn-limit", "full")
    assert (limit.size, limit.window, limit.stride, limit.depth) == (64, 32, 16, 6)  # the paper's setting
    assert experiments.make_config("patch-mmd-costs", "full").sweep_set == "bapps"


def test_random_agreement_scores_metrics_and_the_vote(tmp_path):
    result = experiments.run("random-2afc", "quick", "cpu", tmp_path, n_per_kind=2, size=32, vote_k=2, n_boot=20,
                             parts=("strength", "equal_mse"),
                             metrics=("l2", "vgg-random-zm-norm", "patch-mmd-rff-norm"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["2afc_equal_mse_l2"] == 0.5  # equal MSE: L2 ties on every triplet
    assert len(metrics["2afc_strength_voters"]) == 2
    # voter 0 is the registry's vgg-random-zm-norm: its score is that row's
    assert metrics["2afc_strength_voters"][0] == metrics["2afc_strength_vgg-random-zm-norm"]
    assert 0 <= metrics["2afc_equal_mse_vote"] <= 1
    assert "vote" in result["metrics"]["labels"] and metrics["seconds"]["vote"] > 0


def test_vote_reports_how_often_the_voters_disagree():
    config = rf.RandomAgreementConfig(metrics=("l2",), n_per_kind=1, size=32, vote_k=2, n_boot=10)
    vote = rf.run_random_agreement(config)["votes"]["equal_mse"]
    choices = vote["choices"]
    assert choices.shape == (2, 7) and set(choices.unique().tolist()) <= {0.0, 0.5, 1.0}
    assert vote["split"] == float((choices[0] != choices[1]).double().mean())


def test_voters_are_seeded_random_vggs_with_zero_mean_first_layers():
    a, b = rf.voter(0), rf.voter(1)
    assert "seed 0" in a.label and "seed 1" in b.label and "zero-mean" in a.label
    assert not torch.equal(a.net.features[0].weight, b.net.features[0].weight)


def test_random_agreement_full_preset_runs_on_a_bapps_stand_in(bapps_stand_in):
    result = experiments.run("random-2afc", "full", "cpu", None, metrics=("l2", "patch-mmd-rff-norm"), n_per_kind=1,
                             size=32, vote_k=1, n_boot=20)
    assert "2afc_bapps_l2" in result["metrics"] and "2afc_bapps_vote" in result["metrics"]
    assert len(result["metrics"]["2afc_bapps_voters"]) == 1


@pytest.mark.parametrize("preset", ["quick", "full"])
def test_scnn_limit_measures_relative_errors_against_the_closed_form(preset):
    config = experiments.make_config("scnn-limit", preset, widths=(8, 32), n_seeds=2, depth=1, fit_from=8)
    result = rf.run_scnn_limit(config)
    assert result["distances"].shape == (2, 2, 3) and result["limit"].shape == (3,)
    assert torch.all(result["limit"] > 0)
    assert torch.allclose(result["rel_error"], (result["distances"] - result["limit"]) / result["limit"])
    assert result["x"].shape[-1] == config.size
    assert result["slope"] == pytest.approx(rf.fit_slope(config.widths, result["rms"].tolist()))


def test_patch_gim_on_shifted_crops_and_a_dcgan_neighbourhood(empty_data_dir):
    config = rf.PatchGIMConfig(steps=3, n=3, mmd_targets=2, losses=("l2", "patch-mmd", "patch-mmd-rff"),
                               gan_overrides={"steps": 2})
    result = experiments.run("patch-gim", "quick", "cpu", None, **{k: getattr(config, k) for k in
                                                                 ("steps", "n", "mmd_targets", "losses", "gan_overrides")})
    metrics = result["metrics"]
    assert {"crops_sharpness_l2", "dcgan_sharpness_patch-mmd", "dcgan_patch_contrast_w1_mean"} <= set(metrics)
    assert result["images"]["dcgan_targets"].shape == (3, 3, config.dcgan_size, config.dcgan_size)
    # the generator was trained once and cached: a second call loads it
    cached = dcgan.generator_cache_path(dcgan.GANConfig.for_preset("quick", n_train=1297, steps=2))
    assert (cached / "model.pt").exists()
    again, _ = rf.dcgan_neighbourhood(config)
    assert torch.equal(again, result["images"]["dcgan_targets"])


def test_patch_gim_full_preset_runs_on_a_celeba_stand_in(empty_data_dir):
    """The full preset's code path (a CelebA DCGAN, larger crops) on a stand-in: same code, shrunken config."""
    from conftest import write_celeba

    write_celeba(empty_data_dir)
    tiny_gan = {"steps": 2, "batch": 2, "nz": 8, "g_width": 4, "d_width": 4, "n_grid": 4, "n_samples": 3,
                "n_reference": 4}
    config = experiments.make_config("patch-gim", "full", image_size=48, crop=32, max_shift=4, n=3, steps=2,
                                     mmd_targets=2, dcgan_size=32, losses=("l2", "patch-mmd-rff"),
                                     gan_overrides=tiny_gan)
    assert config.dcgan == "full" and config.gan_n_train is None
    result = rf.run_patch_gim(config)
    assert result["dcgan"]["targets"].shape == (3, 3, 32, 32)
    assert set(result["dcgan"]["solutions"]) == {"l2", "patch-mmd-rff"}


def test_patch_gim_starts_every_loss_from_the_pixel_mean():
    config = rf.PatchGIMConfig(steps=1, lr=1e-9, n=3, losses=("l2", "patch-mmd-rff"), dcgan="")
    crops = rf.run_patch_gim(config)["crops"]
    for solution in crops["solutions"].values():
        assert torch.allclose(solution, crops["mean"], atol=1e-6)


def test_patch_contrast_and_its_w1():
    flat, noisy = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8)
    assert rf.patch_contrast(flat).abs().max() < 1e-6 and rf.patch_contrast(noisy).min() > 0
    assert rf.quantile_w1(rf.patch_contrast(noisy), rf.patch_contrast(noisy)) == 0
    assert rf.quantile_w1(rf.patch_contrast(flat), rf.patch_contrast(noisy)) > 0.1


def test_patch_mmd_costs(tmp_path):
    experiments.run("patch-mmd-costs", "quick", "cpu", tmp_path, features=(8, 32), n_draws=2, n_per_kind=1,
                    sigmas=(0.3,), patch_sizes=(3,), windows=((32, 16),), timing_batch=1)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["vary"] for r in metrics["sweep"]] == ["default", "sigma", "normalize_channels"]
    assert len(metrics["rff_rms_rel_error"]) == 2 and metrics["exact_seconds"] > 0


def test_patch_mmd_costs_full_preset_sweeps_on_a_bapps_stand_in(bapps_stand_in):
    config = experiments.make_config("patch-mmd-costs", "full", features=(8,), n_draws=1, sigmas=(), patch_sizes=(),
                                     windows=(), timing_batch=1)
    sweep = rf.hyperparameter_sweep(config)
    assert sweep["set"] == "BAPPS 2AFC val" and sweep["n"] == 8
    assert [r["vary"] for r in sweep["rows"]] == ["default", "normalize_channels"]

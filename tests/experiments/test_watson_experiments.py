"""Chapter 6's experiments at toy sizes, their registration, and the full preset's code path on stand-ins."""
import json

import pytest
import torch

from perceptlab import experiments, losses
from perceptlab.experiments import watson as wx
from perceptlab.metrics import calibrate_metric

from conftest import assert_same, write_bapps, write_celeba, write_mnist


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_chapter_6_experiments_are_registered_with_both_presets():
    assert {"watson-2afc", "watson-vae", "watson-vae-colour"} <= set(experiments.EXPERIMENTS)
    quick, full = (experiments.make_config("watson-2afc", p) for p in ("quick", "full"))
    assert not quick.bapps and full.bapps
    assert full.calib_lr == 1e-4  # the paper's learning rate
    assert all(not name.endswith("imagenet") and name not in ("lpips-alex", "lpips-vgg") for name in quick.metrics)
    assert "lpips-vgg" in full.metrics and "lpips-vgg" in full.timing_metrics
    vq, vf = (experiments.make_config("watson-vae", p) for p in ("quick", "full"))
    assert (vq.data, vf.data) == ("digits", "mnist") and vq.latent_dim == vf.latent_dim == 2
    colour = experiments.make_config("watson-vae-colour", "full")
    assert (colour.data, colour.image_size, colour.latent_dim) == ("celeba", 64, 256)
    # Watson's losses train with the grid shift, as in the paper
    assert all("watson" not in n or n.endswith("-shift") for c in (vq, vf, colour) for n in c.losses)


def test_the_reported_scores_are_fig_6s_ordering():
    rep = wx.REPORTED_2AFC
    for group in ("grey", "colour"):
        s = rep[group]
        assert s["L2"] < s["SSIM"] < s["Watson-DFT"] < s["LPIPS-VGG"] < s["LPIPS-Squeeze"] < rep["human"]
    assert "reported by" in rep["source"]


def test_watson_2afc_scores_recalibrates_and_times(tmp_path):
    result = experiments.run("watson-2afc", "quick", "cpu", tmp_path, metrics=("l2", "watson-dft"), n_per_kind=2,
                             size=32, calib_steps=4, calib_eval_every=2, calib_batch=4, n_boot=20, timing_batch=2,
                             timing_repeat=1, timing_metrics=("l2", "watson-dft", "vgg-random"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["2afc_l2"] == 0.5  # equal MSE: L2 ties on every triplet
    assert 0 <= metrics["2afc_watson-dft"] <= 1 and metrics["calibration_set"] == metrics["evaluation_set"]
    for t in ("dft", "dct"):
        assert 0 <= metrics[f"recalibrated_{t}_after"] <= 1 and metrics[f"recalibrated_{t}_gamma"] > 0
        # the re-calibrated parameters are written and load back into the model
        path = tmp_path / f"calibration-{t}" / f"watson-{t}-recalibrated.json"
        model = (losses.WatsonDFT if t == "dft" else losses.WatsonDCT)(3, pretrained=path)
        assert "re-calibrated" not in model.label and path.name in model.label
    costs = {c["metric"]: c for c in result["metrics"]["costs"]}
    assert costs["vgg-random"]["speedup_vs_vgg"] == 1.0 and costs["watson-dft"]["seconds"] > 0


def test_recalibration_starts_from_the_untrained_values_and_moves_them():
    config = wx.WatsonAgreementConfig(n_per_kind=2, size=32, calib_steps=3, calib_batch=4, calib_eval_every=3,
                                      n_boot=10)
    train, test = wx.agreement_sets(config)
    untrained = losses.WatsonDFT(3, pretrained=False)
    with torch.no_grad():
        expected = wx.agreement_row("x", *wx.distances(untrained, test, 32, "cpu"), test, 10)["score"]
    out = wx.recalibrate("dft", train, test, config)
    assert out["before"]["score"] == expected
    moved = out["model"].models["Y"].log_t.detach()
    assert not torch.equal(moved, untrained.models["Y"].log_t.detach())
    assert "re-calibrated here on" in out["model"].label
    assert [r["step"] for r in out["history"].records if "eval_score" in r] == [3]


def test_watson_2afc_full_preset_calibrates_on_bapps_train_and_scores_val(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    for split in ("train", "val"):
        write_bapps(tmp_path, split=split, seed=1 if split == "train" else 0)
    result = experiments.run("watson-2afc", "full", "cpu", None, metrics=("l2", "watson-dft"), calib_steps=2,
                             calib_batch=4, calib_eval_every=2, calib_transforms=("dft",), n_boot=10, timing_batch=2,
                             timing_repeat=1, timing_metrics=("l2", "watson-dft"))
    m = result["metrics"]
    assert m["calibration_set"] == "BAPPS 2AFC train" and m["evaluation_set"] == "BAPPS 2AFC val"
    assert "recalibrated_dft_after" in m and "recalibrated_dct_after" not in m


def test_translation_test_rows():
    rows = wx.translation_test({"l2": losses.registry.make("l2"), "watson-dft": losses.WatsonDFT(3)}, n=3,
                               shifts=(1,))
    assert {(r["metric"], r["shift"], r["direction"]) for r in rows} == \
        {(m, 1, d) for m in ("l2", "watson-dft") for d in ("horizontal", "diagonal")}
    ratio = {(r["metric"], r["direction"]): r["ratio"] for r in rows}
    assert all(v > 0 for v in ratio.values())
    assert ratio[("watson-dft", "horizontal")] < ratio[("l2", "horizontal")]


# --------------------------------------------------------------------------- calibrate_metric


def _calibration_inputs():
    config = wx.WatsonAgreementConfig(n_per_kind=2, size=32)
    return wx.agreement_sets(config)[0]


def test_calibrate_metric_resumes_exactly(tmp_path):
    triplets = _calibration_inputs()
    straight = losses.WatsonDFT(3, pretrained=False)
    a = calibrate_metric(straight, triplets, steps=6, lr=1e-2, batch_size=4, out_dir=tmp_path / "a", ckpt_every=3)
    stopped = losses.WatsonDFT(3, pretrained=False)
    calibrate_metric(stopped, triplets, steps=6, lr=1e-2, batch_size=4, out_dir=tmp_path / "b", ckpt_every=3,
                     stop_after=3)
    resumed = losses.WatsonDFT(3, pretrained=False)  # a fresh process: the state comes from the checkpoint
    b = calibrate_metric(resumed, triplets, steps=6, lr=1e-2, batch_size=4, out_dir=tmp_path / "b", ckpt_every=3)
    assert_same(straight.state_dict(), resumed.state_dict())
    assert a["gamma"] == b["gamma"]
    assert [r["loss"] for r in a["history"].records] == [r["loss"] for r in b["history"].records]


def test_calibrate_metric_rejects_a_metric_without_parameters():
    with pytest.raises(ValueError, match="no trainable parameters"):
        calibrate_metric(losses.registry.make("l2"), _calibration_inputs(), steps=1)


def test_calibrate_metric_lowers_the_2afc_loss():
    triplets = _calibration_inputs()
    out = calibrate_metric(losses.WatsonDCT(3, pretrained=False), triplets, steps=40, lr=3e-2, batch_size=16)
    losses_ = [r["loss"] for r in out["history"].records]
    assert sum(losses_[-10:]) / 10 < sum(losses_[:10]) / 10


# --------------------------------------------------------------------------- VAEs


def tiny_vae(**overrides):
    return wx.WatsonVAEConfig(**{**dict(steps=4, batch=8, widths=(4, 8, 8), losses=("l2", "watson-dft-grey-shift"),
                                        n_test=40, n_eval=40, grid=3, ckpt_every=2), **overrides})


def test_watson_vae_quick_trains_measures_and_saves_images(tmp_path, tmp_cache):
    result = experiments.run("watson-vae", "quick", "cpu", tmp_path, steps=4, batch=8, widths=[4, 8, 8],
                             losses=["l2", "watson-dft-grey-shift"], n_test=40, n_eval=40, grid=3)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for loss in ("l2", "watson-dft-grey-shift"):
        assert metrics[f"{loss}_fid"] >= 0 and metrics[f"{loss}_recon_mse"] > 0
        assert metrics[f"{loss}_sample_diversity"] >= 0
    assert "grid shift" in metrics["watson-dft-grey-shift_label"] and "digits classifier" in metrics["fid_space"]
    assert tuple(result["images"]["manifold_l2"].shape) == (9, 1, 32, 32)


def test_vae_training_with_the_grid_shift_resumes_exactly(tmp_path):
    config = tiny_vae(steps=6, ckpt_every=3)
    data = wx.vae_data(config)
    straight, _ = wx.train_vae(config, "watson-dft-grey-shift", data, out_dir=tmp_path / "a")
    wx.train_vae(tiny_vae(steps=3, ckpt_every=3), "watson-dft-grey-shift", data, out_dir=tmp_path / "b")
    resumed, meta = wx.train_vae(config, "watson-dft-grey-shift", data, out_dir=tmp_path / "b")
    assert_same(straight.state_dict(), resumed.state_dict())
    assert len(meta["history"]) == 6  # the records of the first three steps come back from the checkpoint


def test_vae_models_are_cached_by_config(tmp_cache):
    config = tiny_vae(losses=("l2",))
    first, meta = wx.vae(config, "l2")
    again, meta2 = wx.vae(config, "l2")
    assert_same(first.state_dict(), again.state_dict())
    other, _ = wx.vae(tiny_vae(losses=("l2",), beta=0.5), "l2")
    assert not torch.equal(first.decoder[0].weight, other.decoder[0].weight)


def test_evaluate_vae_reports_a_collapsed_decoder():
    config = tiny_vae()
    data = wx.vae_data(config)
    model = wx.ConvVAE(1, 32, 2, config.widths).eval()
    with torch.no_grad():  # a decoder that ignores z: every sample is the same image
        model.from_latent[0].weight.zero_()
    from perceptlab.models.digits import digits_classifier

    m = wx.evaluate_vae(model, data, config, digits_classifier())
    assert m["sample_diversity"] < 1e-6 and m["fid"] > m["fid_floor"]


def test_watson_vae_full_preset_reads_mnist(tmp_path, monkeypatch, tmp_cache):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_mnist(tmp_path / "mnist", n_train=40, n_test=40)
    result = experiments.run("watson-vae", "full", "cpu", None, losses=["l2"], steps=2, batch=8, widths=[4, 8, 8],
                             n_eval=40, grid=3)
    assert result["metrics"]["l2_n"] == 40
    data = wx.vae_data(experiments.make_config("watson-vae", "full"))
    assert tuple(data["train"].shape) == (40, 1, 32, 32) and data["train"][..., :2, :].abs().max() == 0  # padded


def test_colour_vae_full_preset_reads_celeba_at_64_pixels(tmp_path, monkeypatch, tmp_cache):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_celeba(tmp_path)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"  # the last two images: the official test split (2)
    partition.write_text(partition.read_text().replace(" 1\n", " 2\n"))
    config = experiments.make_config("watson-vae-colour", "full", steps=2, batch=2, widths=(4, 4, 8, 8), n_eval=2,
                                     losses=("watson-dft-shift",))
    data = wx.vae_data(config)
    assert tuple(data["train"].shape[1:]) == (3, 64, 64) and 0 <= data["train"].min() and data["train"].max() <= 1
    model, meta = wx.vae(config, "watson-dft-shift", data=data)
    assert model.latent_dim == 256 and "grid shift" in meta["label"]
    with torch.no_grad():
        assert tuple(model(data["test"]).shape) == tuple(data["test"].shape)


def test_vae_data_rejects_unknown_sources():
    with pytest.raises(ValueError, match="config.data"):
        wx.vae_data(tiny_vae(data="cifar"))

"""Chapter 7's experiments at toy sizes, their registration, and the full preset's code path on stand-ins."""
import json
import math

import pytest
import torch

from perceptlab import experiments
from perceptlab.experiments import probing as px
from perceptlab.models import WeightsUnavailableError

from conftest import write_bapps, write_bapps_jnd, write_iqa

TINY_PROBE = dict(size=32, ppd=16.0, f_max=8.0, n_freqs=5, n_thetas=4, n_phases=2)


def test_chapter_7_experiments_are_registered_with_both_presets():
    assert {"pe-probe", "pe-quality", "pe-reconstruct", "pe-superres"} <= set(experiments.EXPERIMENTS)
    quick, full = (experiments.make_config("pe-probe", p) for p in ("quick", "full"))
    assert set(quick.networks) <= {"exemplar", "vgg16-random"}  # offline
    assert full.networks == ("vgg16", "alexnet", "squeezenet1_1")  # the seed's networks
    assert full.stimuli().ppd / 2 >= max(full.stimuli().freqs)
    q, f = (experiments.make_config("pe-quality", p) for p in ("quick", "full"))
    assert not q.bapps and f.bapps and f.jnd and "lpips-alex" in f.compare and "lpips-alex" not in q.compare
    sr = experiments.make_config("pe-superres", "full")
    assert sr.network == "vgg16" and sr.layer == "relu2_2"


def test_pe_probe_runs_and_saves(tmp_path):
    result = experiments.run("pe-probe", "quick", "cpu", tmp_path, networks=["vgg16-random"], **TINY_PROBE)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    entry = metrics["vgg16-random_relu2_2"]
    assert len(entry["pe"]) == 128 and len(metrics["freqs"]) == 5
    assert result["metrics"]["vgg16-random_relu1_2"]["orient_cpd"] == pytest.approx(7.89, abs=0.05)


def test_the_full_networks_fail_fast_offline(empty_torch_home):
    with pytest.raises(WeightsUnavailableError):
        px.probe_network("vgg16", "full")


def tiny_quality(**overrides):
    return px.PEQualityConfig(**{**dict(layers=("relu1_2", "relu2_2"), percents=(10.0, 50.0), n_refs=3, size=32,
                                        n_per_kind=2, compare=("l2", "ssim"), n_boot=20), **overrides})


def test_pe_quality_scores_every_subset_and_the_comparison(monkeypatch):
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    result = px.run_pe_quality(tiny_quality())
    names = [r["set"] for r in result["rows"] if r["layer"] == "relu2_2"]
    assert names == ["F", "H-10", "L-10", "H-50", "L-50"]
    for r in result["rows"]:
        assert -1 <= r["srocc_graded"]["value"] <= 1 and 0 <= r["2afc_equal_mse"]["value"] <= 1
        assert r["srocc_graded"]["low"] <= r["srocc_graded"]["high"]
    full = next(r for r in result["rows"] if r["layer"] == "relu2_2" and r["set"] == "F")
    assert full["n_channels"] == 128
    compare = {r["metric"]: r for r in result["compare"]}
    assert set(compare) == {"H-10 relu2_2", "l2", "ssim"}
    assert compare["l2"]["2afc_equal_mse"]["value"] == 0.5  # equal MSE: L2 cannot choose


def _tiny_stimuli():
    return px.Stimuli(size=32, ppd=16.0, freqs=(0.5, 1.0, 2.0, 4.0, 8.0), thetas=(0.0, math.pi / 2), phases=(0.0,))


def test_pe_quality_full_preset_on_bapps_jnd_and_an_iqa_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    write_bapps(tmp_path)
    write_bapps_jnd(tmp_path)
    write_iqa(tmp_path)
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    config = experiments.make_config("pe-quality", "full", network="vgg16-random", layers=("relu2_2",),
                                     percents=(10.0,), compare=("l2",), size=32, n_boot=10)
    result = px.run_pe_quality(config)
    row = result["rows"][0]
    assert {"srocc_graded", "srocc_live", "2afc_bapps", "jnd"} <= set(row)
    assert 0 <= row["jnd"]["value"] <= 1
    assert result["sets"]["qa"]["live"].source.startswith("live (human opinion scores")


def test_pe_reconstruction_measures_each_subset(monkeypatch):
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    config = px.ReconstructConfig(size=32, steps=3, sets=(("H", 10.0), ("F", 100.0)))
    result = px.run_reconstruction(config)
    assert [r["set"] for r in result["rows"]] == ["target", "H-10", "F"]
    x = result["images"][("relu2_2", "H-10")]
    assert x.shape == (1, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert result["rows"][0]["mse"] == 0 and all(r["chroma"] >= 0 for r in result["rows"])


def test_pe_probe_full_preset_code_path_on_a_shrunken_stimulus_set(tmp_path):
    full = experiments.make_config("pe-probe", "full")
    assert (full.size, full.ppd, full.n_freqs, full.network_preset) == (224, 64.0, 24, "full")
    result = experiments.run("pe-probe", "full", "cpu", tmp_path, networks=["vgg16-random"], size=32, ppd=16.0,
                             n_freqs=4, n_thetas=3, n_phases=2, f_max=8.0)
    entry = result["metrics"]["vgg16-random_relu4_3"]
    assert len(entry["pe"]) == 512 and min(entry["pe"]) >= 0 and sum(entry["pe"]) <= 1 + 1e-9
    assert (tmp_path / "metrics.json").exists()


def test_pe_reconstruction_full_preset_code_path_on_two_layers(monkeypatch):
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    config = experiments.make_config("pe-reconstruct", "full", network="vgg16-random", size=32, steps=2)
    assert config.layers == ("relu2_2", "relu3_3") and config.network_preset == "full"
    result = px.run_reconstruction(config)
    assert {k[0] for k in result["images"]} == {"relu2_2", "relu3_3"}
    assert [r["set"] for r in result["rows"]].count("H-10") == 2


def test_spectral_measures_on_gratings():
    from perceptlab.probing import oriented_grating

    low, high = oriented_grating(64, 2.0, 32.0, 0.0)[None], oriented_grating(64, 8.0, 32.0, 0.0)[None]
    assert px.spectral_centroid(low, 32.0) < px.spectral_centroid(high, 32.0)
    assert px.colourfulness(low) == pytest.approx(0.0, abs=1e-6)
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 1
    assert px.colourfulness(red) > 0.3
    assert px.no_reference_sharpness(high) > px.no_reference_sharpness(low)


def test_pe_superres_trains_each_alpha_and_weighting(tmp_path, monkeypatch):
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    result = experiments.run("pe-superres", "quick", "cpu", tmp_path, alphas=[1.0, 0.5],
                             sr_overrides={"steps": 2, "n_train": 16, "n_test": 4, "batch": 4, "width": 4, "depth": 2})
    rows = result["metrics"]["rows"]
    assert [(r["alpha"], r["weighting"]) for r in rows] == [(1.0, "-"), (0.5, "uniform"), (0.5, "pe")]
    assert all(r["psnr"] > 0 and 0 < r["sharpness"] for r in rows)
    assert "contextual loss" in rows[1]["label"] and "weighted" in rows[2]["label"]
    assert (tmp_path / "alpha0.5-pe").is_dir()  # checkpoints of each run, for exact resume


def test_pe_superres_full_preset_trains_on_a_div2k_stand_in(tmp_path, monkeypatch):
    from conftest import write_div2k

    write_div2k(tmp_path, n_train=2, n_valid=2)
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    monkeypatch.setattr(px.ProbeConfig, "stimuli", lambda self: _tiny_stimuli())
    full = experiments.make_config("pe-superres", "full")
    assert full.sr_overrides["data"] == "div2k" and full.network == "vgg16" and 1.0 in full.alphas
    shrunk = {**full.sr_overrides, "patch": 32, "n_train": 4, "n_test": 2, "steps": 2, "batch": 2, "width": 4,
              "depth": 2, "ckpt_every": 1}
    result = experiments.run("pe-superres", "full", "cpu", tmp_path / "run", network="vgg16-random",
                             alphas=[1.0, 0.5], sr_overrides=shrunk)
    rows = result["metrics"]["rows"]
    assert [(r["alpha"], r["weighting"]) for r in rows] == [(1.0, "-"), (0.5, "uniform"), (0.5, "pe")]
    assert (tmp_path / "run" / "alpha0.5-pe" / "checkpoint.pt").exists()


def test_mixed_loss_is_eq_9():
    from perceptlab.losses import ContextualLoss, mse
    from perceptlab.models import backbone

    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    cx = ContextualLoss(backbone("vgg16", "random"))
    assert torch.allclose(px.MixedLoss(0.3, cx)(x, y), 0.3 * mse(x, y) + 0.7 * cx(x, y))
    assert torch.allclose(px.MixedLoss(1.0, None)(x, y), mse(x, y))
    with pytest.raises(ValueError, match="alpha"):
        px.MixedLoss(1.5, cx)

import json
import subprocess
import sys

import pytest

from perceptlab import experiments

GIM_TINY = ["steps=5", "image_size=64", "crop=32", "max_shift=4", "n=3", 'losses=["l2"]']


def test_make_config_uses_the_preset_and_overrides():
    config = experiments.make_config("superres", "full", steps=7)
    assert config.data == "stl10" and config.steps == 7
    assert experiments.make_config("superres", "quick").data == "bundled"


def test_make_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="experiment must be one of"):
        experiments.make_config("nope", "quick")
    with pytest.raises(ValueError, match="unknown config fields"):
        experiments.make_config("gim", "quick", epochs=3)


def test_parse_overrides_reads_json_values():
    assert experiments.parse_overrides(["steps=10", "lr=0.5", "image=camera", 'losses=["l1"]']) == {
        "steps": 10, "lr": 0.5, "image": "camera", "losses": ("l1",)}
    with pytest.raises(ValueError, match="key=value"):
        experiments.parse_overrides(["steps"])


def test_run_saves_config_metrics_and_images(tmp_path):
    result = experiments.run("gim", "quick", "cpu", tmp_path, **experiments.parse_overrides(GIM_TINY))
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(result["metrics"])
    assert json.loads((tmp_path / "config.json").read_text())["experiment"] == "gim"
    assert {p.name for p in tmp_path.glob("*.png")} == {"targets.png", "mean.png", "median.png", "gim_l2.png"}


def test_command_line_runs_an_experiment(tmp_path):
    out = tmp_path / "gim"
    proc = subprocess.run([sys.executable, "-m", "perceptlab", "run", "gim", "--preset", "quick", "--device", "cpu",
                           "--out", str(out), "--set", *GIM_TINY], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "sharpness_l2" in json.loads(proc.stdout)
    assert (out / "metrics.json").exists()
    listing = subprocess.run([sys.executable, "-m", "perceptlab", "list"], capture_output=True, text=True)
    assert "superres" in listing.stdout and "gim" in listing.stdout


def test_chapter_two_experiments_are_registered_with_both_presets():
    assert {"gim_perceptual", "agreement"} <= set(experiments.EXPERIMENTS)
    quick, full = experiments.make_config("agreement", "quick"), experiments.make_config("agreement", "full")
    assert not quick.bapps and full.bapps and full.calibration_set == "bapps"
    assert "lpips-vgg" in full.metrics and "lpips-vgg" not in quick.metrics


def test_agreement_experiment_runs_and_saves_scores(tmp_path):
    result = experiments.run("agreement", "quick", "cpu", tmp_path, metrics=("l2", "ssim"), calibrate="ssim",
                             n_per_kind=2, size=32, n_boot=20, calibration_steps=20)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["2afc_equal_mse_l2"] == 0.5
    assert 0 <= metrics["2afc_strength_ssim"] <= 1
    assert metrics["calibration_metric"] == "ssim"
    assert (tmp_path / "strength_examples.png").exists() and (tmp_path / "equal_mse_examples.png").exists()
    assert set(result["metrics"]["labels"]) == {"l2", "ssim"}


def test_agreement_full_preset_reads_bapps_from_its_folder_layout(bapps_stand_in):
    """The full preset's code path on a BAPPS stand-in: same code, shrunken config."""
    result = experiments.run("agreement", "full", "cpu", None, metrics=("l2", "ssim"), calibrate="l2",
                             n_per_kind=2, size=32, n_boot=20, calibration_steps=20)
    assert "2afc_bapps_l2" in result["metrics"] and "2afc_bapps_ssim" in result["metrics"]

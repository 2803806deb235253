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

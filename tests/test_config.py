"""Tests of perceptlab.config: presets, devices, locations, quiet mode and progress bars."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from dataclasses import dataclass
from typing import ClassVar

from perceptlab import models
from perceptlab.experiments import dcgan
from perceptlab.experiments import gan1d
from perceptlab.experiments import superres
from perceptlab.models import exemplar
from perceptlab.config import PresetConfig
import torch

from perceptlab import config


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend there is neither CUDA nor MPS, whatever this machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_preset_defaults_to_quick_without_cuda(monkeypatch, no_accelerator):
    monkeypatch.delenv("PERCEPTLAB_PRESET", raising=False)
    assert config.preset() == "quick"


def test_preset_defaults_to_full_with_cuda(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_PRESET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.preset() == "full"


@pytest.mark.parametrize("value, expected", [("full", "full"), ("quick", "quick"), ("  FULL\n", "full")])
def test_preset_environment_variable_overrides_default(monkeypatch, no_accelerator, value, expected):
    monkeypatch.setenv("PERCEPTLAB_PRESET", value)
    assert config.preset() == expected


def test_preset_argument_overrides_environment(monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_PRESET", "full")
    assert config.preset("quick") == "quick"


def test_preset_invalid_environment_value_raises_naming_variable(monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_PRESET", "medium")
    with pytest.raises(ValueError, match="PERCEPTLAB_PRESET") as info:
        config.preset()
    assert "'medium'" in str(info.value)


def test_preset_invalid_argument_raises():
    with pytest.raises(ValueError, match="preset must be one of"):
        config.preset("fast")


def test_default_device_is_cpu_without_accelerator(monkeypatch, no_accelerator):
    monkeypatch.delenv("PERCEPTLAB_DEVICE", raising=False)
    assert config.default_device() == torch.device("cpu")


def test_default_device_prefers_cuda(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.default_device() == torch.device("cuda")


def test_default_device_environment_variable_and_argument(monkeypatch, no_accelerator):
    monkeypatch.setenv("PERCEPTLAB_DEVICE", "meta")
    assert config.default_device() == torch.device("meta")
    assert config.default_device("cpu") == torch.device("cpu")
    assert config.default_device(torch.device("cpu")) == torch.device("cpu")


def test_cache_and_data_dir_follow_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("PERCEPTLAB_DATA", raising=False)
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"
    assert config.data_dir() == tmp_path / "c" / "data"
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "d"))
    assert config.data_dir() == tmp_path / "d"


def test_cache_dir_default_is_under_home(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_CACHE", raising=False)
    assert config.cache_dir() == Path.home() / ".cache" / "perceptlab"


def test_quiet_is_true_under_pytest(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_QUIET", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert "PYTEST_CURRENT_TEST" in os.environ
    assert config.quiet() is True


def test_quiet_environment_flag_wins(monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_QUIET", "0")
    assert config.quiet() is False
    monkeypatch.setenv("PERCEPTLAB_QUIET", "1")
    assert config.quiet() is True


def test_quiet_outside_tests_depends_on_ci(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_QUIET", raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert config.quiet() is False
    monkeypatch.setenv("CI", "true")
    assert config.quiet() is True


def test_progress_is_disabled_under_tests(monkeypatch):
    monkeypatch.delenv("PERCEPTLAB_QUIET", raising=False)
    bar = config.progress(range(3))
    assert bar.disable is True
    assert list(bar) == [0, 1, 2]


def test_progress_explicit_disable_is_respected(monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_QUIET", "0")
    bar = config.progress(range(2), disable=True)
    assert bar.disable is True
    assert list(bar) == [0, 1]


@dataclass
class Toy(PresetConfig):
    FULL: ClassVar[dict] = {"size": 64, "data": "stl10"}
    size: int = 8
    data: str = "bundled"


def test_preset_config_applies_full_sizes_then_overrides():
    assert Toy.for_preset("quick") == Toy(8, "bundled")
    assert Toy.for_preset("full") == Toy(64, "stl10")
    assert Toy.for_preset("full", size=2) == Toy(2, "stl10")
    with pytest.raises(ValueError, match="preset must be one of"):
        Toy.for_preset("huge")


def test_default_seed_follows_environment_and_reaches_every_training_config(monkeypatch):
    from perceptlab.config import default_seed

    monkeypatch.delenv("PERCEPTLAB_SEED", raising=False)
    assert default_seed() == 0
    monkeypatch.setenv("PERCEPTLAB_SEED", "7")
    assert default_seed() == 7
    configs = [models.ExemplarConfig(), models.DigitsClassifierConfig(), dcgan.GANConfig.for_preset("full"),
               gan1d.GAN1DConfig(), superres.SRConfig.for_preset("quick")]
    assert [c.seed for c in configs] == [7] * 5
    assert dcgan.GANConfig(seed=2).seed == 2  # an explicit seed wins
    # the trained networks' caches are keyed by the config, seed included
    assert exemplar.config_key(models.ExemplarConfig()) != exemplar.config_key(models.ExemplarConfig(seed=0))
    monkeypatch.setenv("PERCEPTLAB_SEED", "three")
    with pytest.raises(ValueError, match="PERCEPTLAB_SEED"):
        default_seed()


def test_an_accelerator_this_machine_lacks_is_refused_at_once(monkeypatch):
    from perceptlab.config import check_device, default_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' was requested .* CUDA is not available"):
        check_device("cuda")
    monkeypatch.setenv("PERCEPTLAB_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        default_device()
    with pytest.raises(ValueError, match="device must be"):
        check_device("gpu!")
    assert check_device("cpu") == torch.device("cpu")


def test_the_trained_networks_refuse_a_missing_accelerator_before_training_or_loading(monkeypatch):
    from perceptlab import models

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for build in (lambda: models.digits_classifier(device="cuda"), lambda: models.exemplar_cnn(device="cuda")):
        with pytest.raises(ValueError, match="CUDA is not available"):
            build()

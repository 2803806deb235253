"""Tests of perceptlab.experiments.deepsim (Dosovitskiy & Brox 2016, Chapter 4): exact resume of the
autoencoder and inversion training, the pause rule in the history, the cache, the full preset's code
path on tiny stand-ins of STL-10 and ImageNet in their real on-disk formats, clear errors without data or
weights, the command-line runner, and the evaluation helpers.  Every config is tiny (a few steps,
batch 4, narrow networks)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_same, load_or_fail_fast_offline
from PIL import Image
from torch import nn

from perceptlab import experiments
from perceptlab.data.datasets import DataUnavailableError
from perceptlab.experiments import deepsim as ds
from perceptlab.models import exemplar
from perceptlab.models.deepsim import InversionGenerator
from perceptlab.models.weights import imagenet_weights, imagenet_weights_path
from perceptlab.train import CHECKPOINT


pytestmark = pytest.mark.usefixtures("one_thread")  # toy networks: one thread is faster (conftest)

TINY_AE = dict(image_size=32, source_size=64, width=0.125, d_width=0.125, steps=4, batch=4, n_test=8,
               n_cls_train=16, n_cls_test=8, cls_folds=2, fid_n=4, ckpt_every=2, alexnet="alexnet-random",
               alexnet_layer="relu2")
#: The quick inversion (the Exemplar-CNN's pooled features, the Exemplar-CNN as comparator) at toy sizes.
TINY_INV = dict(image_size=32, source_size=64, width=0.125, d_width=0.125, n_train=8, steps=4, batch=4, n_test=4,
                ckpt_every=2)
#: Exemplar-CNN comparators at toy sizes: the quick one on two bundled images, the full one on the STL stand-in.
TINY_EXEMPLAR_QUICK = dict(images=("coins", "moon"), image_size=64, n_classes=4, patch=16, context=32,
                           widths=(4, 8, 8), steps=2, batch=8, ckpt_every=2)
TINY_EXEMPLAR_FULL = dict(data="stl10", n_classes=4, n_source=6, widths=(4, 8, 8), steps=2, batch=8)


@pytest.fixture(autouse=True)
def temporary_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test caches its networks in its own temporary folder."""
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_exemplars(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the Exemplar-CNN comparators the presets train: ``FULL`` (STL-10) and the quick defaults."""
    monkeypatch.setattr(exemplar.ExemplarConfig, "FULL", dict(TINY_EXEMPLAR_FULL))
    original = exemplar.ExemplarConfig.for_preset.__func__

    def for_preset(cls, preset, **overrides):
        if preset == "quick":
            overrides = {**TINY_EXEMPLAR_QUICK, **overrides}
        return original(cls, preset, **overrides)

    monkeypatch.setattr(exemplar.ExemplarConfig, "for_preset", classmethod(for_preset))


@pytest.fixture(scope="module")
def ae_config() -> ds.AEConfig:
    return ds.AEConfig(**TINY_AE)


@pytest.fixture(scope="module")
def ae_data(ae_config) -> dict:
    return ds.ae_data(ae_config)


@pytest.fixture(scope="module")
def inv_data() -> dict:
    return ds.inversion_data(ds.InversionConfig(**TINY_INV))


class TinyExtractor(nn.Module):
    """A small random feature space for FID/KID (the full preset's would be Inception-v3)."""

    label = "tiny random extractor"

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.conv = nn.Conv2d(3, 4, 5, stride=4)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


def _state_equal(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _checkpoint(folder: Path) -> dict:
    return torch.load(folder / CHECKPOINT, weights_only=True)


# --------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("loss, variational", [("deepsim-alexnet", False), ("se", False), ("se", True)])
def test_autoencoder_training_resumes_bit_identically(tmp_path, ae_config, ae_data, loss, variational):
    config = replace(ae_config, loss=loss, steps=4, variational=variational)
    full, meta_full = ds.train_autoencoder(config, out_dir=tmp_path / "a", data=ae_data)
    _, meta_stopped = ds.train_autoencoder(config, out_dir=tmp_path / "b", stop_after=2, data=ae_data)
    assert len(meta_stopped["history"]) == 2 and _checkpoint(tmp_path / "b")["step"] == 2
    resumed, meta_resumed = ds.train_autoencoder(config, out_dir=tmp_path / "b", data=ae_data)
    _state_equal(full, resumed)
    assert_same(meta_full["history"], meta_resumed["history"])
    assert [r["step"] for r in meta_resumed["history"]] == [1, 2, 3, 4]
    # everything the run depends on, D and both optimisers included, ends identical
    a, b = _checkpoint(tmp_path / "a"), _checkpoint(tmp_path / "b")
    assert_same(a["state"], b["state"])
    assert ("D" in a["state"]) == (loss == "deepsim-alexnet")
    if loss == "deepsim-alexnet":
        assert {"feat", "adv", "img", "loss_discr", "loss_adv", "d_updated"} <= set(meta_full["history"][0])


def test_inverter_training_resumes_bit_identically(tmp_path, inv_data, tiny_exemplars):
    config = ds.InversionConfig(**TINY_INV, loss="full")
    assert (config.net, config.layer, config.comparator) == ("exemplar", "gap", "exemplar")
    full, meta_full = ds.train_inverter(config, out_dir=tmp_path / "a", data=inv_data)
    ds.train_inverter(config, out_dir=tmp_path / "b", stop_after=2, data=inv_data)
    assert _checkpoint(tmp_path / "b")["step"] == 2
    resumed, meta_resumed = ds.train_inverter(config, out_dir=tmp_path / "b", data=inv_data)
    _state_equal(full, resumed)
    assert_same(meta_full["history"], meta_resumed["history"])
    assert_same(_checkpoint(tmp_path / "a")["state"], _checkpoint(tmp_path / "b")["state"])
    assert "d_updated" in meta_full["history"][-1]
    # the generator inverts the pooled relu3 features (a vector: fc mode) at the configured size
    assert isinstance(full, InversionGenerator) and full.mode == "fc" and full.in_features == 8
    assert full(torch.zeros(1, 8)).shape == (1, 3, 32, 32)


# --------------------------------------------------------------------------- data


def test_random_crops_of_uint8_images_equal_the_float_crops_and_name_their_source():
    from perceptlab.data.images import random_crops

    images = torch.randint(0, 256, (3, 3, 12, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a, idx = random_crops(images, 6, 20, torch.Generator().manual_seed(1), return_index=True)
    b = random_crops(images.float() / 255, 6, 20, torch.Generator().manual_seed(1))
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert idx.shape == (20,) and set(idx.tolist()) <= {0, 1, 2}
    for crop, i in zip(a, idx.tolist()):  # each crop is a window of the image it names
        windows = (images[i].float() / 255).unfold(1, 6, 1).unfold(2, 6, 1)  # (3, 7, 5, 6, 6)
        assert (windows == crop[:, None, None]).flatten(3).all(3).all(0).any()


def test_quick_code_classification_labels_are_the_held_out_photographs(ae_config, ae_data):
    crops, labels = ae_data["cls_train"]
    assert crops.shape == (ae_config.n_cls_train, 3, 32, 32) and labels.dtype == torch.int64
    assert set(labels.tolist()) <= set(range(len(ds.AE_TEST_IMAGES)))
    assert ae_data["train"].shape[0] == len(ds.AE_TRAIN_IMAGES)


# --------------------------------------------------------------------------- the VAE variant (Sec. 4.2)


def test_vae_training_adds_the_weighted_kl_term_and_samples_from_the_prior(ae_config, ae_data):
    config = replace(ae_config, loss="se", steps=2, variational=True, kl_weight=0.5)
    model, meta = ds.autoencoder(config, data=ae_data)
    assert model.variational and not model.training
    for record in meta["history"]:
        assert record["extra"] >= 0 and record["loss"] >= record["extra"]  # SE + 0.5 KL, KL >= 0
    again, _ = ds.autoencoder(config, data=ae_data)  # the cache rebuilds a VAE to load the weights into
    _state_equal(model, again)
    samples = ds.sample_vae(model, 5, seed=3)
    assert samples.shape == (5, 3, 32, 32) and torch.equal(samples, ds.sample_vae(model, 5, seed=3))
    z = torch.randn(5, 8, 4, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.allclose(samples, model.decode(z))
    with pytest.raises(ValueError, match="model"):
        ds.sample_vae(ds.build_autoencoder(replace(config, variational=False)), 2)
    with pytest.raises(ValueError, match="kl_weight"):
        ds.train_autoencoder(replace(config, kl_weight=-1.0), data=ae_data)


# --------------------------------------------------------------------------- the pause rule in training


@pytest.mark.parametrize("threshold, expected", [(1e9, 0.0), (0.0, 1.0)])
def test_pause_threshold_controls_the_d_updated_records(ae_config, ae_data, threshold, expected):
    config = replace(ae_config, loss="deepsim-alexnet", steps=3, threshold=threshold)
    _, meta = ds.train_autoencoder(config, data=ae_data)
    flags = [r["d_updated"] for r in meta["history"]]
    assert flags == [expected] * 3
    assert ds.d_pause_fraction(meta["history"]) == 1.0 - expected


def test_d_pause_fraction_counts_steps_without_a_d_update():
    history = [{"d_updated": 1.0}, {"d_updated": 0.0}, {"d_updated": 0.0}, {"d_updated": 1.0}, {"loss": 2.0}]
    assert ds.d_pause_fraction(history) == 0.5
    assert ds.d_pause_fraction(history, last=2) == 0.5
    assert ds.d_pause_fraction(history[:3], last=2) == 1.0
    assert math.isnan(ds.d_pause_fraction([{"loss": 1.0}]))


# --------------------------------------------------------------------------- cache


def test_autoencoder_is_cached_by_config_and_loaded_without_training(ae_config, ae_data, monkeypatch):
    config = replace(ae_config, loss="se", steps=3)
    model, meta = ds.autoencoder(config, data=ae_data)
    assert (ds.cache_path("ae", config) / "model.pt").exists()
    assert ds.cache_path("ae", config) != ds.cache_path("ae", replace(config, steps=4))

    def no_training(*args, **kwargs):
        raise AssertionError("a cached autoencoder must not be trained again")

    monkeypatch.setattr(ds, "train_autoencoder", no_training)
    again, meta_again = ds.autoencoder(config, data=ae_data)
    _state_equal(model, again)
    assert meta_again["train_seconds"] == meta["train_seconds"]
    assert meta_again == meta
    assert not again.training
    with pytest.raises(AssertionError, match="must not be trained again"):
        ds.autoencoder(replace(config, steps=4), data=ae_data)


# --------------------------------------------------------------------------- the full preset on stand-ins


def _write_stl10(root: Path, n_unlabeled: int = 12, n_train: int = 20, n_test: int = 16, seed: int = 0) -> np.ndarray:
    """A tiny STL-10 in its binary format under ``root/stl10/stl10_binary``: uint8 images stored column-major
    (each image's 96 x 96 plane transposed), labels 1..10.  Returns the test images as (N, 3, H, W)."""
    rng = np.random.default_rng(seed)
    folder = root / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    images = {}
    for split, n in (("unlabeled", n_unlabeled), ("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)
        x[:, :, :48] //= 2  # not symmetric: a wrong transpose would show
        images[split] = x
        np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            (np.arange(n) % 10 + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    return images["test"]


def _write_imagenet(root: Path, n: int = 6) -> None:
    """A few small JPEGs in ILSVRC-2012's folder layout: imagenet/train/<class>/*.JPEG, imagenet/val/..."""
    rng = np.random.default_rng(1)
    for split, count in (("train", n), ("val", 4)):
        for c in ("n01440764", "n01443537"):
            folder = root / "imagenet" / split / c
            folder.mkdir(parents=True)
            for i in range(count // 2):
                array = rng.integers(0, 256, (80 + 4 * i, 96, 3), dtype=np.uint8)
                Image.fromarray(array).save(folder / f"{c}_{i}.JPEG", quality=90)


def _full_ae_config(**overrides) -> ds.AEConfig:
    sizes = dict(image_size=32, width=0.125, d_width=0.125, steps=2, batch=4, n_test=8, n_cls_train=20,
                 n_cls_test=8, cls_folds=2, fid_n=4, ckpt_every=2, alexnet="alexnet-random")
    return ds.AEConfig.for_preset("full", **{**sizes, **overrides})


def test_full_preset_autoencoders_run_on_an_stl10_stand_in(tmp_path, monkeypatch, tiny_exemplars):
    test_images = _write_stl10(tmp_path / "data")
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    config = _full_ae_config()
    assert config.data == "stl10" and config.alexnet_layer == "relu3" and config.lr == 2e-4
    data = ds.ae_data(config)
    # test crops are the centre 32 x 32 of the stored 96 x 96 images (read back in the right orientation)
    m = (96 - 32) // 2
    centre = torch.from_numpy(test_images[..., m: m + 32, m: m + 32].astype(np.float32) / 255)
    assert any(torch.equal(data["test"][0], c) for c in centre)
    assert data["train"].dtype == torch.uint8 and data["train"].shape == (12, 3, 96, 96)
    assert set(data["cls_train"][1].tolist()) == set(range(10))  # labels 1..10 on disk, 0..9 here

    result = ds.run_autoencoders(config, losses=("se", "deepsim-alexnet"), extractor=TinyExtractor())
    assert set(result["metrics"]) == {"se", "deepsim-alexnet"}
    for loss, metrics in result["metrics"].items():
        assert len(result["meta"][loss]["history"]) == 2
        for key in ("error_image", "error_feature", "sharpness", "hf_fraction", "fid", "kid", "accuracy"):
            assert math.isfinite(metrics[key]), (loss, key)
        assert 0 <= metrics["accuracy"] <= 1
        assert result["reconstructions"][loss].shape == (8, 3, 32, 32)
    assert "STL-10 unlabelled" in result["feature_space"]  # the full preset's Exemplar-CNN
    assert result["fid_space"] == "tiny random extractor"
    assert "alexnet" in result["meta"]["deepsim-alexnet"]["label"]


def test_full_preset_inversion_runs_on_an_imagenet_stand_in(tmp_path, monkeypatch):
    _write_imagenet(tmp_path / "data")
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    config = ds.InversionConfig.for_preset("full", net="alexnet-random", comparator="alexnet-random", image_size=64,
                                           width=1 / 16, d_width=0.125, steps=2, batch=4, n_train=6, n_test=4,
                                           ckpt_every=2)
    assert config.data == "imagenet" and config.layer == "fc6" and config.comparator_layer == "pool5"
    result = ds.run_inversion(config, losses=("full",), mv_steps=2, mv_images=2)
    assert result["test"].shape == (4, 3, 64, 64)
    assert len(result["meta"]["full"]["history"]) == 2
    for method in ("full", "optimization"):
        for key in ("error_image", "error_feature", "sharpness"):
            assert math.isfinite(result["metrics"][method][key]), (method, key)
    assert result["reconstructions"]["full"].shape == (4, 3, 64, 64)
    assert "fc6" in result["phi_label"]


def test_missing_stl10_raises_quickly_naming_where_to_put_it(tmp_path, monkeypatch):
    import dataclasses
    import socket

    from perceptlab.data import datasets

    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    with socket.socket() as s:  # a port nothing listens on: the download fails at once, online or not
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stl10_binary.tar.gz"
    spec = datasets.REGISTRY["stl10"]
    monkeypatch.setitem(datasets.REGISTRY, "stl10", dataclasses.replace(
        spec, resources=(dataclasses.replace(spec.resources[0], url=url),)))
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        ds.run_autoencoders(_full_ae_config(), losses=("se",), extractor=TinyExtractor())
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert str(tmp_path / "data" / "stl10") in message and "by hand" in message


def test_missing_imagenet_raises_quickly_naming_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    config = ds.InversionConfig.for_preset("full", net="alexnet-random", comparator="alexnet-random", image_size=64)
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        ds.run_inversion(config, losses=("full",))
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert str(tmp_path / "data" / "imagenet" / "train") in message
    assert str(tmp_path / "data" / "imagenet" / "val") in message


def test_full_preset_autoencoders_without_alexnet_weights_fail_fast(tmp_path, monkeypatch, tiny_exemplars,
                                                                     empty_torch_home):
    _write_stl10(tmp_path / "data")
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    config = _full_ae_config(alexnet=ds.AEConfig.FULL["alexnet"])
    assert config.alexnet == "alexnet-imagenet"
    url, path = imagenet_weights("alexnet").url, imagenet_weights_path("alexnet")
    result = load_or_fail_fast_offline(
        lambda: ds.run_autoencoders(config, losses=("deepsim-alexnet",), extractor=TinyExtractor()), url, path)
    if result is not None:  # online: the weights were downloaded and the tiny run went through
        assert "imagenet" in result["meta"]["deepsim-alexnet"]["label"]


def test_full_preset_inversion_without_alexnet_weights_fails_fast(tmp_path, monkeypatch, empty_torch_home):
    _write_imagenet(tmp_path / "data")
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path / "data"))
    config = ds.InversionConfig.for_preset("full", image_size=64, width=1 / 16, d_width=0.125, steps=2, batch=4,
                                           n_train=6, n_test=4)
    assert config.net == config.comparator == "alexnet-imagenet"
    url, path = imagenet_weights("alexnet").url, imagenet_weights_path("alexnet")
    result = load_or_fail_fast_offline(lambda: ds.run_inversion(config, losses=("full",), mv_steps=0), url, path)
    if result is not None:
        assert "imagenet" in result["phi_label"]


# --------------------------------------------------------------------------- the command-line runner


def test_run_deepsim_ae_quick_writes_metrics(tmp_path, tiny_exemplars):
    overrides = experiments.parse_overrides(["steps=2", "batch=4", "image_size=32", "source_size=64", "width=0.125",
                                             "d_width=0.125", "n_test=8", "n_cls_train=16", "n_cls_test=8",
                                             "cls_folds=2", "fid_n=4"])
    result = experiments.run("deepsim-ae", "quick", "cpu", tmp_path / "out", **overrides)
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == pytest.approx(result["metrics"])
    for loss in ds.AE_LOSSES:
        assert math.isfinite(metrics[f"{loss}_error_image"]) and f"{loss}_label" in metrics
        assert (tmp_path / "out" / f"recon_{loss}.png").exists()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["steps"] == 2
    assert "Exemplar-CNN" in metrics["feature_space"]


# --------------------------------------------------------------------------- evaluation helpers


class MeanCode(nn.Module):
    """A stand-in autoencoder whose 'code' is each channel's mean."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def encode(self, x):
        return self.scale * x.mean(dim=(2, 3))


def test_code_classification_of_separable_codes_is_perfect():
    g = torch.Generator().manual_seed(0)

    def images(n):
        y = torch.arange(n) % 3
        x = 0.1 * torch.rand(n, 3, 8, 8, generator=g)
        x[torch.arange(n), y] += 0.8  # class k: channel k bright
        return x, y

    accuracy, std = ds.code_classification(MeanCode(), images(30), images(12), folds=3)
    assert accuracy == 1.0 and std == 0.0


class TinyPhi(nn.Module):
    """A fixed feature map Phi (N, 3, 16, 16) -> (N, 32), with a buffer like the library's networks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(11)
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.register_buffer("offset", torch.zeros(()))
        self.requires_grad_(False)

    def forward(self, x):
        return torch.relu(self.conv(x - self.offset)).flatten(1)[:, :32]


@pytest.fixture
def tiny_inverter():
    torch.manual_seed(12)
    return InversionGenerator(32, 16, "fc", width=1 / 32).eval(), TinyPhi()


def test_reencode_applies_g_of_phi_repeatedly_within_0_1(tiny_inverter):
    G, phi = tiny_inverter
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = ds.reencode(G, phi, images, 3)
    assert len(out) == 3 and all(y.shape == images.shape for y in out)
    assert all(float(y.min()) >= 0 and float(y.max()) <= 1 for y in out)
    with torch.no_grad():
        y1 = G(phi(images)).clamp(0, 1)
        y2 = G(phi(y1)).clamp(0, 1)
    assert torch.allclose(out[0], y1) and torch.allclose(out[1], y2)
    assert torch.equal(ds.invert(G, phi, images).clamp(0, 1), out[0])


def test_interpolate_has_the_endpoints_g_of_phi_a_and_g_of_phi_b(tiny_inverter):
    G, phi = tiny_inverter
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(1, 3, 16, 16, generator=g), torch.rand(1, 3, 16, 16, generator=g)
    path = ds.interpolate(G, phi, a, b, 5)
    assert path.shape == (5, 3, 16, 16)
    with torch.no_grad():
        ga, gb = G(phi(a)).clamp(0, 1), G(phi(b)).clamp(0, 1)
        middle = G(0.5 * phi(a) + 0.5 * phi(b)).clamp(0, 1)
    assert torch.allclose(path[0:1], ga, atol=1e-6) and torch.allclose(path[4:5], gb, atol=1e-6)
    assert torch.allclose(path[2:3], middle, atol=1e-6)


def test_invert_by_optimization_lowers_the_feature_error_from_its_grey_start():
    phi = TinyPhi()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    target = phi(images)

    def feature_error(x):
        return float(((phi(x) - target).pow(2).flatten(1).sum(1) / target.pow(2).flatten(1).sum(1)).mean())

    start = (0.5 + 0.01 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    out = ds.invert_by_optimization(phi, images, steps=40, tv_weight=0.0, lr=0.05, seed=0)
    assert out.shape == images.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert feature_error(out) < 0.5 * feature_error(start)
    errors = ds.inversion_errors(out, images, phi)
    assert set(errors) == {"error_image", "error_feature"} and all(math.isfinite(v) for v in errors.values())


def test_total_variation_closed_form():
    x = torch.zeros(1, 1, 3, 3)
    x[..., :, 1:] = 1.0  # a vertical edge between columns 0 and 1
    # beta = 2: mean over the 2 x 2 grid of dx^2 + dy^2: dx = 1 in column 0, 0 in column 1
    assert float(ds.total_variation(x)) == pytest.approx(0.5)
    assert float(ds.total_variation(torch.full((1, 3, 5, 5), 0.3))) == 0.0


def test_bad_loss_names_raise_naming_the_argument(ae_config, ae_data):
    with pytest.raises(ValueError, match="losses"):
        ds.run_autoencoders(ae_config, losses=("mse",))
    with pytest.raises(ValueError, match="config.loss"):
        ds.train_autoencoder(replace(ae_config, loss="l3"), data=ae_data)
    with pytest.raises(ValueError, match="config.loss"):
        ds.train_inverter(ds.InversionConfig(**TINY_INV, loss="adv"))
    with pytest.raises(ValueError, match="config.data"):
        ds.ae_data(replace(ae_config, data="cifar10"))

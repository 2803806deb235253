import math

import pytest
import torch

from perceptlab import models
from perceptlab.course import spread
from perceptlab.models import exemplar
from perceptlab.data.datasets import DataUnavailableError

TINY = dict(images=("coins", "moon"), image_size=64, n_classes=6, patch=16, context=32, widths=(4, 8, 8),
            steps=6, batch=8, ckpt_every=2)


def test_exemplar_cnn_features_are_a_backbone_with_named_layers():
    model = models.ExemplarCNN(10, (4, 8, 16))
    assert model.backbone.layer_names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "conv3", "relu3"]
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    feats = model.backbone(x, ["relu2", "relu3"])
    assert feats["relu2"].shape == (2, 8, 16, 16) and feats["relu3"].shape == (2, 16, 8, 8)


def test_seed_contexts_keep_the_highest_gradient_patches():
    config = models.ExemplarConfig(**TINY)
    contexts = models.seed_contexts(config)
    assert contexts.shape == (6, 3, 32, 32)
    assert contexts.min() >= 0 and contexts.max() <= 1
    again = models.seed_contexts(config)
    assert torch.equal(contexts, again)


def test_augment_is_seeded_in_range_and_changes_the_patch():
    contexts = torch.rand(5, 3, 32, 32)
    a = models.augment(contexts, 16, torch.Generator().manual_seed(1))
    b = models.augment(contexts, 16, torch.Generator().manual_seed(1))
    c = models.augment(contexts, 16, torch.Generator().manual_seed(2))
    assert a.shape == (5, 3, 16, 16)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_augment_keeps_a_constant_grey_patch_grey():
    """Geometry cannot change a constant image and hue/saturation leave greys alone:
    only brightness and contrast act, and they keep R = G = B."""
    grey = torch.full((4, 3, 32, 32), 0.4)
    out = models.augment(grey, 16, torch.Generator().manual_seed(0))
    assert torch.allclose(out[:, 0], out[:, 1], atol=1e-5) and torch.allclose(out[:, 1], out[:, 2], atol=1e-5)
    assert torch.allclose(out, out.mean(dim=(1, 2, 3), keepdim=True).expand_as(out), atol=1e-5)


def test_config_key_changes_with_the_config():
    a = exemplar.config_key(models.ExemplarConfig())
    assert a == exemplar.config_key(models.ExemplarConfig())
    assert a != exemplar.config_key(models.ExemplarConfig(steps=301))


def test_training_resumes_exactly_after_an_interruption(tmp_path):
    config = models.ExemplarConfig(**TINY)
    full, _ = models.train_exemplar_cnn(config, out_dir=tmp_path / "a")
    models.train_exemplar_cnn(config, out_dir=tmp_path / "b", stop_after=3)
    resumed, meta = models.train_exemplar_cnn(config, out_dir=tmp_path / "b")
    assert meta["steps_done"] == config.steps
    for (k, v), (_, w) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(v, w), k


def test_exemplar_cnn_is_cached_and_reloaded_without_training(empty_data_dir, monkeypatch):
    config = models.ExemplarConfig(**TINY)
    net = models.exemplar_cnn(config)
    assert isinstance(net, models.Backbone)
    assert "Exemplar-CNN trained here" in net.weights_label and "6 surrogate classes" in net.weights_label
    assert (exemplar.cache_path(config) / "model.pt").exists()
    assert not any(p.requires_grad for p in net.parameters())

    def no_training(*args, **kwargs):
        raise AssertionError("a cached comparator must not be trained again")

    monkeypatch.setattr(exemplar, "train_exemplar_cnn", no_training)
    again = models.exemplar_cnn(config)
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert again.meta["steps_done"] == config.steps
    with pytest.raises(AssertionError, match="must not be trained"):
        models.exemplar_cnn(config, retrain=True)


def test_full_preset_code_path_runs_on_an_stl10_stand_in(stl10_stand_in):
    stl10_stand_in(n_unlabeled=5)
    config = models.ExemplarConfig.for_preset("full", n_classes=6, n_source=5, widths=(4, 8, 8), steps=2,
                                                   batch=4, patch=16, context=32)
    assert config.data == "stl10"
    model, meta = models.train_exemplar_cnn(config)
    assert meta["steps_done"] == 2 and math.isfinite(meta["final_loss"])


def test_full_preset_without_stl10_fails_fast_with_instructions(empty_data_dir):
    config = models.ExemplarConfig.for_preset("full")
    with pytest.raises(DataUnavailableError):
        models.seed_contexts(config)


def test_unknown_data_source_raises():
    with pytest.raises(ValueError, match="config.data"):
        models.seed_contexts(models.ExemplarConfig(data="imagenet"))


# --------------------------------------------------------------------------- the acceptance test


@pytest.fixture(scope="module")
def quick_comparator():
    """The quick-preset Exemplar-CNN with its fixed seed, from the library's own disk cache.

    On a fresh machine (CI) this trains it (about a minute on two cores) and leaves it in
    the cache, where the book's notebooks find it; the training itself is deterministic
    (see the exact-resume test), so a cached copy is the same network.
    """
    return models.exemplar_cnn()


def test_quick_comparator_learns_its_surrogate_task_and_beats_l2_on_the_equal_mse_part(quick_comparator):
    """Done-when of the Chapter 2 issue: the quick Exemplar-CNN learns its surrogate task (far above
    chance, the loss falls), and on the synthetic 2AFC (seed 0) L2 passes part (i) and sits at 1/2 on
    the equal-MSE part, where the Exemplar-CNN distance beats it.  Bounds from the spread over seeds
    (perceptlab.course.spread.OUTCOMES["exemplar"]; seeds 0-4 x 1, 2 threads: surrogate accuracy 0.25 +- 0.03
    (min 0.21, chance 0.005), last-20 loss 2.88 +- 0.17 against 5.30 at the start, Exemplar-CNN
    equal-MSE score 0.72 +- 0.02 (min 0.70), its interval's low end at least 0.636, L2 exactly 1 and 1/2)."""
    assert quick_comparator.meta["steps_done"] == models.ExemplarConfig().steps
    assert spread.failed_checks("exemplar", spread.exemplar_metrics(quick_comparator)) == []

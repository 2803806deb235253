"""The quick preset's feature network: a small CNN trained here on scikit-learn's digits, trained once
and cached, and the choice of extractor per preset.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.config import PresetConfig, cache_dir, check_device, default_seed
from perceptlab.config import preset as active_preset
from perceptlab.data.images import load_digits
from perceptlab.imaging.convert import to_gray
from perceptlab.models.inception import InceptionFeatures
from perceptlab.train import classification_step, fit, train_once
from perceptlab.train import config_key as train_config_key
from perceptlab.validate import check_image

#: Bump when the training procedure changes, so stale cached weights are not reused.
VERSION = 1


N_CLASSES = 10


@dataclass
class DigitsClassifierConfig(PresetConfig):
    """The quick preset's feature network: a small CNN trained on scikit-learn's digits.

    The same in both presets (``FULL`` is empty): the full preset measures in Inception space.
    ``n_test`` digits (a seeded random split) are held out and give the reported test accuracy.
    Training draws batches of the other digits, each shifted by up to ``max_shift`` pixels.
    """

    FULL: ClassVar[dict] = {}

    size: int = 32
    widths: tuple[int, int, int] = (8, 16, 32)
    feature_dim: int = 64
    n_test: int = 360
    steps: int = 400
    batch: int = 64
    lr: float = 2e-3
    max_shift: int = 2
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 100


class DigitsClassifier(nn.Module):
    """conv3-pool x3, then a fully connected layer to ``feature_dim`` (+ReLU): the features; a linear head to 10 classes."""

    def __init__(self, size: int = 32, widths: tuple[int, int, int] = (8, 16, 32), feature_dim: int = 64):
        super().__init__()
        if size % 8:
            raise ValueError(f"size must be a multiple of 8, got {size}")
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, w1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(w3 * (size // 8) ** 2, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def digits_split(config: DigitsClassifierConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_images, train_labels, test_images, test_labels): a seeded split of the 1797 digits."""
    images, labels = load_digits(config.size)
    if not 0 < config.n_test < len(labels):
        raise ValueError(f"config.n_test must be between 1 and {len(labels) - 1}, got {config.n_test}")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    test, train = perm[: config.n_test], perm[config.n_test:]
    return images[train], labels[train], images[test], labels[test]


def shift_batch(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift]^2, filling with 0 (background)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=g).tolist()
    return torch.stack([padded[i, :, dy: dy + h, dx: dx + w] for i, (dy, dx) in enumerate(offsets)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    """Fraction of ``images`` whose argmax class is the label."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(images.split(batch), labels.split(batch)))
    model.train(was_training)
    return correct / len(labels)


def config_key(config: DigitsClassifierConfig) -> str:
    """A short hash of the configuration and :data:`VERSION` naming the cache folder."""
    return train_config_key(config, VERSION)


def cache_path(config: DigitsClassifierConfig) -> Path:
    return cache_dir() / "extractors" / f"digits_classifier-{config_key(config)}"


def train_digits_classifier(config: DigitsClassifierConfig, device: str | torch.device = "cpu",
                            out_dir: str | Path | None = None, stop_after: int | None = None
                            ) -> tuple[DigitsClassifier, dict]:
    """Train the digits classifier with :func:`perceptlab.train.fit` (checkpoints to ``out_dir``, exact resume).

    Adam with a one-cycle schedule, cross-entropy, batches drawn with replacement from the
    training split and randomly shifted.  Returns (model, meta); ``meta["test_accuracy"]`` is
    measured on the held-out split.
    """
    device = check_device(device)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = (t.to(device) for t in digits_split(config))
    torch.manual_seed(config.seed)
    model = DigitsClassifier(config.size, config.widths, config.feature_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(config.steps, 1))

    def sample(g: torch.Generator, step: int):
        idx = torch.randint(len(y_train), (config.batch,), generator=g).to(device)
        return shift_batch(x_train[idx], config.max_shift, g), y_train[idx]

    history = fit(classification_step(model, opt, sched), sample, state={"model": model, "opt": opt, "sched": sched}, steps=config.steps,
                  seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, stop_after=stop_after,
                  eval_fn=lambda step: {"test_accuracy": accuracy(model, x_test, y_test)},
                  desc="digits classifier")
    model.eval()
    meta = {"train_seconds": time.perf_counter() - start,
            "steps_done": history.records[-1]["step"] if history.records else 0,
            "final_loss": history.last("loss") if history.records else float("nan"),
            "test_accuracy": accuracy(model, x_test, y_test), "n_train": len(y_train), "n_test": len(y_test),
            "config": asdict(config), "version": VERSION, "history": history.records}
    return model.cpu(), meta


class DigitsFeatures(nn.Module):
    """The digits classifier's penultimate layer as a feature extractor: (N, C, H, W) -> (N, feature_dim).

    Inputs: (N, 1, H, W) or (N, 3, H, W) in [0, 1], white digits on black as in ``load_digits``.
    RGB images are converted to grey (BT.709 luminance, :func:`perceptlab.data.to_gray`); images
    whose size is not ``config.size`` are resized to it (bilinear, antialiased when shrinking),
    e.g. 28x28 MNIST.  Features are the ReLU outputs of the layer before the classifier (the
    analogue of Inception's pool3), so dead units give zero-variance coordinates and singular
    covariances, which :func:`perceptlab.metrics.frechet_distance` handles.
    ``label`` reads "digits classifier trained here (test accuracy X, ...)"; ``meta`` holds the
    training record.
    """

    def __init__(self, model: DigitsClassifier, config: DigitsClassifierConfig, meta: dict):
        super().__init__()
        self.model = model
        self.config = config
        self.meta = meta
        self.dim = config.feature_dim
        self.test_accuracy = float(meta["test_accuracy"])
        self.label = (f"digits classifier trained here (test accuracy {self.test_accuracy:.3f} on "
                      f"{meta['n_test']} held-out sklearn digits; {config.feature_dim}-d penultimate layer, "
                      f"{config.size}x{config.size} grey inputs)")
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "x", channels=(1, 3))
        x = to_gray(x)
        size = self.config.size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        with torch.no_grad():
            return self.model.features(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10) of the same pre-processed inputs (e.g. to check generated digits)."""
        with torch.no_grad():
            return self.model.head(self(x))

    def train(self, mode: bool = True) -> DigitsFeatures:
        return super().train(False)

    def extra_repr(self) -> str:
        return self.label


def digits_classifier(config: DigitsClassifierConfig | None = None, cache: bool = True,
                      device: str | torch.device = "cpu", retrain: bool = False) -> DigitsFeatures:
    """The quick preset's extractor (:class:`DigitsFeatures`), trained once and cached.

    With ``cache=True`` the weights live in ``<cache_dir>/extractors/digits_classifier-<key>/model.pt``
    (``key`` hashes the config); a later call loads them without training.  An interrupted
    training resumes from ``checkpoint.pt`` in the same folder.  Training takes seconds on a CPU.
    """
    config = config or DigitsClassifierConfig()
    device = check_device(device)  # fails at once on a machine without the requested accelerator
    model, meta = train_once(cache_path(config),
                             lambda: DigitsClassifier(config.size, config.widths, config.feature_dim),
                             lambda out_dir: train_digits_classifier(config, device, out_dir=out_dir),
                             cache=cache, retrain=retrain, config=asdict(config))
    return DigitsFeatures(model, config, meta).to(device)  # on the requested device, cached or not


def extractor_for_preset(preset: str | None = None, *, inception_weights: str | Path = "imagenet",
                         **kwargs) -> nn.Module:
    """The preset's extractor: quick -> :func:`digits_classifier`, full -> :class:`InceptionFeatures`.

    ``inception_weights`` picks the full preset's weights ("imagenet" by default; "fid" for scores
    comparable with published FIDs); ``kwargs`` go to the chosen constructor.
    """
    if active_preset(preset) == "quick":
        return digits_classifier(**kwargs)
    return InceptionFeatures(inception_weights, **kwargs)

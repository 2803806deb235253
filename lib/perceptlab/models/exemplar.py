"""Comparators trained by the library itself: an Exemplar-CNN (Dosovitskiy et al. 2014).

DeePSiM (Dosovitskiy & Brox 2016) compares images in the feature space of a
"comparator" network; besides AlexNet trained on ImageNet, it uses an
*unsupervised* one, the Exemplar-CNN.  Its training needs no labels:

1. cut N "seed" patches from unlabelled images, where there is considerable gradient;
2. make each seed patch a *surrogate class* whose members are heavily augmented
   copies of it: translation, scaling, rotation, brightness, contrast, saturation, hue;
3. train a CNN to tell the N classes apart.

The network must become invariant to the augmentations (they do not change the class)
while still telling different patches apart, so its features ignore brightness,
contrast and small geometric changes but keep local structure: a useful trait for
comparing images.  Blur and noise are *not* among the augmentations.

Quick preset: 200 classes from bundled images (none of which the synthetic 2AFC
references use), a small 3-layer CNN, about a minute of CPU.  Full preset: the paper's
STL-10 unlabelled images and 16000 classes.  The trained weights are cached on disk,
keyed by the configuration, and training resumes from checkpoints.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.config import PresetConfig, cache_dir, check_device, default_seed
from perceptlab.data.datasets import load_dataset
from perceptlab.data.images import load_image, random_crops
from perceptlab.imaging.filters import gradient_magnitude
from perceptlab.models.backbones import Backbone, _sequential_names
from perceptlab.train import classification_step, fit, train_once
from perceptlab.train import config_key as train_config_key

#: Bump when the training procedure changes, so stale cached weights are not reused.
VERSION = 1
#: Bundled images the quick comparator learns from (disjoint from ``twoafc.TWOAFC_IMAGES``).
COMPARATOR_IMAGES = ("china", "flower", "hubble_deep_field", "immunohistochemistry", "retina",
                     "coins", "moon", "grass", "clock", "text")


@dataclass
class ExemplarConfig(PresetConfig):
    """Sizes and data of Exemplar-CNN training (quick defaults; ``FULL`` follows the paper's STL-10 set-up)."""

    FULL: ClassVar[dict] = dict(data="stl10", n_classes=16000, n_source=16000, widths=(64, 128, 256),
                                steps=30000, batch=256)

    data: str = "bundled"  # "bundled" or "stl10"
    images: tuple[str, ...] = COMPARATOR_IMAGES
    image_size: int = 256
    n_classes: int = 200
    n_source: int = 96  # stl10: how many unlabelled images the seed patches come from
    patch: int = 32
    context: int = 64  # seed patches are cut with this much context, so augmentations need no padding
    widths: tuple[int, int, int] = (32, 64, 128)
    steps: int = 450
    batch: int = 64
    lr: float = 2e-3
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 100


class ExemplarCNN(nn.Module):
    """conv5-pool-conv3-pool-conv3 features (a :class:`Backbone` with layers conv1..relu3) and a linear head."""

    def __init__(self, n_classes: int, widths: tuple[int, int, int] = (32, 64, 128)):
        super().__init__()
        w1, w2, w3 = widths
        features = nn.Sequential(
            nn.Conv2d(3, w1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(),
        )
        self.backbone = Backbone("exemplar_cnn", features, _sequential_names(features, blocks=False),
                                 weights_label="untrained")
        self.head = nn.Linear(w3, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.backbone(x, ["relu3"])["relu3"]
        return self.head(h.mean(dim=(2, 3)))


# --------------------------------------------------------------------------- surrogate classes


def seed_contexts(config: ExemplarConfig) -> torch.Tensor:
    """(n_classes, 3, context, context) crops whose central ``patch`` has high gradient.

    Draws 4 x n_classes random crops and keeps the n_classes with the largest mean
    gradient magnitude of the central patch (the paper samples "regions containing
    considerable gradients").
    """
    g = torch.Generator().manual_seed(config.seed)
    if config.data == "bundled":
        images = torch.cat([load_image(n, size=config.image_size).expand(-1, 3, -1, -1) for n in config.images])
    elif config.data == "stl10":
        unlabeled = load_dataset("stl10", "unlabeled")
        idx = torch.randperm(len(unlabeled), generator=g)[: config.n_source]
        images = torch.stack([unlabeled[i][0] for i in idx.tolist()])
    else:
        raise ValueError(f"config.data must be 'bundled' or 'stl10', got {config.data!r}")
    candidates = random_crops(images, config.context, 4 * config.n_classes, g)
    m = (config.context - config.patch) // 2
    strength = gradient_magnitude(candidates[..., m: m + config.patch, m: m + config.patch])
    return candidates[strength.argsort(descending=True)[: config.n_classes]]


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _log_uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return torch.exp(_uniform(n, math.log(lo), math.log(hi), g))


def augment(contexts: torch.Tensor, patch: int, g: torch.Generator) -> torch.Tensor:
    """One random transformation of each context's central patch (Dosovitskiy et al. 2014, Sec. 2).

    Geometry (one affine warp, bilinear): translation up to 0.2 of the patch size,
    scale in [0.7, 1.4], rotation up to 20 degrees.  Photometry: brightness x[0.7, 1.4] + [-0.1, 0.1],
    contrast and saturation factors log-uniform in [0.5, 2] and [0.3, 2], hue rotation up to
    0.1 turn (in the YIQ chroma plane).  Returns (N, 3, patch, patch) in [0, 1].
    """
    n, _, size, _ = contexts.shape
    half = patch / size  # the patch's half-width in the context's normalised coordinates
    scale = _log_uniform(n, 0.7, 1.4, g)
    angle = _uniform(n, -math.pi / 9, math.pi / 9, g)
    shift = _uniform(2 * n, -0.2, 0.2, g).view(n, 2) * 2 * half
    cos, sin = torch.cos(angle) * half / scale, torch.sin(angle) * half / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(contexts), [n, 3, patch, patch], align_corners=False)
    x = F.grid_sample(contexts, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    x = x * _uniform(n, 0.7, 1.4, g).view(n, 1, 1, 1).to(x) + _uniform(n, -0.1, 0.1, g).view(n, 1, 1, 1).to(x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + _log_uniform(n, 0.5, 2.0, g).view(n, 1, 1, 1).to(x) * (x - mean)
    # saturation and hue in YIQ: scale and rotate the chroma (I, Q) plane, keep luminance Y
    rgb2yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]).to(x)
    yiq = torch.einsum("ij,njhw->nihw", rgb2yiq, x)
    sat = _log_uniform(n, 0.3, 2.0, g).to(x)
    hue = _uniform(n, -0.2 * math.pi, 0.2 * math.pi, g).to(x)
    i, q = yiq[:, 1], yiq[:, 2]
    c, s = (torch.cos(hue) * sat).view(n, 1, 1), (torch.sin(hue) * sat).view(n, 1, 1)
    yiq = torch.stack([yiq[:, 0], c * i - s * q, s * i + c * q], 1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(rgb2yiq), yiq).clamp(0, 1)


# --------------------------------------------------------------------------- training and cache


def config_key(config: ExemplarConfig) -> str:
    """A short hash of the configuration and :data:`VERSION` naming the cache folder."""
    return train_config_key(config, VERSION)


def cache_path(config: ExemplarConfig) -> Path:
    return cache_dir() / "comparators" / f"exemplar_cnn-{config_key(config)}"


def train_exemplar_cnn(config: ExemplarConfig, device: str | torch.device = "cpu", out_dir: str | Path | None = None,
                       stop_after: int | None = None) -> tuple[ExemplarCNN, dict]:
    """Train an Exemplar-CNN; checkpoints to ``out_dir`` and resumes exactly. Returns (model, meta)."""
    device = check_device(device)
    start = time.perf_counter()
    contexts = seed_contexts(config).to(device)
    torch.manual_seed(config.seed)
    model = ExemplarCNN(config.n_classes, config.widths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(config.steps, 1))

    def sample(g: torch.Generator, step: int):
        labels = torch.randint(config.n_classes, (config.batch,), generator=g)
        return augment(contexts[labels.to(device)], config.patch, g), labels.to(device)

    history = fit(classification_step(model, opt, sched), sample, state={"model": model, "opt": opt, "sched": sched}, steps=config.steps,
                  seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, stop_after=stop_after,
                  desc="Exemplar-CNN")
    model.eval()
    with torch.no_grad():  # surrogate-task accuracy on fresh augmentations
        g = torch.Generator().manual_seed(config.seed + 12345)
        labels = torch.arange(config.n_classes).repeat(4)
        correct = sum(int((model(augment(contexts[chunk.to(device)], config.patch, g)).argmax(1).cpu() == chunk).sum())
                      for chunk in labels.split(512))
    meta = {"train_seconds": time.perf_counter() - start, "steps_done": history.records[-1]["step"] if history.records else 0,
            "final_loss": history.last("loss") if history.records else float("nan"),
            "heldout_accuracy": correct / len(labels), "config": asdict(config), "version": VERSION,
            "history": history.records}
    return model, meta


def _as_backbone(model: ExemplarCNN, config: ExemplarConfig, meta: dict) -> Backbone:
    net = model.backbone.cpu()
    source = "bundled images" if config.data == "bundled" else "STL-10 unlabelled"
    net.weights_label = f"Exemplar-CNN trained here ({config.n_classes} surrogate classes from {source}, {config.steps} steps)"
    net.meta = meta
    net.eval()
    net.requires_grad_(False)
    return net


def exemplar_cnn(config: ExemplarConfig | None = None, cache: bool = True, device: str | torch.device = "cpu",
                 retrain: bool = False) -> Backbone:
    """The Exemplar-CNN comparator as a :class:`Backbone` (layers conv1 ... relu3), trained once and cached.

    With ``cache=True`` the weights live in ``<cache_dir>/comparators/exemplar_cnn-<key>/model.pt``
    (``key`` hashes the config); a later call loads them in a second.  An interrupted training
    resumes from ``checkpoint.pt`` in the same folder.  ``backbone.meta`` holds the training time,
    surrogate accuracy and history; ``backbone.weights_label`` says what was trained on what.
    """
    config = config or ExemplarConfig()
    device = check_device(device)  # fails at once on a machine without the requested accelerator
    model, meta = train_once(cache_path(config), lambda: ExemplarCNN(config.n_classes, config.widths),
                             lambda out_dir: train_exemplar_cnn(config, device, out_dir=out_dir),
                             cache=cache, retrain=retrain, config=asdict(config))
    return _as_backbone(model, config, meta)

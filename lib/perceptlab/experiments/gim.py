"""GIM experiments (Chapters 1 and 2): shifted crops of one image, averaged under pixel and perceptual losses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from perceptlab.config import PresetConfig
from perceptlab.data.images import load_image
from perceptlab.gim import generalized_mean, shifted_crops
from perceptlab.losses.pixel import ssim
from perceptlab.metrics.sharpness import relative_sharpness


@dataclass
class GIMConfig(PresetConfig):
    """GIM on slightly shifted crops of one bundled image (Amir & Weiss 2021, Fig. 1B)."""

    FULL: ClassVar[dict] = dict(image_size=512, crop=384, max_shift=24, n=64, steps=2000)

    image: str = "astronaut"
    image_size: int = 192
    crop: int = 128
    max_shift: int = 8
    n: int = 15  # odd: the pixel median is unique
    steps: int = 300
    lr: float = 0.05
    losses: tuple[str, ...] = ("l2", "l1")
    seed: int = 0
    init: str = "grey"  # the starting image: "grey" (uniform 0.5) or "mean" (the targets' pixel mean)


@dataclass
class PerceptualGIMConfig(GIMConfig):
    """GIM under perceptual losses (Chapter 2): the pixel losses next to feature distances.

    Quick: offline distances (random VGG16, the Exemplar-CNN trained here) on smaller crops.
    Full: adds ImageNet VGG16 and LPIPS, on the full-size crops of :class:`GIMConfig`.
    """

    FULL: ClassVar[dict] = dict(image_size=512, crop=384, max_shift=24, n=64, steps=1000,
                                losses=("l2", "ssim", "vgg-random-norm", "exemplar-norm", "vgg-imagenet",
                                        "lpips-vgg"))

    image_size: int = 112
    crop: int = 64
    max_shift: int = 6
    steps: int = 200
    losses: tuple[str, ...] = ("l2", "ssim", "vgg-random", "vgg-random-norm", "vgg-random-zm-norm", "exemplar-norm")


def run_gim(config: GIMConfig, device: str | torch.device = "cpu") -> dict:
    """Run GIM for each loss from ``config.init``. Returns targets, the pixel mean/median, each solution, its
    sharpness and its mean SSIM to the targets."""
    if config.init not in ("grey", "mean"):
        raise ValueError(f"config.init must be 'grey' or 'mean', got {config.init!r}")
    image = load_image(config.image, size=config.image_size)
    targets = shifted_crops(image, config.crop, config.max_shift, config.n, config.seed).to(device)
    mean = targets.mean(0, keepdim=True)
    solutions = {name: generalized_mean(targets, name, config.steps, config.lr,
                                        init=mean if config.init == "mean" else None).cpu()
                 for name in config.losses}
    targets, mean = targets.cpu(), mean.cpu()
    sharp = {name: relative_sharpness(sol, targets) for name, sol in solutions.items()}
    structure = {name: float(ssim(sol.expand(len(targets), -1, -1, -1), targets))
                 for name, sol in [("mean", mean)] + list(solutions.items())}
    return {
        "targets": targets,
        "mean": mean,
        "median": targets.median(0, keepdim=True).values,
        "solutions": solutions,
        "sharpness": sharp,
        "ssim": structure,
        "metrics": {**{f"sharpness_{k}": v for k, v in sharp.items()}, **{f"ssim_{k}": v for k, v in structure.items()}},
    }

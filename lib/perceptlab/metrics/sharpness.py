"""Sharpness measures: the high-frequency fraction of the power spectrum, and either measure relative
to a set of reference images.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from perceptlab.imaging.convert import to_gray
from perceptlab.imaging.filters import gradient_magnitude
from perceptlab.validate import check_image


def high_frequency_fraction(images: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Fraction of each image's (mean-removed) luminance power above ``cutoff`` cycles/pixel, shape (N,).

    Radial frequency is measured in cycles per pixel (Nyquist is 0.5).
    """
    check_image(images, "images", channels=(1, 3))
    g = to_gray(images)[:, 0]
    g = g - g.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(g).abs().pow(2)
    fy = torch.fft.fftfreq(g.shape[-2]).view(-1, 1)
    fx = torch.fft.fftfreq(g.shape[-1]).view(1, -1)
    high = (fy ** 2 + fx ** 2).sqrt() > cutoff
    total = power.flatten(1).sum(1).clamp_min(1e-20)
    return (power * high).flatten(1).sum(1) / total


def relative_sharpness(x: torch.Tensor, targets: torch.Tensor,
                       measure: Callable[[torch.Tensor], torch.Tensor] = gradient_magnitude) -> float:
    """``measure(x)`` over the mean of ``measure(targets)``: 1 is as sharp as the targets, below 1 blurrier."""
    return float(measure(x).mean() / measure(targets).mean().clamp_min(1e-12))

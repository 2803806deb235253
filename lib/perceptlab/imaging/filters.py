"""Linear filters on images: Gaussian taps and the separable Gaussian blur, and the gradient magnitude.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from perceptlab.imaging.convert import to_gray
from perceptlab.validate import check_image


def gaussian_taps(sigma: float, radius: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps g_t = exp(-t^2 / 2 sigma^2) / sum_t g_t, t = -radius..radius (computed in float64)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def gaussian_window(sigma: float, truncate: float = 4.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """:func:`gaussian_taps` with scipy.ndimage's radius rule r = int(truncate sigma + 0.5).

    SSIM uses truncate 3.5, so that sigma 1.5 gives the 11 taps of Wang et al. (2004).
    """
    return gaussian_taps(sigma, int(truncate * sigma + 0.5), dtype, device)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images: taps of radius max(1, ceil(3 sigma)), reflect padding.

    ``sigma`` <= 0 returns the images unchanged.
    """
    if sigma <= 0:
        return images
    r = max(1, math.ceil(3 * sigma))
    k = gaussian_taps(sigma, r, images.dtype, images.device)
    c = images.shape[1]
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of each image's luminance: mean sqrt(dx^2 + dy^2), shape (N,).

    Forward differences over the interior; a sharp image scores higher than its blurred copy.
    """
    check_image(images, "images", channels=(1, 3))
    g = to_gray(images)[:, 0]
    dx = g[:, :-1, 1:] - g[:, :-1, :-1]
    dy = g[:, 1:, :-1] - g[:, :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy).flatten(1).mean(1)

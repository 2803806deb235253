"""Distances between the pixel-value distributions of two image sets (a cheap check that a generator
learned the data's intensity histogram).
"""
from __future__ import annotations

import torch

from perceptlab.validate import check_image


def pixel_w1(x: torch.Tensor, y: torch.Tensor, n_quantiles: int = 256) -> float:
    """Wasserstein-1 distance between the pixel-value distributions of two image batches.

    W1 = integral_0^1 abs(F_x^{-1}(u) - F_y^{-1}(u)) du, approximated at ``n_quantiles`` quantile
    levels: a cheap sanity check that a generator gets the data's intensity histogram right
    (e.g. digits: mostly black background, some white strokes).  It ignores all spatial
    structure, so it is no substitute for FID.  Images in [0, 1] of any (equal) channel count.
    """
    check_image(x, "x")
    check_image(y, "y")
    u = torch.linspace(0, 1, n_quantiles, dtype=torch.float64)
    qx = torch.quantile(_subsample(x), u)
    qy = torch.quantile(_subsample(y), u)
    return float((qx - qy).abs().mean())


def _subsample(x: torch.Tensor, limit: int = 1 << 22) -> torch.Tensor:
    flat = x.detach().flatten().double().cpu()
    return flat[:: max(1, flat.numel() // limit)]  # torch.quantile refuses inputs above 2^24 elements

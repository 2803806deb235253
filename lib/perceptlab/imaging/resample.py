"""Resampling: bilinear/nearest resizing (with or without antialiasing), the box downsampling and
bicubic upsampling of the super-resolution experiment.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from perceptlab.validate import check_image


def resize(images: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear",
           antialias: bool = True) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``size``; the result is clamped to [0, 1].

    ``mode``: "bilinear" (the default; ``antialias`` low-pass filters first when shrinking, as PIL
    does), "bicubic" or "nearest" (no antialiasing).  Which one is used matters more than one would
    think: Parmar et al. (2022) found FIDs in the literature to depend on it.
    """
    check_image(images, "images")
    if mode not in ("bilinear", "bicubic", "nearest"):
        raise ValueError(f"mode must be 'bilinear', 'bicubic' or 'nearest', got {mode!r}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if mode == "nearest":
        return F.interpolate(images, size=size, mode="nearest")
    return F.interpolate(images, size=size, mode=mode, align_corners=False, antialias=antialias).clamp(0, 1)


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Average-pool (N, C, H, W) images by ``scale`` (the degradation: box filter + subsampling)."""
    check_image(hr, "hr")
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"hr height and width must be multiples of scale={scale}, got {tuple(hr.shape[-2:])}")
    return F.avg_pool2d(hr, scale)


def upsample_bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling by ``scale``, clamped to [0, 1] (the classical baseline)."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)

"""Resampling: torch's resizing (bilinear, bicubic, area, nearest; with or without antialiasing), PIL's
resizing (the reference of clean-fid), the box downsampling and bicubic upsampling of the
super-resolution experiment.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from perceptlab.validate import check_image


def resize(images: torch.Tensor, size: int | tuple[int, int], mode: str = "bilinear",
           antialias: bool = True) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``size``; the result is clamped to [0, 1].

    ``mode``: "bilinear" (the default; ``antialias`` low-pass filters first when shrinking, as PIL
    does), "bicubic" (likewise), "area" (averages the covered input pixels) or "nearest" (the last
    two ignore ``antialias``).  Which one is used matters more than one would think: Parmar et al.
    (2022) found FIDs in the literature to depend on it; :func:`pil_resize` is their reference.
    """
    check_image(images, "images")
    if mode not in ("bilinear", "bicubic", "area", "nearest"):
        raise ValueError(f"mode must be 'bilinear', 'bicubic', 'area' or 'nearest', got {mode!r}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    if mode in ("nearest", "area"):
        return F.interpolate(images, size=size, mode=mode)
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


#: PIL's resampling filters by name.
PIL_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")


def pil_resize(images: torch.Tensor, size: int | tuple[int, int], method: str = "bicubic") -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``size`` with PIL, each channel as a 32-bit float image
    (mode "F", no 8-bit rounding), as clean-fid does (Parmar et al. 2022): PIL's filters scale their
    support with the shrink factor, so they antialias when shrinking.  ``method``: one of
    :data:`PIL_FILTERS`.  Returns float32, clamped to [0, 1].
    """
    from PIL import Image

    check_image(images, "images")
    if method not in PIL_FILTERS:
        raise ValueError(f"method must be one of {PIL_FILTERS}, got {method!r}")
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    resample = getattr(Image.Resampling, method.upper())
    arrays = images.detach().cpu().float().numpy()
    out = [[np.asarray(Image.fromarray(channel, mode="F").resize((w, h), resample=resample)) for channel in image]
           for image in arrays]
    return torch.from_numpy(np.array(out, dtype=np.float32)).clamp(0, 1).to(images.device)

"""Conversions between image representations: PIL/numpy/uint8 <-> float tensors (N, C, H, W) in [0, 1],
luminance, aspect-ratio crops.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from perceptlab.validate import check_image


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """Convert an (H, W) or (H, W, C) uint8/bool/float array to a (1, C, H, W) float tensor in [0, 1]."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"array must have shape (H, W) or (H, W, C), got {arr.shape}")
    arr = arr[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0).clamp(0, 1)


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file with PIL as a (1, 3, H, W) float tensor in [0, 1] (``torchvision.io`` is not used)."""
    from PIL import Image

    with Image.open(path) as im:
        return to_tensor(np.asarray(im.convert("RGB")))


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """Convert a (C, H, W) or (1, C, H, W) tensor to an (H, W) or (H, W, C) float array for plotting."""
    x = image.detach().cpu()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"image must hold a single image, got shape {tuple(x.shape)}")
        x = x[0]
    if x.dim() == 3:
        x = x.permute(1, 2, 0)
        if x.shape[-1] == 1:
            x = x[..., 0]
    return x.numpy()


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """Luminance of (N, 3, H, W) images with the BT.709 weights ``skimage.color.rgb2gray`` uses."""
    check_image(images, "images", channels=(1, 3))
    if images.shape[1] == 1:
        return images
    w = images.new_tensor([0.2125, 0.7154, 0.0721]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def center_crop_to_aspect(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Centre-crop (N, C, H, W) images to the aspect ratio of ``size``."""
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = images.shape[-2:]
    if h * tw > w * th:  # too tall
        nh = round(w * th / tw)
        top = (h - nh) // 2
        return images[..., top: top + nh, :]
    nw = round(h * tw / th)
    left = (w - nw) // 2
    return images[..., :, left: left + nw]


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] float images -> uint8 (rounded), the form sample grids are stored and written in."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (values 0..255) -> float32 in [0, 1]; float images are returned unchanged."""
    return images.float() / 255 if images.dtype == torch.uint8 else images


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """Tile (N, C, H, W) images into one (C, H', W') image, ``nrow`` images per row."""
    check_image(images, "images")
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    rows = (n + ncol - 1) // ncol
    grid = images.new_full((c, rows * (h + pad) + pad, ncol * (w + pad) + pad), pad_value)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, top: top + h, left: left + w] = images[i]
    return grid

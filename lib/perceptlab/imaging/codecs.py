"""Lossy and lossless codecs: a JPEG round trip through PIL, and PNG grids of images.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from perceptlab.imaging.convert import image_grid, to_float, to_numpy, to_tensor, to_uint8
from perceptlab.validate import check_image


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """JPEG-compress each of the (N, C, H, W) images (C = 1 or 3, in [0, 1]) at ``quality`` (1-95, lower is
    stronger) with PIL and decode it; grey images stay grey (PIL's "L" mode), colour ones RGB."""
    from PIL import Image

    check_image(images, "images", channels=(1, 3))
    out = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray((to_numpy(im[None]) * 255).round().astype(np.uint8)).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out.append(to_tensor(np.asarray(Image.open(buf).convert("RGB" if im.shape[0] == 3 else "L")))[0])
    return torch.stack(out).to(images)


def save_png(images: torch.Tensor, path: str | Path, nrow: int = 8) -> Path:
    """Write (N, C, H, W) images in [0, 1] (or uint8) as one grid PNG; returns the path."""
    from PIL import Image

    grid = to_uint8(image_grid(to_float(images).detach().cpu().clamp(0, 1), nrow=nrow))
    array = grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path)
    return path

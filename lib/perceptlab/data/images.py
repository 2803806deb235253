"""Bundled images (scikit-image, scikit-learn) and patches cut from them: the offline data of the quick preset.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from perceptlab.data.datasets import DataUnavailableError
from perceptlab.imaging.convert import center_crop_to_aspect, to_gray, to_tensor
from perceptlab.imaging.resample import resize
from perceptlab.validate import check_image, check_positive_int

SKIMAGE_IMAGES = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "text",
    "coins", "moon", "page", "horse", "clock", "hubble_deep_field", "immunohistochemistry",
    "logo", "motorcycle_left", "retina", "cat",
)


SKLEARN_IMAGES = ("china", "flower")


def load_image(name: str, size: int | tuple[int, int] | None = None, gray: bool = False) -> torch.Tensor:
    """Load one bundled image as a (1, C, H, W) float tensor in [0, 1].

    Args:
        name: a scikit-image ``skimage.data`` image shipped with the package (see
            ``SKIMAGE_IMAGES``) or a scikit-learn sample image ("china", "flower").
        size: optional output size (square int or (H, W)) after a centre crop to the target aspect.
        gray: return one luminance channel.
    """
    if name in SKLEARN_IMAGES:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    elif name in SKIMAGE_IMAGES:
        import skimage.data

        try:
            array = getattr(skimage.data, name)()
        except Exception as exc:  # e.g. an image that needs a download
            raise DataUnavailableError(
                f"scikit-image image {name!r} could not be loaded offline ({exc}); "
                f"use one shipped with the package, e.g. {', '.join(SKIMAGE_IMAGES[:9])}"
            ) from exc
    else:
        raise ValueError(f"name must be one of {SKIMAGE_IMAGES + SKLEARN_IMAGES}, got {name!r}")
    image = to_tensor(array)
    if gray:
        image = to_gray(image) if image.shape[1] == 3 else image
    if size is not None:
        image = resize(center_crop_to_aspect(image, size), size)
    return image


def load_digits(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 handwritten digits as (N, 1, size, size) images in [0, 1] and labels (N,)."""
    from sklearn.datasets import load_digits as _load

    check_positive_int(size, "size")
    bunch = _load()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def random_crops(images: torch.Tensor, size: int, n: int, generator: torch.Generator | None = None,
                 return_index: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``n`` random ``size``x``size`` crops from (N, C, H, W) images (image chosen uniformly).

    ``images`` are float in [0, 1] or uint8 (0-255, e.g. a large dataset kept compact); the crops
    are float in [0, 1] either way.  With ``return_index``, also returns each crop's source image index (n,).
    """
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got shape {tuple(images.shape)}")
    else:
        check_image(images, "images")
    check_positive_int(size, "size")
    check_positive_int(n, "n")
    H, W = images.shape[-2:]
    if size > H or size > W:
        raise ValueError(f"size must be at most the image size {(H, W)}, got {size}")
    idx = torch.randint(images.shape[0], (n,), generator=generator)
    top = torch.randint(H - size + 1, (n,), generator=generator)
    left = torch.randint(W - size + 1, (n,), generator=generator)
    crops = torch.stack([images[i, :, t: t + size, l: l + size]
                         for i, t, l in zip(idx.tolist(), top.tolist(), left.tolist())])
    if crops.dtype == torch.uint8:
        crops = crops.float() / 255.0
    return (crops, idx) if return_index else crops


class PatchDataset(torch.utils.data.Dataset):
    """A fixed, seeded set of ``n`` random patches from bundled (or given) images.

    Items are (C, size, size) tensors in [0, 1] (C = 3 unless ``gray``; greyscale
    images are repeated over 3 channels); the set is drawn once, so epochs
    and resumed runs see the same patches.
    """

    def __init__(self, images: torch.Tensor | list[str], size: int, n: int, seed: int = 0, gray: bool = False,
                 image_size: int | None = None):
        if isinstance(images, (list, tuple)):
            loaded = [load_image(name, size=image_size, gray=gray) for name in images]
            if not gray:  # greyscale images (camera, brick, ...) become 3 equal channels
                loaded = [im.expand(-1, 3, -1, -1) for im in loaded]
            if image_size is None and len({im.shape[-2:] for im in loaded}) > 1:
                raise ValueError("images of different sizes need image_size to be set")
            images = torch.cat(loaded)
        self.patches = random_crops(images, size, n, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return self.patches.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.patches[i]

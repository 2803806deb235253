"""Image operations shared by everything: conversion, resampling, filters, windows of patches, codecs.
"""
from perceptlab.imaging.convert import (
    to_tensor,
    read_image,
    to_numpy,
    to_gray,
    center_crop_to_aspect,
    to_uint8,
    to_float,
    image_grid,
)
from perceptlab.imaging.resample import (
    PIL_FILTERS,
    pil_resize,
    resize,
    downsample,
    upsample_bicubic,
)
from perceptlab.imaging.filters import (
    gaussian_taps,
    gaussian_window,
    gaussian_blur,
    gradient_magnitude,
)
from perceptlab.imaging.patches import (
    window_grid,
    patches_per_window,
    center_patches,
    window_patches,
    image_patches,
    patch_map,
    pool_windows,
    mmd2,
)
from perceptlab.imaging.codecs import (
    jpeg,
    save_png,
)

__all__ = [
    "to_tensor",
    "read_image",
    "to_numpy",
    "to_gray",
    "center_crop_to_aspect",
    "to_uint8",
    "to_float",
    "image_grid",
    "PIL_FILTERS",
    "pil_resize",
    "resize",
    "downsample",
    "upsample_bicubic",
    "gaussian_taps",
    "gaussian_window",
    "gaussian_blur",
    "gradient_magnitude",
    "window_grid",
    "patches_per_window",
    "center_patches",
    "window_patches",
    "image_patches",
    "patch_map",
    "pool_windows",
    "mmd2",
    "jpeg",
    "save_png",
]

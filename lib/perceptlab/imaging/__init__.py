"""Image operations shared by everything: conversion, resampling, filters, codecs.
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
    "resize",
    "downsample",
    "upsample_bicubic",
    "gaussian_taps",
    "gaussian_window",
    "gaussian_blur",
    "gradient_magnitude",
    "jpeg",
    "save_png",
]

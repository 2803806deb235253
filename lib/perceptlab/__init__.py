"""perceptlab: the shared library of the course *Perceptual Losses for Image Synthesis*.

Images everywhere are float tensors of shape (N, C, H, W) with values in [0, 1].
Subpackages by role (lower layers never import upper ones; ``tests/test_layers.py`` checks it):

- :mod:`perceptlab.imaging`     image operations: conversion, resampling, Gaussian blur, gradients, JPEG/PNG
- :mod:`perceptlab.data`        bundled images, the dataset registry (downloads, readers), 2AFC triplets,
  the synthetic 2AFC set
- :mod:`perceptlab.models`      backbones with named layers and a weights policy, pretrained weights,
  Inception for FID, the digits classifier and Exemplar-CNN trained here, DCGAN, the SR network
- :mod:`perceptlab.losses`      pixel losses, PSNR, SSIM, feature losses, LPIPS, adversarial losses, and
  :mod:`perceptlab.losses.registry`, the one registry of named distances
- :mod:`perceptlab.metrics`     FID/KID, 2AFC scores, bootstrap and calibration, sharpness, pixel W1
- :mod:`perceptlab.experiments` one module per experiment (config, runner), registered for
  ``python -m perceptlab run``: gim, superres, agreement, gan1d, dcgan
- :mod:`perceptlab.course`      grading, notebook reports and claims, the seed spread, the torchvision hook

and small modules: :mod:`perceptlab.config` (presets, devices, paths, seeds), :mod:`perceptlab.validate`
(argument checks), :mod:`perceptlab.train` (seeded training with checkpoints and exact resume),
:mod:`perceptlab.viz` (plots), :mod:`perceptlab.matching` (template matching, Chapter 1) and
:mod:`perceptlab.gim` (the Generalized Image Mean, Chapters 1-2).
"""
from __future__ import annotations

from . import _tvhook

_tvhook.install_import_hook()  # before anything imports torchvision (see perceptlab.course.tvcompat)

from .config import default_device, preset  # noqa: E402
from .validate import check_image  # noqa: E402

__version__ = "0.1.0"
__all__ = ["preset", "default_device", "check_image", "__version__"]

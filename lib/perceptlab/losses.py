"""Image losses: each as a function and as an ``nn.Module`` twin.

Inputs are (N, C, H, W) float tensors in [0, 1] of equal shape.  ``reduction``
is ``"mean"`` (a scalar over the batch) or ``"none"`` (one value per image, (N,)).
"""
from __future__ import annotations

import torch
from torch import nn

from .validate import check_image, check_same_shape

REDUCTIONS = ("mean", "none")


def _check_pair(x: torch.Tensor, y: torch.Tensor, reduction: str) -> None:
    check_image(x, "x")
    check_image(y, "y")
    check_same_shape(x, y, "x", "y")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_image.mean() if reduction == "mean" else per_image


def mse(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error, (1 / CHW) sum (x - y)^2 per image."""
    _check_pair(x, y, reduction)
    return _reduce((x - y).pow(2).flatten(1).mean(1), reduction)


def l1(x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean absolute error, (1 / CHW) sum |x - y| per image."""
    _check_pair(x, y, reduction)
    return _reduce((x - y).abs().flatten(1).mean(1), reduction)


class MSELoss(nn.Module):
    """Module twin of :func:`mse`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return mse(x, y, self.reduction)


class L1Loss(nn.Module):
    """Module twin of :func:`l1`."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return l1(x, y, self.reduction)


#: Losses by name, for configs and the command line.
BY_NAME = {"l2": mse, "mse": mse, "l1": l1}


def get(name_or_fn):
    """A loss function from its name (see ``BY_NAME``) or the callable itself."""
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in BY_NAME:
        raise ValueError(f"loss must be a callable or one of {sorted(BY_NAME)}, got {name_or_fn!r}")
    return BY_NAME[name_or_fn]

"""Shared argument checks and the function/module twin pattern of the losses.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from perceptlab.validate import check_image, check_same_shape

REDUCTIONS = ("mean", "none")


def _check_pair(x: torch.Tensor, y: torch.Tensor, reduction: str,
                value_range: tuple[float, float] = (0.0, 1.0)) -> None:
    check_image(x, "x", value_range=value_range)
    check_image(y, "y", value_range=value_range)
    check_same_shape(x, y, "x", "y")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _reduce(per_image: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_image.mean() if reduction == "mean" else per_image


class _Twin(nn.Module):
    """Module twin of a loss function ``fn(x, y, **options)``."""

    fn = None  # set by subclasses (staticmethod)

    def __init__(self, **options):
        super().__init__()
        self.options = options

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return type(self).fn(x, y, **self.options)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())

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


class FeatureMapDistance(nn.Module):
    """A distance d(x, y) = compare(features(x), features(y)) through a fixed feature map (no trained weights).

    Subclasses define ``features(x)`` and ``compare(fx, fy) -> (N,)``, a scaled squared L2 of
    the features, and set ``reduction``.  Computing the features separately lets the 2AFC scorer
    embed each reference once, and makes the Generalized Image Mean exact with one pass per step
    (:meth:`mean_objective`).
    """

    reduction = "none"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def compare(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.reduction)
        return _reduce(self.compare(self.features(x), self.features(y)), self.reduction)

    def mean_objective(self, targets: torch.Tensor):
        """``y -> (1/N) sum_i d(y, t_i)`` for one image y, from the targets' mean features.

        Exact for a squared L2 of features: (1/N) sum_i ||a - b_i||^2 = ||a - b_mean||^2 +
        (1/N) sum_i ||b_i - b_mean||^2, the second term a constant (as in
        :meth:`perceptlab.losses.FeatureLoss.mean_objective`).
        """
        check_image(targets, "targets")
        with torch.no_grad():
            ft = self.features(targets)
            mean = ft.mean(0, keepdim=True)
            spread = self.compare(ft, mean.expand_as(ft)).mean()
        return lambda y: self.compare(self.features(y), mean).mean() + spread

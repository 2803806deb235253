"""The random S-CNN as a loss (Amir & Weiss 2021, Sec. 1.2): the normalised L2 distance of its
post-pooling features, with the network of :class:`perceptlab.models.SCNN`.
"""
from __future__ import annotations

import torch

from perceptlab.losses._base import REDUCTIONS, FeatureMapDistance
from perceptlab.models.scnn import SCNN


class SCNNLoss(FeatureMapDistance):
    """d(x, y) = ||h(x) - h(y)||^2 / C for a random S-CNN h (:meth:`perceptlab.models.SCNN.distance`).

    Arguments are those of :class:`~perceptlab.models.SCNN` (the paper's P = 3, D = 6, W = 32,
    S = 16, C = 1024 by default) and ``reduction`` ("none": (N,), or "mean").  As the width grows
    it tends to :func:`perceptlab.models.scnn.infinite_width_distance` (Theorem 2.1).
    """

    def __init__(self, patch_size: int = 3, depth: int = 6, width: int = 1024, window: int = 32, stride: int = 16,
                 in_channels: int = 3, seed: int = 0, normalize_channels: bool = False, reduction: str = "none"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.net = SCNN(patch_size, depth, width, window, stride, in_channels, seed, normalize_channels)
        self.reduction = reduction
        self.label = self.net.label

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def compare(self, fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
        return self.net.compare(fx, fy)

    def extra_repr(self) -> str:
        return self.label

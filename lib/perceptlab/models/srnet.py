"""The super-resolution network: bicubic upsampling plus a learned residual (in the spirit of SRCNN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRNet(nn.Module):
    """A small residual CNN: bicubic upsampling plus a learned correction.

    (N, C, h, w) LR in [0, 1] -> (N, C, h*scale, w*scale); ``depth`` 3x3 conv layers of ``width`` channels.
    """

    def __init__(self, channels: int = 3, width: int = 32, depth: int = 5, scale: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + self.body(up)

"""The contextual loss of Mechrez, Talmi & Zelnik-Manor (2018), with optional per-channel weights.

Features are compared as *sets* of vectors, one per position, regardless of where they are: for the
output's features x_i and the target's y_j (i, j over the H W positions),

    d_ij   = 1 - cos(x_i - mu_y, y_j - mu_y)         cosine distance, both centred on the target's mean
    dn_ij  = d_ij / (min_k d_ik + eps)               relative to x_i's nearest target feature
    w_ij   = exp((1 - dn_ij) / h)                    band-width h
    CX_ij  = w_ij / sum_k w_ik                       normalised over the target features
    CX     = (1 / N) sum_j max_i CX_ij               every target feature should have a close match
    loss   = -log CX

With ``channel_weights`` (one per channel, e.g. proportional to perceptual efficacy, Tariq et al.
2020) the centred features are multiplied by the weights before the cosine, so that weighted
channels count more in every distance.
"""
from __future__ import annotations

import torch
from torch import nn

from perceptlab.losses._base import REDUCTIONS, _check_pair, _reduce
from perceptlab.models.backbones import Backbone
from perceptlab.models.backbones import backbone as backbone_by_name

#: The band-width h of the affinities and the epsilon of the relative distances.
BANDWIDTH = 0.5
CX_EPS = 1e-5


def contextual_similarity(fx: torch.Tensor, fy: torch.Tensor, h: float = BANDWIDTH, eps: float = CX_EPS,
                          channel_weights: torch.Tensor | None = None) -> torch.Tensor:
    """CX(x, y) of features fx, fy (N, C, H, W) (fx of the output, fy of the target), (N,) in (0, 1]."""
    if fx.shape != fy.shape or fx.dim() != 4:
        raise ValueError(f"fx and fy must be features of the same shape (N, C, H, W), got {tuple(fx.shape)} "
                         f"and {tuple(fy.shape)}")
    mu = fy.mean((2, 3), keepdim=True)
    x, y = fx - mu, fy - mu
    if channel_weights is not None:
        w = channel_weights.to(x).view(1, -1, 1, 1)
        x, y = x * w, y * w
    x = x.flatten(2) / (x.flatten(2).norm(dim=1, keepdim=True) + 1e-12)  # (N, C, P), unit columns
    y = y.flatten(2) / (y.flatten(2).norm(dim=1, keepdim=True) + 1e-12)
    d = 1 - torch.einsum("ncp,ncq->npq", x, y)  # d[n, i, j]: output position i, target position j
    dn = d / (d.min(dim=2, keepdim=True).values + eps)
    cx = torch.softmax((1 - dn) / h, dim=2)  # w_ij / sum_k w_ik
    return cx.max(dim=1).values.mean(1)


def contextual_loss(x: torch.Tensor, y: torch.Tensor, net: Backbone, layer: str = "relu2_2",
                    h: float = BANDWIDTH, channel_weights: torch.Tensor | None = None,
                    reduction: str = "mean") -> torch.Tensor:
    """-log CX of ``net``'s features at ``layer`` of images x (output) and y (target), (N, 3, H, W) in [0, 1]."""
    _check_pair(x, y, reduction)
    fx, fy = net(x, [layer])[layer], net(y, [layer])[layer]
    return _reduce(-torch.log(contextual_similarity(fx, fy, h, CX_EPS, channel_weights)), reduction)


class ContextualLoss(nn.Module):
    """Module twin of :func:`contextual_loss` on a frozen backbone (name or :class:`Backbone`), at one
    ``layer`` (the SR experiment of Tariq et al.: VGG16 relu2_2), optionally with ``channel_weights``."""

    def __init__(self, backbone: str | Backbone = "vgg16", layer: str = "relu2_2", weights: str = "random",
                 h: float = BANDWIDTH, channel_weights=None, seed: int = 0, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not h > 0:
            raise ValueError(f"h must be positive, got {h!r}")
        net = backbone if isinstance(backbone, Backbone) else backbone_by_name(backbone, weights, seed=seed)
        if layer not in net.layer_names:
            raise ValueError(f"layer must be a layer of {net.name} {net.layer_names}, got {layer!r}")
        self.net = net.eval().requires_grad_(False)
        self.layer, self.h, self.reduction = layer, float(h), reduction
        w = None if channel_weights is None else torch.as_tensor(channel_weights, dtype=torch.float32).flatten()
        if w is not None and ((w < 0).any() or not torch.isfinite(w).all()):
            raise ValueError("channel_weights must be finite and non-negative")
        self.register_buffer("channel_weights", w, persistent=False)
        self.label = f"contextual loss, {net.name} {layer} ({net.weights_label}), h {h:g}" + \
            ("; channels weighted" if w is not None else "")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return contextual_loss(x, y, self.net, self.layer, self.h, self.channel_weights, self.reduction)

    def train(self, mode: bool = True) -> "ContextualLoss":
        super().train(mode)
        self.net.eval()
        return self


__all__ = ["BANDWIDTH", "CX_EPS", "contextual_similarity", "contextual_loss", "ContextualLoss"]

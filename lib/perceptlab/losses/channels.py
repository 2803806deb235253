"""A feature loss on chosen channels of one layer, or with a weight per channel (Tariq et al. 2020, eq. 1)::

    L(I1, I2) = 1 / (M H W) sum_{m in S} w_m ||Phi_m(I1) - Phi_m(I2)||_2^2

over the channels ``S`` of a layer (all of them, an H-x or L-x subset chosen by perceptual efficacy,
or any list), each of H x W positions, with weights w_m (1 for a subset; proportional to PE and
scaled to mean 1 for a weighted loss), M = len(S).  With all channels and unit weights this is the
one-layer :class:`~perceptlab.losses.FeatureLoss` (Johnson et al. 2016).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from perceptlab.losses._base import _check_pair, _reduce
from perceptlab.losses.features import FeatureLoss, unit_normalize_channels
from perceptlab.models.backbones import Backbone
from perceptlab.probing.efficacy import channel_subset, channel_weights
from perceptlab.probing.tuning import Stimuli, probe


def channel_distance(fx: torch.Tensor, fy: torch.Tensor, channels: torch.Tensor | None = None,
                     weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 1 on features (N, C, H, W): the mean over the chosen channels and positions of
    w_m (fx - fy)^2.  ``channels``: indices (None: all); ``weights``: (C,) per channel (None: 1). (N,)"""
    if channels is not None:
        fx, fy = fx[:, channels], fy[:, channels]
        weights = None if weights is None else weights[channels]
    d = (fx - fy).pow(2)
    if weights is not None:
        d = d * weights.to(d).view(1, -1, 1, 1)
    return d.flatten(1).mean(1)


class ChannelFeatureLoss(FeatureLoss):
    """:func:`channel_distance` at one ``layer`` of a frozen backbone.

    Args:
        backbone, weights, seed, normalize_channels: as :class:`~perceptlab.losses.FeatureLoss`
            (unit normalisation, if asked for, uses all of the layer's channels).
        layer: one layer name.
        channels: channel indices to keep (None: all).
        channel_weights: a weight per channel of the layer, (C,) (None: 1).
        reduction: "mean" or "none".
    ``forward(x, y)``: (N, 3, H, W) in [0, 1] -> scalar or (N,).  :meth:`from_efficacy` builds the H-x,
    L-x or PE-weighted loss of a layer by probing it with gratings.
    """

    def __init__(self, backbone: str | Backbone = "vgg16", layer: str = "relu2_2", channels=None,
                 channel_weights=None, weights: str | Path = "random", normalize_channels: bool = False,
                 seed: int = 0, reduction: str = "mean"):
        super().__init__(backbone, [layer], None, weights, normalize_channels, False, seed, reduction)
        n = self._n_channels(layer)
        idx = None if channels is None else torch.as_tensor(channels, dtype=torch.long).flatten()
        if idx is not None and (idx.numel() == 0 or idx.min() < 0 or idx.max() >= n or idx.unique().numel() != idx.numel()):
            raise ValueError(f"channels must be distinct indices in [0, {n}) of layer {layer}, got {channels!r}")
        w = None if channel_weights is None else torch.as_tensor(channel_weights, dtype=torch.float32).flatten()
        if w is not None and (w.numel() != n or (w < 0).any() or not torch.isfinite(w).all()):
            raise ValueError(f"channel_weights must be {n} finite non-negative weights (one per channel of {layer})")
        self.layer = layer
        self.register_buffer("channels", idx, persistent=False)
        self.register_buffer("channel_weights", w, persistent=False)
        what = "all channels" if idx is None else f"{idx.numel()} of {n} channels"
        self.label += f"; {what}" + ("; weighted per channel" if w is not None else "")

    def _n_channels(self, layer: str) -> int:
        size = self.net.min_size([layer])
        p = next(self.net.parameters())
        with torch.no_grad():
            return self.net(torch.zeros(1, 3, size, size, dtype=p.dtype, device=p.device), [layer])[layer].shape[1]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.reduction)
        fx, fy = self.net(x, [self.layer])[self.layer], self.net(y, [self.layer])[self.layer]
        if self.normalize_channels:
            fx, fy = unit_normalize_channels(fx), unit_normalize_channels(fy)
        return _reduce(channel_distance(fx, fy, self.channels, self.channel_weights), self.reduction)

    @classmethod
    def from_efficacy(cls, backbone: Backbone, layer: str, which: str = "H", percent: float = 10.0,
                      stimuli: Stimuli | None = None, pe: torch.Tensor | None = None, **kwargs) -> "ChannelFeatureLoss":
        """The loss on H-``percent`` (``which="H"``), L-``percent`` (``"L"``), all channels (``"F"``) or
        all channels weighted by PE (``"W"``) of ``layer``; PE from :func:`perceptlab.probing.probe`
        with ``stimuli`` unless given as ``pe``."""
        if which not in ("H", "L", "F", "W"):
            raise ValueError(f"which must be 'H', 'L', 'F' or 'W', got {which!r}")
        if pe is None and which != "F":
            pe = probe(backbone, layer, stimuli)[layer]["pe"]
        if which in ("H", "L"):
            loss = cls(backbone, layer, channels=channel_subset(pe, which, percent), **kwargs)
            loss.label += f" ({which}-{percent:g} by perceptual efficacy)"
        elif which == "W":
            loss = cls(backbone, layer, channel_weights=channel_weights(pe), **kwargs)
            loss.label += " (weights proportional to perceptual efficacy)"
        else:
            loss = cls(backbone, layer, **kwargs)
        return loss


def channel_feature_loss(x: torch.Tensor, y: torch.Tensor, backbone: Backbone, layer: str,
                         channels: Sequence[int] | None = None, channel_weights=None,
                         reduction: str = "mean") -> torch.Tensor:
    """Function twin of :class:`ChannelFeatureLoss` on a ready backbone."""
    return ChannelFeatureLoss(backbone, layer, channels, channel_weights, reduction=reduction).to(x.device)(x, y)


__all__ = ["channel_distance", "ChannelFeatureLoss", "channel_feature_loss"]

"""Deep-feature losses: the feature reconstruction loss of Johnson et al. (2016) over layers of a
backbone, with unit-normalised channels, pre-activation features and layer weights.
"""
from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from perceptlab.losses._base import REDUCTIONS, _check_pair, _reduce
from perceptlab.models.backbones import Backbone
from perceptlab.models.backbones import backbone as backbone_by_name
from perceptlab.validate import check_image, check_same_shape


def unit_normalize_channels(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Scale each spatial position's channel vector to unit length: f / (||f||_2 over C + eps).

    (N, C, H, W) -> same shape; as ``lpips.normalize_tensor`` (Zhang et al. 2018, Sec. 3).
    """
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def layer_distances(fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor],
                    normalize_channels: bool = False) -> torch.Tensor:
    """Mean squared feature difference per image and layer, (N, K), columns in the order of ``fx``.

    Column i is (1 / M_i) ||F_i(x) - F_i(y)||_2^2 with M_i = C_i H_i W_i; with ``normalize_channels``
    each position's channel vector is unit-normalised first (:func:`unit_normalize_channels`).
    """
    if not fx or set(fx) != set(fy):
        raise ValueError(f"fx and fy must have the same, non-empty layer keys, got {list(fx)} and {list(fy)}")
    columns = []
    for name, a in fx.items():
        b = fy[name]
        check_same_shape(a, b, f"fx[{name!r}]", f"fy[{name!r}]")
        if normalize_channels:
            a, b = unit_normalize_channels(a), unit_normalize_channels(b)
        columns.append((a - b).pow(2).flatten(1).mean(1))
    return torch.stack(columns, dim=1)


def feature_distance(fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor],
                     layer_weights: Mapping[str, float] | None = None,
                     normalize_channels: bool = False) -> torch.Tensor:
    """Perceptual (feature reconstruction) distance per image, (N,).

    d(x, y) = sum_i lambda_i / M_i ||F_i(x) - F_i(y)||_2^2, M_i = C_i H_i W_i
    (Johnson et al. 2016, eq. (2), summed over layers), i.e. the weighted sum over layers of
    the mean squared feature difference (:func:`layer_distances`).

    Args:
        fx, fy: ``{layer: (N, C_i, H_i, W_i)}`` features of x and y, with the same keys and shapes.
        layer_weights: ``{layer: lambda_i}``; None means lambda_i = 1 for every layer.
        normalize_channels: unit-normalise each position's channel vector first
            (:func:`unit_normalize_channels`, as LPIPS does).
    """
    per_layer = layer_distances(fx, fy, normalize_channels)
    if layer_weights is None:
        return per_layer.sum(1)
    if set(layer_weights) != set(fx):
        raise ValueError(f"layer_weights must have the keys {list(fx)}, got {list(layer_weights)}")
    return (per_layer * per_layer.new_tensor([float(layer_weights[name]) for name in fx])).sum(1)


def _layer_weight_dict(layers: Sequence[str], layer_weights) -> dict[str, float] | None:
    """``layer_weights`` (None, a sequence aligned with ``layers``, or a dict by name) as a dict."""
    if layer_weights is None:
        return None
    if isinstance(layer_weights, Mapping):
        weights = dict(layer_weights)
        if set(weights) != set(layers):
            raise ValueError(f"layer_weights must have one entry per layer {list(layers)}, got keys {list(weights)}")
    else:
        weights = list(layer_weights)
        if len(weights) != len(layers):
            raise ValueError(f"layer_weights must have one weight per layer ({len(layers)}: {list(layers)}), "
                             f"got {len(weights)}")
        weights = dict(zip(layers, weights))
    if any(not isinstance(w, numbers.Real) or isinstance(w, bool) or not w >= 0 for w in weights.values()):
        raise ValueError(f"layer_weights must be non-negative numbers, got {weights}")
    return {k: float(w) for k, w in weights.items()}


def feature_loss(x: torch.Tensor, y: torch.Tensor, net: Backbone, layers: Sequence[str],
                 layer_weights=None, normalize_channels: bool = False, reduction: str = "mean") -> torch.Tensor:
    """:func:`feature_distance` between the ``net`` features of x and y at ``layers``.

    ``net`` is a :class:`perceptlab.models.Backbone` (it applies its own input normalisation);
    ``layer_weights`` is None (all 1), a sequence aligned with ``layers`` or a dict by name.
    Gradients flow to x (and y, if it requires them).
    """
    _check_pair(x, y, reduction)
    weights = _layer_weight_dict(layers, layer_weights)
    return _reduce(feature_distance(net(x, layers), net(y, layers), weights, normalize_channels), reduction)


def pre_activation_layer(net: Backbone, layer: str) -> str:
    """The conv output feeding ReLU ``layer`` (``relu3_3`` -> ``conv3_3``); ValueError if there is none."""
    conv = "conv" + layer[len("relu"):]
    names = net.layer_names
    if not (layer.startswith("relu") and layer in names and conv in names and names.index(conv) == names.index(layer) - 1):
        raise ValueError(f"layers must be ReLU outputs with a conv feeding them when pre_activation=True; "
                         f"{net.name} layer {layer!r} has no pre-activation counterpart")
    return conv


def _frozen(net: Backbone) -> Backbone:
    net.eval()
    net.requires_grad_(False)
    return net


class FeatureLoss(nn.Module):
    """Perceptual loss of Johnson et al. (2016): :func:`feature_loss` on a frozen backbone.

    The choices the literature disagrees on are explicit options:

    Args:
        backbone: a backbone name ("vgg16", "alexnet", "squeezenet1_1"), built with
            ``perceptlab.models.backbone(backbone, weights, seed=seed)``, or a ready :class:`Backbone`
            (then ``weights`` and ``seed`` are ignored; it is put in eval mode and frozen in place).
        layers: feature layers (names from ``perceptlab.models.layer_names``).
        layer_weights: lambda_i: None (all 1), a sequence aligned with ``layers`` or a dict by name.
        weights: backbone weights, "random", "imagenet" or a path (see :mod:`perceptlab.models`).
        normalize_channels: unit-normalise channel vectors per position first (as LPIPS).
        pre_activation: use the conv output feeding each ``relu*`` layer instead of the ReLU output
            (``relu3_3`` -> ``conv3_3``); ValueError for layers without one (e.g. squeezenet ``fire3``).
        seed: seed of random backbone weights.
        reduction: "mean" or "none".

    ``forward(x, y)``: x, y (N, 3, H, W) in [0, 1] -> scalar or (N,).  The backbone's parameters
    get no gradients; x does.  ``label`` names backbone, weights, layers and options (for figures).
    """

    def __init__(self, backbone: str | Backbone = "vgg16",
                 layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_3", "relu4_3"),
                 layer_weights=None, weights: str | Path = "random", normalize_channels: bool = False,
                 pre_activation: bool = False, seed: int = 0, reduction: str = "mean"):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        net = backbone if isinstance(backbone, Backbone) else backbone_by_name(backbone, weights, seed=seed)
        self.net = _frozen(net)
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [l for l in layers if l not in net.layer_names]
        if not layers or unknown or len(set(layers)) != len(layers):
            raise ValueError(f"layers must be distinct names of {net.name} layers {net.layer_names}, got {layers}")
        weights = _layer_weight_dict(layers, layer_weights)
        self.layers = [pre_activation_layer(net, l) for l in layers] if pre_activation else layers
        self.layer_weights = None if weights is None else {l: weights[r] for r, l in zip(layers, self.layers)}
        self.normalize_channels, self.pre_activation, self.reduction = normalize_channels, pre_activation, reduction
        parts = [f"{net.name}, {net.weights_label}", "layers " + ", ".join(self.layers)]
        parts += ["pre-activation"] * pre_activation
        if self.layer_weights is not None:
            parts.append("weights " + ", ".join(f"{w:g}" for w in self.layer_weights.values()))
        parts += ["unit-normalised"] * normalize_channels
        self.label = "; ".join(parts)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return feature_loss(x, y, self.net, self.layers, self.layer_weights, self.normalize_channels, self.reduction)

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Unweighted per-layer distances, (N, K), columns in the order of ``self.layers``."""
        _check_pair(x, y, self.reduction)
        return self.compare_layers(self.features(x), self.features(y))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The backbone's features of x at ``self.layers`` (for :meth:`compare_layers`)."""
        return self.net(x, self.layers)

    def compare_layers(self, fx: dict[str, torch.Tensor], fy: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`layer_distances` from features already computed by :meth:`features`."""
        return layer_distances({l: fx[l] for l in self.layers}, fy, self.normalize_channels)

    def mean_objective(self, targets: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``y -> (1/N) sum_i loss(y, t_i)`` for one image y (1, 3, H, W) and the N ``targets``.

        Computed from the targets' mean features, so each call runs the network on y once
        instead of N times (used by the Generalized Image Mean).  Per layer, the bias-variance
        identity (1/N) sum_i ||a - b_i||^2 = ||a - b_mean||^2 + (1/N) sum_i ||b_i - b_mean||^2
        makes this exact; the second term is a constant.
        """
        check_image(targets, "targets", channels=(3,))
        weights = self.layer_weights or {l: 1.0 for l in self.layers}
        with torch.no_grad():
            feats = self.net(targets, self.layers)
            feats = {l: unit_normalize_channels(f) if self.normalize_channels else f for l, f in feats.items()}
            means = {l: f.mean(0, keepdim=True) for l, f in feats.items()}
            spread = sum(weights[l] * (feats[l] - means[l]).pow(2).mean() for l in self.layers)

        def objective(y: torch.Tensor) -> torch.Tensor:
            fy = self.net(y, self.layers)
            fy = {l: unit_normalize_channels(f) if self.normalize_channels else f for l, f in fy.items()}
            return sum(weights[l] * (fy[l] - means[l]).pow(2).mean() for l in self.layers) + spread
        return objective

    def train(self, mode: bool = True) -> FeatureLoss:
        super().train(mode)
        self.net.eval()  # the backbone stays a fixed measuring instrument
        return self

    def extra_repr(self) -> str:
        return self.label

"""Image losses and metrics: each as a function and as an ``nn.Module`` twin.

Inputs are (N, C, H, W) float tensors in [0, 1] of equal shape.  ``reduction``
is ``"mean"`` (a scalar over the batch) or ``"none"`` (one value per image, (N,)).

- pixel losses: :func:`mse`, :func:`l1`
- full-reference metrics: :func:`psnr` (dB, higher is better), :func:`ssim`
  (similarity in [-1, 1], higher is better) and the loss :func:`ssim_loss` = 1 - SSIM
- deep-feature losses: :func:`feature_distance` / :func:`feature_loss` / :class:`FeatureLoss`
  (Johnson et al. 2016) and :class:`LPIPS` (Zhang et al. 2018)
"""
from __future__ import annotations

import importlib.util
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import nets
from .nets import Backbone, WeightsUnavailableError
from .validate import check_image, check_same_shape

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


# --------------------------------------------------------------------------- pixel losses

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


# --------------------------------------------------------------------------- PSNR

def psnr_from_mse(mse_value: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB from a mean squared error: 10 log10(data_range^2 / MSE); +inf where MSE = 0.

    Works elementwise on a tensor of any shape, in its dtype.
    """
    return 10 * torch.log10(data_range ** 2 / mse_value)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB (higher is better).

    PSNR_i = 10 log10(data_range^2 / MSE_i) with MSE_i = (1 / CHW) sum (x_i - y_i)^2;
    +inf for identical images.  Inputs have values in [0, data_range].
    ``reduction="mean"`` averages the per-image dB values (not the MSEs).
    """
    data_range = _check_positive(data_range, "data_range")
    _check_pair(x, y, reduction, value_range=(0.0, data_range))
    return _reduce(psnr_from_mse((x - y).pow(2).flatten(1).mean(1), data_range), reduction)


class PSNR(_Twin):
    """Module twin of :func:`psnr`: ``PSNR(data_range=1.0, reduction="mean")``."""

    fn = staticmethod(psnr)

    def __init__(self, data_range: float = 1.0, reduction: str = "mean"):
        super().__init__(data_range=data_range, reduction=reduction)


# --------------------------------------------------------------------------- SSIM

SSIM_K1, SSIM_K2, SSIM_TRUNCATE = 0.01, 0.03, 3.5


def gaussian_window(sigma: float, truncate: float = SSIM_TRUNCATE, dtype=torch.float32, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian taps exp(-t^2 / 2 sigma^2), t = -r..r, r = int(truncate sigma + 0.5).

    The radius rule is scipy.ndimage's (so sigma 1.5 gives the 11 taps of Wang et al. 2004).
    """
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).to(dtype=dtype, device=device)


def _blur_valid(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable depthwise Gaussian filter, 'valid' region only: (N, C, H, W) -> (N, C, H-2r, W-2r)."""
    c, k = z.shape[1], g.numel()
    z = F.conv2d(z, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(z, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Local SSIM of Wang et al. (2004), eq. (13), per channel: (N, C, H, W) -> (N, C, H-2r, W-2r).

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),
    C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = data_range; local (population) moments under a Gaussian
    window of std ``sigma`` truncated at 3.5 sigma (radius r = 5 for sigma 1.5).  Only windows
    lying fully inside the image are kept: the same values skimage keeps after cropping r pixels.
    """
    g = gaussian_window(sigma, dtype=x.dtype, device=x.device)
    # (co)variances do not change when x, y are shifted: centre each channel first, so that
    # E[x^2] - E[x]^2 does not lose the small variances of flat regions to float32 rounding
    mx, my = x.mean(dim=(2, 3), keepdim=True), y.mean(dim=(2, 3), keepdim=True)
    x, y = x - mx, y - my
    mu_x, mu_y = _blur_valid(x, g), _blur_valid(y, g)
    var_x = _blur_valid(x * x, g) - mu_x ** 2
    var_y = _blur_valid(y * y, g) - mu_y ** 2
    cov = _blur_valid(x * y, g) - mu_x * mu_y
    mu_x, mu_y = mu_x + mx, mu_y + my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
         reduction: str = "mean") -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), in [-1, 1], 1 for identical images.

    The mean of :func:`ssim_map` over channels and positions; equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False, data_range=data_range, channel_axis=0)`` per image.
    Differentiable.  Inputs have values in [0, data_range] and H, W >= 2 r + 1 (11 for sigma 1.5).
    """
    data_range = _check_positive(data_range, "data_range")
    sigma = _check_positive(sigma, "sigma")
    _check_pair(x, y, reduction, value_range=(0.0, data_range))
    win = 2 * int(SSIM_TRUNCATE * sigma + 0.5) + 1
    if min(x.shape[-2:]) < win:
        raise ValueError(f"x must be at least {win}x{win} pixels for SSIM with sigma {sigma} "
                         f"(the Gaussian window), got shape {tuple(x.shape)}")
    return _reduce(ssim_map(x, y, data_range, sigma).flatten(1).mean(1), reduction)


def ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5,
              reduction: str = "mean") -> torch.Tensor:
    """1 - SSIM, a loss to minimise (0 for identical images, at most 2); see :func:`ssim`."""
    return 1 - ssim(x, y, data_range, sigma, reduction)


class SSIM(_Twin):
    """Module twin of :func:`ssim`: ``SSIM(data_range=1.0, sigma=1.5, reduction="mean")``."""

    fn = staticmethod(ssim)

    def __init__(self, data_range: float = 1.0, sigma: float = 1.5, reduction: str = "mean"):
        super().__init__(data_range=data_range, sigma=sigma, reduction=reduction)


class SSIMLoss(_Twin):
    """Module twin of :func:`ssim_loss`: ``SSIMLoss(data_range=1.0, sigma=1.5, reduction="mean")``."""

    fn = staticmethod(ssim_loss)

    def __init__(self, data_range: float = 1.0, sigma: float = 1.5, reduction: str = "mean"):
        super().__init__(data_range=data_range, sigma=sigma, reduction=reduction)


# --------------------------------------------------------------------------- deep-feature losses

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

    ``net`` is a :class:`perceptlab.nets.Backbone` (it applies its own input normalisation);
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
            ``nets.backbone(backbone, weights, seed=seed)``, or a ready :class:`Backbone`
            (then ``weights`` and ``seed`` are ignored; it is put in eval mode and frozen in place).
        layers: feature layers (names from ``nets.layer_names``).
        layer_weights: lambda_i: None (all 1), a sequence aligned with ``layers`` or a dict by name.
        weights: backbone weights, "random", "imagenet" or a path (see :mod:`perceptlab.nets`).
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
        net = backbone if isinstance(backbone, Backbone) else nets.backbone(backbone, weights, seed=seed)
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
        parts += ["channel-normalised"] * normalize_channels
        self.label = "; ".join(parts)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return feature_loss(x, y, self.net, self.layers, self.layer_weights, self.normalize_channels, self.reduction)

    def layer_distances(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Unweighted per-layer distances, (N, K), columns in the order of ``self.layers``."""
        _check_pair(x, y, self.reduction)
        fx, fy = self.net(x, self.layers), self.net(y, self.layers)
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


# --------------------------------------------------------------------------- LPIPS

#: LPIPS trunk -> (backbone name, the layers lpips' pretrained_networks slices end at).
LPIPS_NETS = {
    "alex": ("alexnet", ("relu1", "relu2", "relu3", "relu4", "relu5")),
    "vgg": ("vgg16", ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")),
    "squeeze": ("squeezenet1_1", ("relu1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9")),
}
#: lpips' ScalingLayer, applied to inputs in [-1, 1].  Note shift = 2 mean - 1 and scale = 2 std
#: of the ImageNet statistics: it is ImageNet normalisation written for [-1, 1] inputs.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def lpips_weights_path(net: str, version: str = "v0.1") -> Path:
    """The linear-layer weights shipped inside the installed ``lpips`` package (no network needed)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        raise WeightsUnavailableError(f"lin_weights={version!r} needs the LPIPS linear weights of the lpips package, "
                                      f"which is not installed: `pip install lpips`, or pass lin_weights=<path to "
                                      f"{net}.pth> or lin_weights=None (uniform weights)")
    path = Path(spec.origin).parent / "weights" / version / f"{net}.pth"
    if not path.exists():
        raise WeightsUnavailableError(f"the lpips package has no file {path}; pass lin_weights=<path> or None")
    return path


def _load_lin_weights(path: Path, channels: Sequence[int]) -> list[torch.Tensor]:
    """The (1, C_l, 1, 1) weights ``lin{l}.model.{0|1}.weight`` of an lpips state dict file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    out = []
    for l, c in enumerate(channels):
        keys = [k for k in (f"lin{l}.model.1.weight", f"lin{l}.model.0.weight") if k in state]
        if not keys or tuple(state[keys[0]].shape) != (1, c, 1, 1):
            raise ValueError(f"lin_weights file {path} must hold lin{l}.model.1.weight of shape (1, {c}, 1, 1)")
        if (state[keys[0]] < 0).any():
            raise ValueError(f"lin_weights file {path} has negative weights in lin{l}")
        out.append(state[keys[0]].float())
    return out


def _lin_weights(net: str, lin_weights: str | Path | None, channels: Sequence[int]) -> tuple[list[torch.Tensor], str]:
    """LPIPS linear weights for ``lin_weights`` ("v0.1", a path or None) and their label."""
    if lin_weights is None:
        return [torch.ones(1, c, 1, 1) for c in channels], "uniform (no calibration)"
    if lin_weights == "v0.1":
        return _load_lin_weights(lpips_weights_path(net, "v0.1"), channels), "lpips v0.1"
    path = Path(lin_weights)
    if not path.exists():
        raise WeightsUnavailableError(f"lin_weights file {path} does not exist; lin_weights must be 'v0.1', a path or None")
    return _load_lin_weights(path, channels), f"file {path.name}"


class LPIPS(nn.Module):
    """Learned Perceptual Image Patch Similarity (Zhang et al. 2018, eq. (1)), a distance (lower = closer).

    d(x, y) = sum_l 1 / (H_l W_l) sum_{h,w} sum_c w_lc (f^l_hwc(x) - f^l_hwc(y))^2,  where f^l is the
    layer-l activation unit-normalised over channels (:func:`unit_normalize_channels`) and w_l >= 0
    a 1x1 linear layer on the squared differences (a 1x1 conv without bias, as ``lpips.NetLinLayer``).
    The paper writes || w_l (.) (f(x) - f(y)) ||^2, so its w_l is the square root of the stored
    weights; we follow the official code and weight files.  x, y (N, 3, H, W) in [0, 1] are mapped
    to [-1, 1] (2 x - 1) and scaled by lpips' ScalingLayer (``LPIPS_SHIFT``, ``LPIPS_SCALE``).

    Args:
        net: trunk, "alex", "vgg" or "squeeze" (layers in ``LPIPS_NETS``).
        backbone_weights: "random" (seeded), "imagenet", a path (see :func:`perceptlab.nets.backbone`),
            or a :class:`Backbone` of the matching architecture (``seed`` is then ignored; its
            ``normalize`` flag is unused since LPIPS scales inputs itself; it is frozen in place).
        seed: seed of random backbone weights.
        lin_weights: "v0.1" (the calibrated weights shipped in the ``lpips`` package), a path to a file
            in that format, or None (all w_l = 1: LPIPS without calibration, lpips' ``lpips=False``).
        reduction: "mean" or "none" ((N,)).
    """

    def __init__(self, net: str = "alex", backbone_weights: str | Path | Backbone = "random", seed: int = 0,
                 lin_weights: str | Path | None = "v0.1", reduction: str = "mean"):
        super().__init__()
        if net not in LPIPS_NETS:
            raise ValueError(f"net must be one of {tuple(LPIPS_NETS)}, got {net!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        name, self.layers = LPIPS_NETS[net]
        if isinstance(backbone_weights, Backbone):
            if backbone_weights.name != name:
                raise ValueError(f"backbone_weights must be a {name} Backbone for net={net!r}, got {backbone_weights.name}")
            trunk = backbone_weights
        else:
            trunk = nets.backbone(name, backbone_weights, seed=seed, normalize=False)
        self.net = _frozen(trunk)
        with torch.no_grad():
            channels = [f.shape[1] for f in self.net.run(torch.zeros(1, 3, 64, 64), self.layers).values()]
        w, lin_label = _lin_weights(net, lin_weights, channels)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in channels)
        with torch.no_grad():
            for lin, wl in zip(self.lins, w):
                lin.weight.copy_(wl)
        self.lins.requires_grad_(False)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.net_type, self.reduction = net, reduction
        self.label = f"LPIPS-{net} (backbone {self.net.weights_label}; lin {lin_label})"

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        _check_pair(x, y, self.reduction)
        check_image(x, "x", channels=(3,))
        fx, fy = self.features(x), self.features(y)
        d = sum(lin((a - b) ** 2).mean(dim=(1, 2, 3)) for lin, a, b in zip(self.lins, fx, fy))
        return _reduce(d, self.reduction)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Channel-normalised activations of [0, 1] images x at ``self.layers``, in that order."""
        f = self.net.run((2 * x - 1 - self.shift) / self.scale, self.layers)
        return [unit_normalize_channels(f[l]) for l in self.layers]

    def mean_objective(self, targets: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``y -> (1/N) sum_i LPIPS(y, t_i)`` from the targets' mean features (as :meth:`FeatureLoss.mean_objective`)."""
        check_image(targets, "targets", channels=(3,))
        with torch.no_grad():
            feats = self.features(targets)
            means = [f.mean(0, keepdim=True) for f in feats]
            spread = sum(lin((f - m) ** 2).mean(dim=(1, 2, 3)).mean() for lin, f, m in zip(self.lins, feats, means))

        def objective(y: torch.Tensor) -> torch.Tensor:
            fy = self.features(y)
            return sum(lin((a - m) ** 2).mean() for lin, a, m in zip(self.lins, fy, means)) + spread
        return objective

    def train(self, mode: bool = True) -> LPIPS:
        super().train(mode)
        self.net.eval()
        return self

    def extra_repr(self) -> str:
        return self.label


def lpips(x: torch.Tensor, y: torch.Tensor, model: LPIPS) -> torch.Tensor:
    """Functional form of :class:`LPIPS`: ``model(x, y)``."""
    return model(x, y)


# --------------------------------------------------------------------------- by name

#: Losses by name, for configs and the command line (pixel losses and 1 - SSIM; feature losses
#: need a network: build :class:`FeatureLoss` or :class:`LPIPS`).
BY_NAME = {"l2": mse, "mse": mse, "l1": l1, "ssim": ssim_loss}


def get(name_or_fn):
    """A loss function from its name (see ``BY_NAME``) or the callable itself."""
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in BY_NAME:
        raise ValueError(f"loss must be a callable or one of {sorted(BY_NAME)}, got {name_or_fn!r}")
    return BY_NAME[name_or_fn]

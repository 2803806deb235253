"""LPIPS (Zhang et al. 2018): unit-normalised feature differences weighted by learned linear layers.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from perceptlab.losses._base import REDUCTIONS, _check_pair, _reduce
from perceptlab.losses.features import _frozen, unit_normalize_channels
from perceptlab.models.backbones import Backbone, backbone
from perceptlab.models.weights import WeightsUnavailableError, read_state_dict
from perceptlab.validate import check_image

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
    state = read_state_dict(path, "an lpips linear-weights state dict (lin0.model.1.weight, ...)",
                            "pass lin_weights='v0.1', None (uniform weights) or the path of a good file")
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
        backbone_weights: "random" (seeded), "imagenet", a path (see :func:`perceptlab.models.backbone`),
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
            trunk = backbone(name, backbone_weights, seed=seed, normalize=False)
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

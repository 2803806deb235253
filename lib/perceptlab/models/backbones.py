"""Backbones by name with an explicit weights policy, and named intermediate features.

Weights policy (never a silent fallback):

- ``"imagenet"``: torchvision's weights API.  Uses the file in torch's hub cache if
  it is there, otherwise downloads it; offline, raises :class:`WeightsUnavailableError`
  within seconds, naming the URL and the exact path to put the file.
- ``"random"``: seeded initialisation (torchvision's own init scheme), optionally
  with zero-mean first-layer filters as Amir & Weiss (2021) use for random VGGs.
- a path to a ``.pth`` state dict of the torchvision model (or of its ``features``).

Layer names follow the papers: ``conv3_2``/``relu3_2``/``pool3`` for VGG,
``conv2``/``relu2``/``pool2`` for AlexNet, ``relu1``/``fire3``/``pool5`` for SqueezeNet 1.1.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from perceptlab.models.weights import (
    WeightsUnavailableError,
    imagenet_weights,
    load_imagenet_state,
    read_state_dict,
)
from perceptlab.validate import check_image

BACKBONES = ("vgg16", "alexnet", "squeezenet1_1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)




def _sequential_names(features: nn.Sequential, blocks: bool) -> list[str]:
    """Layer names of a conv/ReLU/pool stack.

    ``blocks=True`` (VGG): ``conv{b}_{k}``, ``relu{b}_{k}``, ``pool{b}``, the block
    ``b`` advancing after each pool; ``blocks=False`` (AlexNet): ``conv{k}``, ``relu{k}``, ``pool{k}``.
    """
    names, block, k = [], 1, 0
    for m in features:
        k += isinstance(m, nn.Conv2d)
        tag = f"{block}_{k}" if blocks else str(k)
        if isinstance(m, (nn.Conv2d, nn.ReLU)):
            names.append(("conv" if isinstance(m, nn.Conv2d) else "relu") + tag)
        else:
            names.append(f"pool{block if blocks else k}")
            if blocks:
                block, k = block + 1, 0
    return names


_SQUEEZE_NAMES = ["conv1", "relu1", "pool1", "fire2", "fire3", "pool3", "fire4", "fire5", "pool5",
                  "fire6", "fire7", "fire8", "fire9"]


def layer_names(name: str) -> list[str]:
    """All feature-layer names of a backbone, in forward order."""
    return list(_build(name).layer_names)


def _torchvision_model(name: str) -> nn.Module:
    import torchvision

    if name not in BACKBONES:
        raise ValueError(f"name must be one of {BACKBONES}, got {name!r}")
    return getattr(torchvision.models, name)(weights=None)


class Backbone(nn.Module):
    """The convolutional part of a classification network, with named layers.

    ``forward(x, layers)`` takes images (N, 3, H, W) in [0, 1], applies ImageNet
    mean/std normalisation (``normalize=True``) and returns ``{name: activation}``
    for the requested layers, running the network only as deep as needed.
    ``weights_label`` says which weights are loaded, for output and figure titles.
    """

    def __init__(self, name: str, features: nn.Sequential, names: list[str], weights_label: str, normalize: bool = True):
        super().__init__()
        self.name = name
        self.features = features
        self.layer_names = names
        self.weights_label = weights_label
        self.normalize = normalize
        self._min_size: dict[int, int] = {}  # index of the deepest layer -> smallest input side (min_size)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        check_image(x, "x", channels=(3,))
        layers = list(self.layer_names if layers is None else layers)
        if not layers:
            raise ValueError("layers must name at least one layer")
        unknown = [l for l in layers if l not in self.layer_names]
        if unknown:
            raise ValueError(f"layers must be names of {self.name} layers {self.layer_names}, got unknown {unknown}")
        return self.run((x - self.mean) / self.std if self.normalize else x, layers)

    def min_size(self, layers: Sequence[str]) -> int:
        """The smallest square input (pixels) for which every layer in ``layers`` still has a
        non-empty output (pooling and unpadded convolutions shrink the image); found once by probing."""
        last = max(self.layer_names.index(l) for l in layers)
        if last not in self._min_size:
            def fits(size: int) -> bool:
                h = torch.zeros(1, 3, size, size, dtype=self.mean.dtype, device=self.mean.device)
                try:
                    with torch.no_grad():
                        for module in list(self.features)[: last + 1]:
                            h = module(h)
                    return h.numel() > 0
                except RuntimeError:
                    return False
            lo, hi = 1, 8
            while not fits(hi):
                lo, hi = hi + 1, hi * 2
            while lo < hi:  # the smallest size that fits, in (lo - 1, hi]
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
            self._min_size[last] = hi
        return self._min_size[last]

    def run(self, h: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The activations at ``layers`` for an input already scaled as the network expects.

        Inputs are cast to the network's dtype (float64 images work with float32 weights), and
        inputs smaller than :meth:`min_size` raise a ValueError saying the minimum.  No other
        checks and no normalisation: :meth:`forward` validates [0, 1] images and calls this;
        metrics that scale inputs their own way (LPIPS) call it directly.
        """
        smallest = self.min_size(layers)
        if min(h.shape[-2:]) < smallest:
            deepest = max(layers, key=self.layer_names.index)
            raise ValueError(f"x must be at least {smallest}x{smallest} pixels for {self.name} up to layer "
                             f"{deepest}, got {tuple(h.shape[-2:])}")
        h = h.to(self.mean.dtype)
        last = max(self.layer_names.index(l) for l in layers)
        out: dict[str, torch.Tensor] = {}
        for name, module in zip(self.layer_names[:last + 1], self.features):
            h = module(h)
            if name in layers:
                out[name] = h
        return out

    def __repr__(self) -> str:
        return f"Backbone({self.name}, weights={self.weights_label})"


def _build(name: str) -> Backbone:
    model = _torchvision_model(name)
    features = model.features
    for m in features.modules():  # keep pre-activation outputs intact
        if isinstance(m, nn.ReLU):
            m.inplace = False
    if name == "squeezenet1_1":
        names = list(_SQUEEZE_NAMES)
    else:
        names = _sequential_names(features, blocks=name == "vgg16")
    return Backbone(name, features, names, weights_label="untrained")


def zero_mean_first_layer_(backbone: Backbone) -> None:
    """Make every first-layer filter zero-mean per input channel (Amir & Weiss 2021, Sec. 1.2).

    Each filter's mean over its k x k support is subtracted separately for each input channel,
    "thus ignoring the DC component for every channel" as the paper puts it (and as the authors'
    code does, ``mean(dim=(2, 3))``): the first layer then ignores a constant added to any channel
    of a patch, i.e. local brightness and uniform colour casts (up to the zero padding at borders).
    """
    conv = next(m for m in backbone.features if isinstance(m, nn.Conv2d))
    with torch.no_grad():
        conv.weight -= conv.weight.mean(dim=(2, 3), keepdim=True)








def backbone(name: str, weights: str | Path = "random", *, seed: int = 0, zero_mean_first: bool = False,
             normalize: bool = True, timeout: float = 10.0) -> Backbone:
    """Build a backbone by name with an explicit weights policy (see the module docstring).

    Args:
        name: "vgg16", "alexnet" or "squeezenet1_1".
        weights: "imagenet", "random", or a path to a state dict file.
        seed: seed of the random initialisation (ignored for other weights).
        zero_mean_first: make first-layer filters zero-mean (any weights).
        normalize: apply ImageNet mean/std normalisation to [0, 1] inputs.
    Returns:
        A :class:`Backbone` in eval mode with gradients of its parameters disabled.
    """
    if name not in BACKBONES:
        raise ValueError(f"name must be one of {BACKBONES}, got {name!r}")
    with torch.random.fork_rng(devices=[]):  # building never disturbs the caller's RNG
        torch.manual_seed(seed)
        net = _build(name)
    if weights == "random":
        label = f"random (seed {seed})"
    elif weights == "imagenet":
        state = load_imagenet_state(name, timeout)
        net.features.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        label = f"imagenet ({imagenet_weights(name)})"
    else:
        path = Path(weights)
        if not path.exists():
            raise WeightsUnavailableError(f"weights file {path} does not exist; weights must be 'imagenet', 'random' or a path")
        state = read_state_dict(path, f"a {name} state dict (torchvision's key names)",
                                "pass the path of a good file, or weights='imagenet' or 'random'")
        if any(k.startswith("features.") for k in state):
            state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            net.features.load_state_dict(state)
        except RuntimeError as exc:  # missing or unexpected keys, wrong shapes: another network's weights
            raise ValueError(f"weights file {path} does not fit {name}'s convolutional layers: "
                             f"{str(exc).splitlines()[0]} ... (is it another network's file?)") from exc
        label = f"file {path.name}"
    if zero_mean_first:
        zero_mean_first_layer_(net)
        label += ", zero-mean first layer"
    net.weights_label = label
    net.normalize = normalize
    net.eval()
    net.requires_grad_(False)
    return net


#: The fully connected layers after a backbone's features, as (name, index into ``classifier``), values after the ReLU.
HEAD_LAYERS = {"alexnet": (("fc6", 3), ("fc7", 6), ("fc8", 7)), "vgg16": (("fc6", 3), ("fc7", 6), ("fc8", 7))}


def backbone_head(name: str, weights: str | Path = "random", *, seed: int = 0, timeout: float = 10.0) -> nn.Sequential:
    """The classifier part of ``name`` after its features: avgpool, flatten, torchvision's ``classifier``.

    The same weights policy as :func:`backbone` (and, for ``"random"``, the same seed gives the
    weights the full torchvision model would have).  Index the result with :data:`HEAD_LAYERS`:
    ``head[: 2 + i]`` maps the last feature map to fc6 (i = 3, after the ReLU), fc7 (6) or fc8 (7).
    Eval mode, frozen.
    """
    if name not in HEAD_LAYERS:
        raise ValueError(f"name must be one of {sorted(HEAD_LAYERS)} (networks with fully connected layers), got {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _torchvision_model(name)
    if weights == "imagenet":
        state = load_imagenet_state(name, timeout)
        model.classifier.load_state_dict({k[len("classifier."):]: v for k, v in state.items()
                                          if k.startswith("classifier.")})
    elif weights != "random":
        state = read_state_dict(Path(weights), f"a {name} state dict (torchvision's key names)",
                                "pass the path of a good file, or weights='imagenet' or 'random'")
        model.classifier.load_state_dict({k[len("classifier."):]: v for k, v in state.items()
                                          if k.startswith("classifier.")})
    for m in model.classifier.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    head = nn.Sequential(model.avgpool, nn.Flatten(), *model.classifier)
    head.eval()
    head.requires_grad_(False)
    return head


class FeatureExtractor(nn.Module):
    """Named intermediate activations of a backbone: ``forward(x) -> {layer: (N, C_l, H_l, W_l)}``."""

    def __init__(self, net: Backbone, layers: Sequence[str]):
        super().__init__()
        if not layers:
            raise ValueError("layers must name at least one layer")
        unknown = [l for l in layers if l not in net.layer_names]
        if unknown:
            raise ValueError(f"layers must be names of {net.name} layers {net.layer_names}, got unknown {unknown}")
        self.net = net
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x, self.layers)

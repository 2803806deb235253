"""The metric registry: every image distance of the course by name, the one place that builds them.

Notebooks, experiments, the command line and the benchmarks all build distances here, and
every chapter registers its new metrics here (:func:`register`).  ``make(name, reduction)`` returns an ``nn.Module`` ``d(x, y)`` on (N, 3, H, W) images in
[0, 1] with a ``label`` attribute naming exactly what it is (network, weights, layers,
options), for tables and figure titles.  Entries marked ``offline=False`` need
downloaded weights (ImageNet) and raise a clear error without them; the quick preset
uses only offline entries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from perceptlab.losses.channels import ChannelFeatureLoss
from perceptlab.losses.features import FeatureLoss
from perceptlab.losses.lpips import LPIPS
from perceptlab.losses.patch_mmd import PatchMMD, PatchMMDRFF
from perceptlab.losses.pixel import L1Loss, MSELoss, SSIMLoss
from perceptlab.losses.scnn import SCNNLoss
from perceptlab.losses.watson import WatsonDCT, WatsonDFT
from perceptlab.models.backbones import Backbone, backbone

#: The five layers LPIPS reads from VGG16 (Zhang et al. 2018); a common perceptual-loss choice.
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
#: The layers of the Exemplar-CNN comparator (:mod:`perceptlab.models.exemplar`).
EXEMPLAR_LAYERS = ("relu1", "relu2", "relu3")


@dataclass(frozen=True)
class Entry:
    """A named distance: short description, builder ``build(reduction) -> nn.Module``, offline or not."""

    description: str
    build: Callable[[str], nn.Module]
    offline: bool = True


def _labelled(module: nn.Module, label: str) -> nn.Module:
    module.label = label
    return module


def channel_counts(net: Backbone, layers: tuple[str, ...]) -> list[int]:
    """The number of channels C_i of each layer (from one forward pass of a small image)."""
    with torch.no_grad():
        feats = net(torch.zeros(1, 3, 32, 32), layers)
    return [feats[l].shape[1] for l in layers]


def feature_metric(net: Backbone, layers: tuple[str, ...], normalize: bool, reduction: str) -> nn.Module:
    """A :class:`~perceptlab.losses.FeatureLoss` on ``layers``.

    Without normalisation, every layer has weight 1 (the mean squared feature difference of
    each layer, summed).  With ``normalize`` (the course calls it *LPIPS-weighted*): unit-normalised
    channel vectors (as FeatureLoss's ``normalize_channels``) and layer i weighted by C_i, which turns
    each layer's mean over (C, H, W) into LPIPS's sum over channels and mean over positions:
    the distance then equals LPIPS with uniform linear weights (Zhang et al. 2018).
    """
    weights = channel_counts(net, layers) if normalize else None
    loss = FeatureLoss(net, layers, layer_weights=weights, normalize_channels=normalize, reduction=reduction)
    if normalize:
        loss.label = loss.label.split("; weights")[0] + "; LPIPS-weighted: unit-normalised, layers weighted by " \
                                                         "channel count (LPIPS without linear weights)"
    return loss


def _exemplar(reduction: str, normalize: bool) -> nn.Module:
    from perceptlab.config import default_device, preset
    from perceptlab.models.exemplar import (  # trains once, then loads from the cache
        ExemplarConfig,
        exemplar_cnn,
    )

    # quick: bundled images, about a minute on a CPU; full: the paper's STL-10 set-up (trained on the GPU)
    net = exemplar_cnn(ExemplarConfig.for_preset(preset()), device=default_device())
    return feature_metric(net, EXEMPLAR_LAYERS, normalize, reduction)


def vgg_metric(weights: str = "random", seed: int = 0, zero_mean: bool = False, normalize: bool = False,
               reduction: str = "none") -> nn.Module:
    """VGG16 on the LPIPS layers (:data:`VGG_LAYERS`) as a :func:`feature_metric`: ``weights`` "random"
    (drawn with ``seed``) or "imagenet", optionally with zero-mean first-layer filters (Amir & Weiss
    2021) and LPIPS weighting (``normalize``).  The voting networks of Chapter 5 are these with seeds 0..K-1."""
    net = backbone("vgg16", weights, seed=seed, zero_mean_first=zero_mean)
    return feature_metric(net, VGG_LAYERS, normalize, reduction)


def _vgg(weights: str, zero_mean: bool = False, normalize: bool = False):
    return lambda reduction: vgg_metric(weights, 0, zero_mean, normalize, reduction)


def _patch_mmd(rff: bool, normalize: bool):
    def build(reduction: str) -> nn.Module:
        if rff:
            return PatchMMDRFF(1024, normalize_channels=normalize, reduction=reduction)
        return PatchMMD(normalize_channels=normalize, reduction=reduction)
    return build


def _scnn(width: int, normalize: bool = False):
    return lambda reduction: SCNNLoss(width=width, normalize_channels=normalize, reduction=reduction)


def _watson(cls, channels: int = 3, pretrained: bool = True, shift: bool = False):
    return lambda reduction: cls(channels, pretrained, shift=shift, reduction=reduction, grey_from_rgb=channels == 1)


#: AlexNet's rectified convolution layers (the layers LPIPS-alex reads).
ALEX_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")


def _alexnet(weights: str):
    def build(reduction: str) -> nn.Module:
        net = backbone("alexnet", weights, seed=0)
        loss = feature_metric(net, ALEX_LAYERS, False, reduction)
        loss.weights_policy, loss.seed = weights, 0  # DeePSiM's comparator builds the fc layers the same way
        return loss
    return build


def _pe_subset(network: str, weights: str, layer: str, which: str, percent: float = 10.0):
    """H-x / L-x channels of ``layer`` by perceptual efficacy, probed with the default gratings
    (:class:`perceptlab.probing.Stimuli`: 64 pixels at 32 pixels per degree)."""
    def build(reduction: str) -> nn.Module:
        return ChannelFeatureLoss.from_efficacy(backbone(network, weights, seed=0), layer, which, percent,
                                                reduction=reduction)
    return build


REGISTRY: dict[str, Entry] = {
    "l2": Entry("mean squared error of pixels",
                lambda r: _labelled(MSELoss(r), "L2 (pixels)")),
    "l1": Entry("mean absolute error of pixels",
                lambda r: _labelled(L1Loss(r), "L1 (pixels)")),
    "ssim": Entry("1 - SSIM (Gaussian window, sigma 1.5)",
                  lambda r: _labelled(SSIMLoss(reduction=r), "1 - SSIM")),
    "vgg-random": Entry("VGG16, seeded random weights, LPIPS layers",
                        _vgg("random")),
    "vgg-random-norm": Entry("VGG16, random weights, LPIPS-weighted",
                             _vgg("random", normalize=True)),
    "vgg-random-zm-norm": Entry("VGG16, random weights with zero-mean first-layer filters, LPIPS-weighted "
                                "(Amir & Weiss 2021)", _vgg("random", zero_mean=True, normalize=True)),
    "exemplar": Entry("Exemplar-CNN trained here without labels",
                      lambda r: _exemplar(r, normalize=False)),
    "exemplar-norm": Entry("Exemplar-CNN trained here without labels, LPIPS-weighted",
                           lambda r: _exemplar(r, normalize=True)),
    "alexnet-random": Entry("AlexNet, seeded random weights, relu1-relu5 (a DeePSiM comparator)",
                            _alexnet("random")),
    "alexnet-imagenet": Entry("AlexNet trained on ImageNet, relu1-relu5 (DeePSiM's comparator)",
                              _alexnet("imagenet"), offline=False),
    "scnn-random": Entry("S-CNN with random weights, the paper's P=3, D=6, W=32, S=16, C=1024 (Amir & Weiss 2021)",
                         _scnn(1024)),
    "scnn-random-norm": Entry("S-CNN, random weights (C=1024), zero-mean first-layer filters per channel",
                              _scnn(1024, True)),
    "scnn-random-c128": Entry("S-CNN with random weights, P=3, D=6, W=32, S=16, C=128 (narrower, for CPUs)",
                              _scnn(128)),
    "scnn-random-c128-norm": Entry("S-CNN, random weights (C=128), zero-mean first-layer filters per channel",
                                   _scnn(128, True)),
    "patch-mmd": Entry("patch MMD, exact (Gaussian kernel, P=3, W=32, S=16)", _patch_mmd(False, False)),
    "patch-mmd-norm": Entry("patch MMD, exact, mean-removed patches (the paper's channel normalisation)", _patch_mmd(False, True)),
    "patch-mmd-rff": Entry("patch MMD with 1024 random Fourier features (seed 0)", _patch_mmd(True, False)),
    "patch-mmd-rff-norm": Entry("patch MMD with 1024 random Fourier features, mean-removed patches",
                                _patch_mmd(True, True)),
    "watson-dct": Entry("Watson-DCT, colour (YCbCr), parameters trained on BAPPS by Czolbe et al. 2020",
                        _watson(WatsonDCT)),
    "watson-dft": Entry("Watson-DFT, colour (YCbCr), parameters trained on BAPPS by Czolbe et al. 2020",
                        _watson(WatsonDFT)),
    "watson-dct-grey": Entry("Watson-DCT, greyscale of the RGB input, trained parameters (Czolbe et al. 2020)",
                             _watson(WatsonDCT, 1)),
    "watson-dft-grey": Entry("Watson-DFT, greyscale of the RGB input, trained parameters (Czolbe et al. 2020)",
                             _watson(WatsonDFT, 1)),
    "watson-dct-untrained": Entry("Watson-DCT, colour, the untrained starting values (JPEG table, alpha 0.649, "
                                  "r 0.7, p 4)", _watson(WatsonDCT, 3, False)),
    "watson-dft-untrained": Entry("Watson-DFT, colour, the untrained starting values (T 1, alpha 0.1, r 0.2, p 1)",
                                  _watson(WatsonDFT, 3, False)),
    # Training losses: the grid shift of Czolbe et al. (a new seeded block-grid offset at every call).
    "watson-dft-shift": Entry("Watson-DFT, colour, trained parameters, grid shift (for training generators)",
                              _watson(WatsonDFT, 3, True, True)),
    "watson-dft-grey-shift": Entry("Watson-DFT, greyscale, trained parameters, grid shift (for training generators)",
                                   _watson(WatsonDFT, 1, True, True)),
    "watson-dft-grey-untrained-shift": Entry("Watson-DFT, greyscale, the untrained starting values, grid shift",
                                             _watson(WatsonDFT, 1, False, True)),
    "watson-dft-untrained-shift": Entry("Watson-DFT, colour, the untrained starting values, grid shift",
                                        _watson(WatsonDFT, 3, False, True)),
    "vgg-imagenet": Entry("VGG16 trained on ImageNet, LPIPS layers", _vgg("imagenet"), offline=False),
    "vgg-imagenet-norm": Entry("VGG16 trained on ImageNet, LPIPS-weighted",
                               _vgg("imagenet", normalize=True), offline=False),
    "lpips-alex": Entry("LPIPS, AlexNet trunk (ImageNet) with the official v0.1 linear weights",
                        lambda r: LPIPS("alex", "imagenet", reduction=r), offline=False),
    "lpips-vgg": Entry("LPIPS, VGG16 trunk (ImageNet) with the official v0.1 linear weights",
                       lambda r: LPIPS("vgg", "imagenet", reduction=r), offline=False),
    # Channel subsets by perceptual efficacy (Tariq et al. 2020, Chapter 7)
    "vgg-random-relu2_2-h10": Entry("VGG16 relu2_2, random weights, the 10% of channels with the highest "
                                    "perceptual efficacy", _pe_subset("vgg16", "random", "relu2_2", "H")),
    "vgg-random-relu2_2-l10": Entry("VGG16 relu2_2, random weights, the 10% of channels with the lowest "
                                    "perceptual efficacy", _pe_subset("vgg16", "random", "relu2_2", "L")),
    "vgg-imagenet-relu2_2-h10": Entry("VGG16 relu2_2 (ImageNet), the 10% of channels with the highest perceptual "
                                      "efficacy", _pe_subset("vgg16", "imagenet", "relu2_2", "H"), offline=False),
    "alexnet-imagenet-relu1-h10": Entry("AlexNet relu1 (ImageNet), the 10% of channels with the highest perceptual "
                                        "efficacy (Fig. 8's H-10)", _pe_subset("alexnet", "imagenet", "relu1", "H"),
                                        offline=False),
    # Offline stand-ins: the official linear weights were fit to ImageNet features, so on a random
    # trunk they only set a channel weighting; labelled as such wherever they appear.
    "lpips-alex-random": Entry("LPIPS architecture offline: AlexNet trunk with seeded random weights, official v0.1 "
                               "linear weights (fit to ImageNet features, not to these)",
                               lambda r: LPIPS("alex", "random", reduction=r)),
    "lpips-vgg-random": Entry("LPIPS architecture offline: VGG16 trunk with seeded random weights, official v0.1 "
                              "linear weights (fit to ImageNet features, not to these)",
                              lambda r: LPIPS("vgg", "random", reduction=r)),
}


def register(name: str, entry: Entry, replace: bool = False) -> None:
    """Add a distance to :data:`REGISTRY` (each chapter registers its new metrics here)."""
    if name in REGISTRY and not replace:
        raise ValueError(f"a metric named {name!r} is registered already; pass replace=True to replace it")
    REGISTRY[name] = entry


def make(name: str, reduction: str = "none") -> nn.Module:
    """Build the distance ``name`` (a key of :data:`REGISTRY`); ``reduction`` "none" gives (N,) distances."""
    if name not in REGISTRY:
        raise ValueError(f"name must be one of {sorted(REGISTRY)}, got {name!r}")
    return REGISTRY[name].build(reduction)


def resolve(loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            reduction: str = "mean") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A callable distance: ``loss`` itself if it is callable, else :func:`make` (``loss``, ``reduction``)."""
    if callable(loss):
        return loss
    if loss not in REGISTRY:
        raise ValueError(f"loss must be a callable loss(x, y) or one of {sorted(REGISTRY)}, got {loss!r}")
    return make(loss, reduction)

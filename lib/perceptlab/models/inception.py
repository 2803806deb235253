"""Inception-v3 feature extractors for FID/KID: torchvision's ImageNet network and the TF FID graph
(pytorch-fid's port), with their preprocessing.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.models.weights import (
    WeightsUnavailableError,
    fid_weights_path,
    imagenet_weights,
    load_fid_inception_state,
    load_imagenet_state,
    read_state_dict,
)
from perceptlab.validate import check_image, check_positive_int

INCEPTION_WEIGHTS = ("imagenet", "fid", "random")


ARCHITECTURES = ("torchvision", "tf_fid")


#: Inception3's modules from the input to pool3, in forward order (the auxiliary head and fc are unused).
INCEPTION_LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                    "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3x3 'SAME' average pool: padded zeros are not counted in the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def _tf_fid_blocks():
    """Inception blocks of the TF FID graph (the differences pytorch-fid documents, reimplemented).

    They have exactly torchvision's parameters; only the pooling branch differs:
    InceptionA/C and the first InceptionE (Mixed_7b) average without counting padded zeros
    (TensorFlow's 'SAME' pooling), the second InceptionE (Mixed_7c) uses a *max* pool.
    """
    from torchvision.models.inception import InceptionA, InceptionC, InceptionE

    class TFInceptionA(InceptionA):
        def _forward(self, x):
            return [self.branch1x1(x),
                    self.branch5x5_2(self.branch5x5_1(x)),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    self.branch_pool(_tf_avg_pool(x))]

    class TFInceptionC(InceptionC):
        def _forward(self, x):
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = x
            for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                         self.branch7x7dbl_5):
                d = conv(d)
            return [self.branch1x1(x), b7, d, self.branch_pool(_tf_avg_pool(x))]

    class TFInceptionE(InceptionE):
        max_pool = False  # Mixed_7c of the TF graph pools with max, not average

        def _forward(self, x):
            b3 = self.branch3x3_1(x)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
            return [self.branch1x1(x),
                    torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1),
                    torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1),
                    self.branch_pool(pooled)]

    class TFInceptionEMax(TFInceptionE):
        max_pool = True

    return TFInceptionA, TFInceptionC, TFInceptionE, TFInceptionEMax


def inception_net(architecture: str = "torchvision", num_classes: int = 1000, init_weights: bool = False) -> nn.Module:
    """torchvision's Inception3 without the auxiliary head; ``architecture="tf_fid"`` swaps in the TF FID blocks."""
    import torchvision

    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, transform_input=False,
                                          init_weights=init_weights, num_classes=num_classes)
    if architecture == "tf_fid":
        A, C, E, EMax = _tf_fid_blocks()
        for name, block in (("Mixed_5b", A(192, 32)), ("Mixed_5c", A(256, 64)), ("Mixed_5d", A(288, 64)),
                            ("Mixed_6b", C(768, 128)), ("Mixed_6c", C(768, 160)), ("Mixed_6d", C(768, 160)),
                            ("Mixed_6e", C(768, 192)), ("Mixed_7b", E(1280)), ("Mixed_7c", EMax(2048))):
            old = getattr(net, name)
            if init_weights:  # keep torchvision's seeded initialisation of the replaced block
                block.load_state_dict(old.state_dict())
            setattr(net, name, block)
    return net


def _load_inception_state(net: nn.Module, state: dict, source: str) -> None:
    """Load a full Inception-v3 state dict strictly (aux head and fc ignored; old files may lack
    BatchNorm's ``num_batches_tracked``), with a ValueError explaining any mismatch."""
    state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "fc."))}
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
             for k in state if k in expected and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} is not a state dict of torchvision's inception_v3 / pytorch-fid's FID Inception: "
            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{' ...' if len(unexpected) > 4 else ''}, wrong shapes {wrong[:4]}")
    net.load_state_dict(state, strict=False)


def inception_preprocess(x: torch.Tensor, size: int | None = 299, antialias: bool = True) -> torch.Tensor:
    """Images (N, 1 or 3, H, W) in [0, 1] -> Inception input (N, 3, size, size) in [-1, 1].

    Grey is replicated to 3 channels; resizing is bilinear (``align_corners=False``, antialiased
    when shrinking if ``antialias``); ``size=None`` keeps the size (at least 75x75); then 2x - 1.
    """
    check_image(x, "x", channels=(1, 3))
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    elif min(x.shape[-2:]) < 75:
        raise ValueError(f"x must be at least 75x75 when size=None, got shape {tuple(x.shape)}")
    return 2 * x - 1


class InceptionFeatures(nn.Module):
    """Inception-v3 pool3 features: (N, C, H, W) in [0, 1] -> (N, 2048), the space of FID.

    Pre-processing: grey images (C = 1) are replicated to 3 channels; images are resized to
    ``size`` x ``size`` (299, bilinear, antialiased when shrinking; ``size=None`` keeps the
    input size, at least 75); then scaled to [-1, 1] as 2x - 1.  That is the input both weight
    sets expect: torchvision's IMAGENET1K_V1 Inception was ported from Google's TF model and runs
    with ``transform_input=True``, which undoes the ImageNet mean/std normalisation of its
    transforms and computes (x - 0.5) / 0.5, so ImageNet normalisation followed by
    ``transform_input`` is exactly 2x - 1; pytorch-fid's FID Inception takes 2x - 1 directly.
    The features are the global average pool of Mixed_7c (before dropout and the classifier).

    Weights (``weights``):

    - ``"imagenet"``: torchvision's ``Inception_V3_Weights.IMAGENET1K_V1`` from torch's hub cache
      (downloaded if possible; offline, :class:`~perceptlab.models.WeightsUnavailableError` within
      seconds, naming the URL and the path to put the file).  NOT comparable with published FIDs.
    - ``"fid"``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the TF FID Inception,
      1008 classes) with its architecture: the same parameters as torchvision's Inception-v3, but
      the pool branches of Mixed_5b-5d, 6b-6e and 7b average without counting padded zeros and
      Mixed_7c's pool branch is a max pool (pytorch-fid's FIDInceptionA/C/E_1/E_2).  These blocks
      are reimplemented here and tested against pytorch-fid's code (as vendored by clean-fid) to
      give the same features for the same weights.  Looked up in the hub cache
      (:func:`fid_weights_path`, where pytorch-fid keeps it), else downloaded, else a clear error.
      With these weights, scores are comparable with pytorch-fid's.  Published numbers also depend
      on how images were resized to 299 (TF's bilinear resize, pytorch-fid's ``F.interpolate``
      without antialiasing, clean-fid's PIL bicubic): clean-fid (Parmar et al. 2022) shows this
      alone moves FID by several points on low-resolution data, so quote the resizing with the
      score.  clean-fid's own TorchScript model file (``inception-2015-12-05.pt``) is not loaded here.
    - ``"random"``: seeded random weights (torchvision's init scheme); for tests only.
    - a path to a ``.pth`` state dict of either model: 1008 classes in ``fc`` means the TF FID
      Inception (``architecture="tf_fid"``), 1000 means torchvision's; ``architecture`` overrides.

    ``label`` names the network, the weights and whether scores are comparable with published ones.
    """

    dim = 2048

    def __init__(self, weights: str | Path = "imagenet", *, seed: int = 0, size: int | None = 299,
                 antialias: bool = True, architecture: str | None = None, timeout: float = 10.0):
        super().__init__()
        if size is not None:
            check_positive_int(size, "size")
            if size < 75:
                raise ValueError(f"size must be at least 75 (Inception-v3's smallest input), got {size}")
        if architecture is not None and architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES} or None, got {architecture!r}")
        self.size, self.antialias = size, antialias
        if weights == "random":
            architecture = architecture or "torchvision"
            with torch.random.fork_rng(devices=[]):  # never disturbs the caller's RNG
                torch.manual_seed(seed)
                net = inception_net(architecture, init_weights=True)
            weights_label = f"random weights (seed {seed}{', TF FID architecture' if architecture == 'tf_fid' else ''})"
            note = "for tests only, not comparable with anything"
        elif weights == "imagenet":
            if architecture not in (None, "torchvision"):
                raise ValueError("weights='imagenet' are torchvision's and need architecture='torchvision'")
            architecture = "torchvision"
            net = inception_net(architecture)
            _load_inception_state(net, load_imagenet_state("inception_v3", timeout), "torchvision's IMAGENET1K_V1 file")
            weights_label = f"torchvision {imagenet_weights('inception_v3')}"
            note = ("NOT comparable with published FID/KID, which use the TF FID Inception weights "
                    "(weights='fid')")
        elif weights == "fid":
            if architecture not in (None, "tf_fid"):
                raise ValueError("weights='fid' are the TF FID Inception's and need architecture='tf_fid'")
            architecture = "tf_fid"
            net = inception_net(architecture, num_classes=1008)
            _load_inception_state(net, load_fid_inception_state(timeout), f"the FID Inception file {fid_weights_path()}")
            weights_label = "TF FID Inception weights (pt_inception-2015-12-05, as pytorch-fid)"
            note = "comparable with pytorch-fid / published FIDs computed with the same image resizing"
        elif isinstance(weights, (str, Path)):
            path = Path(weights)
            if not path.is_file():
                raise WeightsUnavailableError(
                    f"weights file {path} does not exist; weights must be one of {INCEPTION_WEIGHTS} or a path")
            state = read_state_dict(path, "an Inception-v3 state dict", "pass the path of a good file, or "
                                    f"weights= one of {INCEPTION_WEIGHTS}")
            if not isinstance(state, dict) or ("fc.weight" not in state and architecture is None):
                raise ValueError(f"{path} must be an Inception-v3 state dict; without an fc.weight entry to tell "
                                 f"the architecture, pass architecture= one of {ARCHITECTURES}")
            if architecture is None:
                classes = state["fc.weight"].shape[0]
                if classes not in (1000, 1008):
                    raise ValueError(f"{path}: fc has {classes} classes; expected 1008 (TF FID Inception) or 1000 "
                                     f"(torchvision); pass architecture= one of {ARCHITECTURES}")
                architecture = "tf_fid" if classes == 1008 else "torchvision"
            net = inception_net(architecture, num_classes=1008 if architecture == "tf_fid" else 1000)
            _load_inception_state(net, state, f"weights file {path}")
            weights_label = f"file {path.name} ({'TF FID' if architecture == 'tf_fid' else 'torchvision'} architecture)"
            note = ("comparable with published FIDs only if this file holds the TF FID Inception weights"
                    if architecture == "tf_fid" else "NOT comparable with published FID/KID")
        else:
            raise ValueError(f"weights must be one of {INCEPTION_WEIGHTS} or a path, got {weights!r}")
        net.fc = nn.Identity()  # unused: free the classifier
        self.net = net
        self.architecture = architecture
        self.weights_label = weights_label
        resize = f"resized to {size} (bilinear{', antialias' if antialias else ''})" if size else "not resized"
        self.label = f"Inception-v3 pool3 (2048-d), {weights_label}, inputs {resize}: {note}"
        self.eval()
        self.requires_grad_(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [0, 1] -> (N, 3, size, size) in [-1, 1] (:func:`inception_preprocess`)."""
        return inception_preprocess(x, self.size, self.antialias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.preprocess(x)
        with torch.no_grad():
            for name in INCEPTION_LAYERS:
                h = getattr(self.net, name)(h)
        return h.flatten(1)

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)  # a fixed measuring instrument: BatchNorm always in eval mode

    def extra_repr(self) -> str:
        return self.label


def inception(weights: str | Path = "imagenet", **kwargs) -> InceptionFeatures:
    """:class:`InceptionFeatures` ``(weights, **kwargs)``."""
    return InceptionFeatures(weights, **kwargs)

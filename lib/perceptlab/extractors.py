"""Feature extractors for FID and KID: the space in which real and generated images are compared.

FID and KID compare *feature distributions*, so a score is only meaningful with the name of its
feature space; every extractor here has a ``label`` that :mod:`perceptlab.metrics` attaches to
its scores.  Extractors are ``nn.Module`` s in eval mode with frozen parameters that map images
(N, C, H, W) in [0, 1] to features (N, D) float32; ``dim`` is D.

- :func:`digits_classifier` (quick preset, offline): a small CNN trained here on scikit-learn's
  digits upscaled to 32x32; its penultimate layer (64-d) is the feature space.  Trained once
  (seconds of CPU) and cached on disk, keyed by its configuration, like the comparators of
  Chapter 2.  FID computed in it is *not* comparable with any published number.
- :class:`InceptionFeatures` (full preset): Inception-v3 pool3 (2048-d), the space of
  published FIDs, with three weight sets:

  * ``"fid"``: the TF-ported "FID Inception" weights (``pt_inception-2015-12-05-6726825d.pth``)
    and architecture of pytorch-fid (Seitzer 2020), i.e. the TensorFlow graph of Heusel et al.
    (2017).  Only these make scores comparable with published FIDs (up to the resizing step:
    see the class docstring).
  * ``"imagenet"``: torchvision's ``Inception_V3_Weights.IMAGENET1K_V1``, a different training
    run: FIDs differ from published ones, often by several points.  Fine for comparing your
    own models with each other.
  * ``"random"``: seeded random weights, for tests.

:func:`extractor_for_preset` picks the preset's extractor.
"""
from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .config import PresetConfig, default_seed, cache_dir, preset as active_preset
from .data import load_digits, to_gray
from .nets import WeightsUnavailableError, imagenet_weights, load_imagenet_state
from .train import classification_step, fit, train_once
from .train import config_key as train_config_key
from .validate import check_image, check_positive_int

# --------------------------------------------------------------------------- Inception-v3 pool3

#: pytorch-fid's port of the TensorFlow FID Inception graph (inception-2015-12-05) to PyTorch.
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")
INCEPTION_WEIGHTS = ("imagenet", "fid", "random")
ARCHITECTURES = ("torchvision", "tf_fid")
#: Inception3's modules from the input to pool3, in forward order (the auxiliary head and fc are unused).
INCEPTION_LAYERS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                    "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")


def fid_weights_path() -> Path:
    """Where torch's hub cache keeps (or expects) pytorch-fid's FID Inception weights.

    This is where ``pytorch_fid`` itself downloads them (``torch.hub.load_state_dict_from_url``),
    so a machine that has run pytorch-fid already has the file.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_URL.rsplit("/", 1)[-1]


def load_fid_inception_state(timeout: float = 10.0) -> dict:
    """The FID Inception state dict: from the hub cache, else downloaded (hash-checked); else a clear error."""
    path = fid_weights_path()
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return torch.hub.load_state_dict_from_url(FID_WEIGHTS_URL, model_dir=str(path.parent), map_location="cpu",
                                                  progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch
        raise WeightsUnavailableError(
            f"The FID Inception weights (TF inception-2015-12-05 ported by pytorch-fid) are not available.\n"
            f"Tried: the file {path} (missing), then downloading {FID_WEIGHTS_URL} ({type(exc).__name__}: {exc}).\n"
            f"Put the file by hand at {path} (set TORCH_HOME to move torch's cache), "
            f"or use weights='imagenet' (torchvision's Inception, scores not comparable with published FIDs) "
            f"or weights='<path to the .pth file>'."
        ) from exc
    finally:
        socket.setdefaulttimeout(old)


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
      (downloaded if possible; offline, :class:`~perceptlab.nets.WeightsUnavailableError` within
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
            state = torch.load(path, map_location="cpu", weights_only=True)
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


# --------------------------------------------------------------------------- the digits classifier

#: Bump when the training procedure changes, so stale cached weights are not reused.
VERSION = 1
N_CLASSES = 10


@dataclass
class DigitsClassifierConfig(PresetConfig):
    """The quick preset's feature network: a small CNN trained on scikit-learn's digits.

    The same in both presets (``FULL`` is empty): the full preset measures in Inception space.
    ``n_test`` digits (a seeded random split) are held out and give the reported test accuracy.
    Training draws batches of the other digits, each shifted by up to ``max_shift`` pixels.
    """

    FULL: ClassVar[dict] = {}

    size: int = 32
    widths: tuple[int, int, int] = (8, 16, 32)
    feature_dim: int = 64
    n_test: int = 360
    steps: int = 400
    batch: int = 64
    lr: float = 2e-3
    max_shift: int = 2
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 100


class DigitsClassifier(nn.Module):
    """conv3-pool x3, then a fully connected layer to ``feature_dim`` (+ReLU): the features; a linear head to 10 classes."""

    def __init__(self, size: int = 32, widths: tuple[int, int, int] = (8, 16, 32), feature_dim: int = 64):
        super().__init__()
        if size % 8:
            raise ValueError(f"size must be a multiple of 8, got {size}")
        w1, w2, w3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, w1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w1, w2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w2, w3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(w3 * (size // 8) ** 2, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def digits_split(config: DigitsClassifierConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train_images, train_labels, test_images, test_labels): a seeded split of the 1797 digits."""
    images, labels = load_digits(config.size)
    if not 0 < config.n_test < len(labels):
        raise ValueError(f"config.n_test must be between 1 and {len(labels) - 1}, got {config.n_test}")
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(config.seed))
    test, train = perm[: config.n_test], perm[config.n_test:]
    return images[train], labels[train], images[test], labels[test]


def shift_batch(x: torch.Tensor, max_shift: int, g: torch.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift]^2, filling with 0 (background)."""
    if max_shift == 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2), generator=g).tolist()
    return torch.stack([padded[i, :, dy: dy + h, dx: dx + w] for i, (dy, dx) in enumerate(offsets)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    """Fraction of ``images`` whose argmax class is the label."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(images.split(batch), labels.split(batch)))
    model.train(was_training)
    return correct / len(labels)


def config_key(config: DigitsClassifierConfig) -> str:
    """A short hash of the configuration and :data:`VERSION` naming the cache folder."""
    return train_config_key(config, VERSION)


def cache_path(config: DigitsClassifierConfig) -> Path:
    return cache_dir() / "extractors" / f"digits_classifier-{config_key(config)}"


def train_digits_classifier(config: DigitsClassifierConfig, device: str | torch.device = "cpu",
                            out_dir: str | Path | None = None, stop_after: int | None = None
                            ) -> tuple[DigitsClassifier, dict]:
    """Train the digits classifier with :func:`perceptlab.train.fit` (checkpoints to ``out_dir``, exact resume).

    Adam with a one-cycle schedule, cross-entropy, batches drawn with replacement from the
    training split and randomly shifted.  Returns (model, meta); ``meta["test_accuracy"]`` is
    measured on the held-out split.
    """
    device = torch.device(device)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = (t.to(device) for t in digits_split(config))
    torch.manual_seed(config.seed)
    model = DigitsClassifier(config.size, config.widths, config.feature_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=max(config.steps, 1))

    def sample(g: torch.Generator, step: int):
        idx = torch.randint(len(y_train), (config.batch,), generator=g).to(device)
        return shift_batch(x_train[idx], config.max_shift, g), y_train[idx]

    history = fit(classification_step(model, opt, sched), sample, state={"model": model, "opt": opt, "sched": sched}, steps=config.steps,
                  seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, stop_after=stop_after,
                  eval_fn=lambda step: {"test_accuracy": accuracy(model, x_test, y_test)},
                  desc="digits classifier")
    model.eval()
    meta = {"train_seconds": time.perf_counter() - start,
            "steps_done": history.records[-1]["step"] if history.records else 0,
            "final_loss": history.last("loss") if history.records else float("nan"),
            "test_accuracy": accuracy(model, x_test, y_test), "n_train": len(y_train), "n_test": len(y_test),
            "config": asdict(config), "version": VERSION, "history": history.records}
    return model.cpu(), meta


class DigitsFeatures(nn.Module):
    """The digits classifier's penultimate layer as a feature extractor: (N, C, H, W) -> (N, feature_dim).

    Inputs: (N, 1, H, W) or (N, 3, H, W) in [0, 1], white digits on black as in ``load_digits``.
    RGB images are converted to grey (BT.709 luminance, :func:`perceptlab.data.to_gray`); images
    whose size is not ``config.size`` are resized to it (bilinear, antialiased when shrinking),
    e.g. 28x28 MNIST.  Features are the ReLU outputs of the layer before the classifier (the
    analogue of Inception's pool3), so dead units give zero-variance coordinates and singular
    covariances, which :func:`perceptlab.metrics.frechet_distance` handles.
    ``label`` reads "digits classifier trained here (test accuracy X, ...)"; ``meta`` holds the
    training record.
    """

    def __init__(self, model: DigitsClassifier, config: DigitsClassifierConfig, meta: dict):
        super().__init__()
        self.model = model
        self.config = config
        self.meta = meta
        self.dim = config.feature_dim
        self.test_accuracy = float(meta["test_accuracy"])
        self.label = (f"digits classifier trained here (test accuracy {self.test_accuracy:.3f} on "
                      f"{meta['n_test']} held-out sklearn digits; {config.feature_dim}-d penultimate layer, "
                      f"{config.size}x{config.size} grey inputs)")
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, "x", channels=(1, 3))
        x = to_gray(x)
        size = self.config.size
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        with torch.no_grad():
            return self.model.features(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10) of the same pre-processed inputs (e.g. to check generated digits)."""
        with torch.no_grad():
            return self.model.head(self(x))

    def train(self, mode: bool = True) -> DigitsFeatures:
        return super().train(False)

    def extra_repr(self) -> str:
        return self.label


def digits_classifier(config: DigitsClassifierConfig | None = None, cache: bool = True,
                      device: str | torch.device = "cpu", retrain: bool = False) -> DigitsFeatures:
    """The quick preset's extractor (:class:`DigitsFeatures`), trained once and cached.

    With ``cache=True`` the weights live in ``<cache_dir>/extractors/digits_classifier-<key>/model.pt``
    (``key`` hashes the config); a later call loads them without training.  An interrupted
    training resumes from ``checkpoint.pt`` in the same folder.  Training takes seconds on a CPU.
    """
    config = config or DigitsClassifierConfig()
    model, meta = train_once(cache_path(config),
                             lambda: DigitsClassifier(config.size, config.widths, config.feature_dim),
                             lambda out_dir: train_digits_classifier(config, device, out_dir=out_dir),
                             cache=cache, retrain=retrain)
    return DigitsFeatures(model, config, meta)


def extractor_for_preset(preset: str | None = None, *, inception_weights: str | Path = "imagenet",
                         **kwargs) -> nn.Module:
    """The preset's extractor: quick -> :func:`digits_classifier`, full -> :class:`InceptionFeatures`.

    ``inception_weights`` picks the full preset's weights ("imagenet" by default; "fid" for scores
    comparable with published FIDs); ``kwargs`` go to the chosen constructor.
    """
    if active_preset(preset) == "quick":
        return digits_classifier(**kwargs)
    return InceptionFeatures(inception_weights, **kwargs)

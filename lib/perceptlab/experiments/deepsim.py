"""DeePSiM experiments (Chapter 4): autoencoders with SE, L1 and DeePSiM losses; inverting a network's features.

Dosovitskiy & Brox (2016).  One training loop (:func:`train_generator`) serves both tasks:
a generator G maps inputs x to images; its loss is SE, L1 or DeePSiM (eq. 1); with an
adversarial term, D is updated first on every step unless the pause rule of Sec. 3.2 holds.
Adam (lr 2e-4, betas 0.9/0.999), batch 64, as in Sec. 3.2.  Trained generators are cached on
disk by config (:func:`perceptlab.train.train_once`) and training resumes from checkpoints.

Quick preset: 32 x 32 crops of bundled photographs, networks at half (autoencoder) or a
quarter (inversion) of the paper's widths, a few hundred steps on a CPU; comparators the
library trains or seeds itself (Exemplar-CNN, random AlexNet).  Full preset: STL-10 64 x 64
crops and the exact Tables 1, 2 and 5, AlexNet's ImageNet weights.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from perceptlab.config import PresetConfig, cache_dir, check_device, default_seed
from perceptlab.data.datasets import load_dataset
from perceptlab.data.images import load_image, random_crops
from perceptlab.imaging.resample import resize
from perceptlab.losses.deepsim import DeePSiMLoss, deepsim_step, make_comparator
from perceptlab.metrics.reconstruction import normalized_euclidean_error
from perceptlab.metrics.sharpness import high_frequency_fraction, relative_sharpness
from perceptlab.models.deepsim import (
    AutoEncoder,
    Comparator,
    Discriminator,
    InversionGenerator,
)
from perceptlab.train import History, config_key, fit, train_once

#: Bump when training changes, so stale cached generators are not reused.
VERSION = 1
#: Bundled photographs the quick autoencoders train on.
AE_TRAIN_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "china", "immunohistochemistry", "brick", "gravel",
                   "grass", "text", "page", "logo")
#: Held-out bundled photographs: the test crops, and the labels ("which photograph?") of the code classifier.
AE_TEST_IMAGES = ("cat", "flower", "retina", "hubble_deep_field", "camera", "coins", "moon", "clock")
#: The autoencoders of Table 3, by name.
AE_LOSSES = ("se", "l1", "deepsim-exemplar", "deepsim-alexnet")
#: Phi's features of an inversion training set are computed once if they take at most this many bytes.
FEATURE_CACHE_BYTES = 1 << 30
#: Inversion losses of the ablation (Fig. 7): (lambda_feat, lambda_adv, lambda_img) switched on or off.
ABLATION = {"image": (0, 0, 1), "feature": (1, 0, 0), "feature+adv": (1, 1, 0), "full": (1, 1, 1)}


# --------------------------------------------------------------------------- configs


@dataclass
class AEConfig(PresetConfig):
    """Autoencoders of Sec. 4.1 (quick defaults; ``FULL``: STL-10 64 x 64 crops, Table 2 exactly)."""

    FULL: ClassVar[dict] = dict(data="stl10", image_size=64, width=1.0, d_width=1.0, steps=100_000, batch=64, lr=2e-4, n_test=2000,
                                alexnet="alexnet-imagenet", alexnet_layer="relu3", n_cls_train=5000,
                                n_cls_test=8000, cls_folds=10, ckpt_every=2000, fid_n=2000)

    data: str = "bundled"  # "bundled" or "stl10"
    image_size: int = 32
    source_size: int = 128  # bundled photographs are resized to this before cropping
    width: float = 0.5
    d_width: float = 0.25
    code_channels: int = 8
    init: str = "he"  # weight init of autoencoder and discriminator (models.deepsim.init_weights)
    variational: bool = False  # the VAE of Sec. 4.2: a sampled code and the KL term of eq. 7
    kl_weight: float = 1e-3  # set by hand, as in the paper
    loss: str = "deepsim-exemplar"  # one of AE_LOSSES
    exemplar_layer: str = "relu3"
    alexnet: str = "alexnet-random"
    alexnet_layer: str = "relu2"
    lambda_feat: float = 1.0
    lambda_adv: float = 0.01
    lambda_img: float = 1.0
    threshold: float = 0.1
    steps: int = 300
    batch: int = 32  # the paper: 64 (full)
    lr: float = 1e-3  # the paper: 2e-4 (full); 300 steps instead of 500 000 need a larger step
    n_test: int = 256
    n_cls_train: int = 512  # code classifier: training crops (quick: of the held-out photographs)
    n_cls_test: int = 512
    cls_folds: int = 4
    fid_n: int = 256
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 250


@dataclass
class InversionConfig(PresetConfig):
    """Inverting a network's features (Sec. 4.3; quick: the Exemplar-CNN; ``FULL``: AlexNet on ImageNet)."""

    FULL: ClassVar[dict] = dict(data="imagenet", image_size=256, net="alexnet-imagenet", layer="fc6",
                                comparator="alexnet-imagenet", comparator_layer="pool5", width=1.0, d_width=1.0,
                                steps=200_000, batch=64, lr=2e-4, n_test=2000, n_train=100_000, ckpt_every=2000, lambda_adv=0.01)

    data: str = "bundled"  # "bundled" or "imagenet" (an ImageFolder under <data_dir>/imagenet/{train,val})
    image_size: int = 32
    source_size: int = 128
    net: str = "exemplar"  # the network whose features are inverted (a registered feature metric)
    layer: str = "gap"
    comparator: str = "exemplar"
    comparator_layer: str = "relu3"
    width: float = 0.125
    d_width: float = 0.25
    init: str = "default"  # weight init of generator and discriminator (models.deepsim.init_weights)
    n_train: int = 4096
    loss: str = "full"  # a key of ABLATION
    lambda_feat: float = 1.0
    lambda_adv: float = 0.01
    lambda_img: float = 1.0
    threshold: float = 0.1
    steps: int = 250
    batch: int = 32  # the paper: 64 (full)
    lr: float = 1e-3  # the paper: 2e-4 (full)
    n_test: int = 256
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 250


# --------------------------------------------------------------------------- data


def _bundled(names: tuple[str, ...], size: int) -> torch.Tensor:
    return torch.cat([load_image(n, size=size).expand(-1, 3, -1, -1) for n in names])


def _stl(split: str, n: int | None, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 STL-10 images (centre ``size`` crops of 96 x 96) and labels; ``n`` random ones, or all."""
    ds = load_dataset("stl10", split)
    images, labels = ds.images, ds.targets
    if n is not None and n < len(images):
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
        images, labels = images[pick], labels[pick]
    m = (images.shape[-1] - size) // 2
    return images[..., m: m + size, m: m + size], labels


def ae_data(config: AEConfig) -> dict[str, torch.Tensor]:
    """``train`` (source images to crop from, uint8 or float), ``test`` (fixed test crops, float),
    ``cls_train``/``cls_test`` (crops and labels for the linear classifier on codes).

    bundled: train on random crops of :data:`AE_TRAIN_IMAGES`; test and classify crops of the
    held-out :data:`AE_TEST_IMAGES`, the label being which photograph a crop comes from.
    stl10: train on the unlabelled split's random crops; test on centre crops of the test split;
    classify STL-10's 10 classes (train split -> test split).
    """
    g = torch.Generator().manual_seed(config.seed + 11)
    if config.data == "bundled":
        held_out = _bundled(AE_TEST_IMAGES, config.source_size)
        test = random_crops(held_out, config.image_size, config.n_test, g)
        xa, ya = random_crops(held_out, config.image_size, config.n_cls_train, g, return_index=True)
        xb, yb = random_crops(held_out, config.image_size, config.n_cls_test, g, return_index=True)
        return {"train": _bundled(AE_TRAIN_IMAGES, config.source_size), "test": test,
                "cls_train": (xa, ya), "cls_test": (xb, yb)}
    if config.data == "stl10":
        train = load_dataset("stl10", "unlabeled").images
        test_x, _ = _stl("test", config.n_test, config.image_size, config.seed)
        xa, ya = _stl("train", config.n_cls_train, config.image_size, config.seed)
        xb, yb = _stl("test", config.n_cls_test, config.image_size, config.seed + 1)
        return {"train": train, "test": test_x.float() / 255, "cls_train": (xa.float() / 255, ya),
                "cls_test": (xb.float() / 255, yb)}
    raise ValueError(f"config.data must be 'bundled' or 'stl10', got {config.data!r}")


# --------------------------------------------------------------------------- objectives


def ae_objective(config: AEConfig, device, reference: torch.Tensor) -> tuple[Callable | DeePSiMLoss,
                                                                             Discriminator | None]:
    """The autoencoder's loss for ``config.loss`` and, for DeePSiM, its discriminator (Table 1)."""
    if config.loss not in AE_LOSSES:
        raise ValueError(f"config.loss must be one of {AE_LOSSES}, got {config.loss!r}")
    if config.loss == "se":
        return mse_any, None
    if config.loss == "l1":
        return l1_any, None
    if config.loss == "deepsim-exemplar":
        comp = comparator_for("exemplar", config.exemplar_layer, _preset_of(config), device)
    else:
        comp = comparator_for(config.alexnet, config.alexnet_layer, _preset_of(config), device)
    return _deepsim(comp, config, device, reference)


def _deepsim(comp: nn.Module, config, device, reference: torch.Tensor,
             feature_dim: int | None = None) -> tuple[DeePSiMLoss, Discriminator | None]:
    """DeePSiMLoss with ``config``'s weights and a Table 1 discriminator (``config.d_width``).

    ``config.lambda_feat`` is relative to the comparator's feature energy: the loss gets
    lambda_feat / mean(C(y)^2) over the ``reference`` images, so that one value suits comparators
    whose activations differ in scale by orders of magnitude (eq. 1 is unchanged; only the
    weight is expressed in other units).  For the ablation losses, terms are switched off.
    """
    lam = [config.lambda_feat, config.lambda_adv, config.lambda_img]
    if getattr(config, "loss", None) in ABLATION:
        lam = [w * on for w, on in zip(lam, ABLATION[config.loss])]
    comp = comp.to(device)
    if lam[0] > 0:
        with torch.no_grad():
            lam[0] /= max(float(comp(reference.to(device)).pow(2).mean()), 1e-12)
    torch.manual_seed(config.seed + 5)
    disc = None
    if lam[1] > 0:
        disc = Discriminator(3, config.image_size, feature_dim=feature_dim, width=config.d_width,
                             init=config.init).to(device)
    return DeePSiMLoss(comp, disc, *lam, threshold=config.threshold), disc


def exemplar_comparator(layer: str, preset: str, device) -> Comparator:
    """The Exemplar-CNN comparator (Chapter 2's, trained once and cached) at ``layer`` for a preset."""
    from perceptlab.models.exemplar import ExemplarConfig, exemplar_cnn

    return Comparator(exemplar_cnn(ExemplarConfig.for_preset(preset), device=device), layer)


def _preset_of(config) -> str:
    """The preset a config's data belongs to (bundled images: quick), for the comparators it trains."""
    return "quick" if config.data == "bundled" else "full"


def comparator_for(name: str, layer: str, preset: str, device) -> Comparator:
    """A comparator by registered metric name and layer; "exemplar" is the Exemplar-CNN of ``preset``
    (Chapter 2's network, trained once and cached), whatever the global preset is."""
    if name == "exemplar":
        return exemplar_comparator(layer, preset, device)
    return make_comparator(name, layer).to(device)


def mse_any(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SE loss (eq. 5 as a mean over pixels) on a generator's unclamped output."""
    return (output - target).pow(2).mean()


def l1_any(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 loss (mean absolute error) on a generator's unclamped output."""
    return (output - target).abs().mean()


# --------------------------------------------------------------------------- training


def train_generator(generator: nn.Module, objective: Callable | DeePSiMLoss, discriminator: nn.Module | None,
                    sample: Callable[[torch.Generator, int], tuple], config, out_dir: str | Path | None = None,
                    stop_after: int | None = None, desc: str = "generator",
                    extra_loss: Callable[[], torch.Tensor] | None = None) -> History:
    """Train ``generator`` on batches ``sample(g, step) -> (inputs, targets, d_features)`` with :func:`fit`.

    Every step is :func:`perceptlab.losses.deepsim_step`: D's update (skipped while
    L_discr / L_adv < ``config.threshold``) then G's.  Adam with ``config.lr`` and betas
    (0.9, 0.999) for both.  Records ``loss`` and, for DeePSiM, ``feat``, ``adv``, ``img``,
    ``loss_discr``, ``d_updated``.  ``extra_loss`` is added to G's loss (the VAE's KL term).
    Checkpoints G, D, both optimisers and the history.
    """
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr, betas=(0.9, 0.999))
    state: dict = {"G": generator, "opt_g": opt_g}
    opt_d = None
    if discriminator is not None:
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr, betas=(0.9, 0.999))
        state.update(D=discriminator, opt_d=opt_d)
        discriminator.train()
    generator.train()

    def step_fn(batch, step: int) -> dict:
        inputs, targets, feats = batch
        return deepsim_step(generator, objective, opt_g, opt_d, inputs, targets, feats, extra_loss)

    history = fit(step_fn, sample, state=state, steps=config.steps, seed=config.seed, out_dir=out_dir,
                  ckpt_every=config.ckpt_every, stop_after=stop_after, desc=desc)
    generator.eval()
    return history


def train_autoencoder(config: AEConfig, device="cpu", out_dir: str | Path | None = None,
                      stop_after: int | None = None, data: dict | None = None) -> tuple[AutoEncoder, dict]:
    """Train one autoencoder of Table 3 (``config.loss``) on random crops; returns (model, meta)."""
    device = check_device(device)
    start = time.perf_counter()
    data = data or ae_data(config)
    source = data["train"].to(device)
    reference = random_crops(source, config.image_size, 256, torch.Generator().manual_seed(config.seed + 6))
    objective, disc = ae_objective(config, device, reference)
    torch.manual_seed(config.seed)
    ae = build_autoencoder(config).to(device)
    if config.variational and not (math.isfinite(config.kl_weight) and config.kl_weight >= 0):
        raise ValueError(f"config.kl_weight must be a non-negative number, got {config.kl_weight!r}")

    def sample(g: torch.Generator, step: int):
        crops = random_crops(source, config.image_size, config.batch, g).to(device)
        return crops, crops, None

    kl = (lambda: config.kl_weight * ae.kl) if config.variational else None
    history = train_generator(ae, objective, disc, sample, config, out_dir, stop_after,
                              desc=f"{'VAE' if config.variational else 'autoencoder'} {config.loss}", extra_loss=kl)
    meta = {"train_seconds": time.perf_counter() - start, "history": history.records,
            "label": ae_label(config, objective)}
    return ae.cpu(), meta


def build_autoencoder(config: AEConfig) -> AutoEncoder:
    """Table 2's autoencoder at ``config``'s sizes (the VAE variant with ``config.variational``)."""
    return AutoEncoder(3, config.image_size, config.code_channels, config.width, variational=config.variational,
                       init=config.init)


@torch.no_grad()
def sample_vae(model: AutoEncoder, n: int, seed: int = 0) -> torch.Tensor:
    """Images decoded from codes z ~ N(0, I) (Sec. 4.2: "sampling the latent variables from a standard
    Gaussian"); raw decoder outputs (N, 3, H, W)."""
    if not model.variational:
        raise ValueError("model must be a VAE (AutoEncoder(variational=True))")
    side = model.image_size // 8
    z = torch.randn(n, model.code_channels, side, side, generator=torch.Generator().manual_seed(seed))
    model.eval()
    return model.decode(z.to(next(model.parameters()).device)).cpu()


def ae_label(config: AEConfig, objective) -> str:
    if config.loss in ("se", "l1"):
        return config.loss.upper()
    return f"DeePSiM ({objective.comparator.label}; lambda feat/adv/img {objective.lambda_feat:g}/" \
           f"{objective.lambda_adv:g}/{objective.lambda_img:g})"


def cache_path(kind: str, config) -> Path:
    return cache_dir() / "deepsim" / f"{kind}-{config_key(config, VERSION)}"


def autoencoder(config: AEConfig, device="cpu", cache: bool = True, retrain: bool = False,
                data: dict | None = None) -> tuple[AutoEncoder, dict]:
    """The trained autoencoder of ``config`` (trained once, cached by config, resumable); returns (model, meta)."""
    device = check_device(device)
    model, meta = train_once(cache_path("ae", config), lambda: build_autoencoder(config),
                             lambda out: train_autoencoder(config, device, out, data=data),
                             cache=cache, retrain=retrain, config=asdict(config))
    return model.eval(), meta


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """``model`` applied in eval mode in batches, on ``x``'s device; the raw (linear) outputs."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(c.to(device)).cpu() for c in x.split(batch)])


@torch.no_grad()
def features_of(net: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    device = next(net.buffers(), torch.zeros(())).device
    return torch.cat([net(c.to(device)).flatten(1).cpu() for c in x.split(batch)])


def code_classification(model: AutoEncoder, train: tuple[torch.Tensor, torch.Tensor],
                        test: tuple[torch.Tensor, torch.Tensor], folds: int, seed: int = 0) -> tuple[float, float]:
    """Table 4: accuracy (mean, std over ``folds``) of a linear classifier on the flattened codes.

    The training set is split into ``folds`` disjoint folds; a logistic-regression classifier
    (scikit-learn; standardised codes) is trained on each and tested on the whole test set.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    device = next(model.parameters()).device
    with torch.no_grad():
        code = lambda x: torch.cat([model.encode(c.to(device)).flatten(1).cpu() for c in x.split(256)]).numpy()
        ca, cb = code(train[0]), code(test[0])
    ya, yb = train[1].numpy(), test[1].numpy()
    order = np.random.default_rng(seed).permutation(len(ya))
    scores = []
    for part in np.array_split(order, folds):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        clf.fit(ca[part], ya[part])
        scores.append(float((clf.predict(cb) == yb).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def realism_extractor(preset: str, device="cpu") -> nn.Module:
    """The feature space of FID/KID: quick: the Exemplar-CNN's pooled relu3 (labelled as such);
    full: Inception-v3 pool3 (Chapter 3's extractor)."""
    if preset == "quick":
        return exemplar_comparator("gap", "quick", device)
    from perceptlab.models.digits import extractor_for_preset

    return extractor_for_preset("full").to(device)


def image_metrics(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Normalized error (image space) and sharpness of ``outputs`` against ``targets``."""
    shown = outputs.clamp(0, 1)
    return {"error_image": normalized_euclidean_error(outputs, targets),
            "sharpness": relative_sharpness(shown, targets),
            "hf_fraction": float(high_frequency_fraction(shown).mean() / high_frequency_fraction(targets).mean())}


def evaluate_autoencoder(model: AutoEncoder, data: dict, config: AEConfig, extractor: nn.Module | None = None,
                         feature_net: nn.Module | None = None) -> dict:
    """Table 3 and more on the test crops: ``error_image`` (normalized Euclidean error), ``error_feature``
    (the same in ``feature_net``'s space), ``sharpness`` (mean gradient magnitude relative to the
    targets), ``hf_fraction`` (high-frequency power fraction relative to the targets), ``fid``/``kid``
    against other held-out crops in ``extractor``'s space, and ``accuracy``/``accuracy_std`` (Table 4)."""
    from perceptlab.metrics.distributions import fid_from_features, kid_from_features

    test = data["test"]
    out = reconstruct(model, test)
    metrics = image_metrics(out, test)
    if feature_net is not None:
        metrics["error_feature"] = normalized_euclidean_error(features_of(feature_net, out), features_of(feature_net, test))
    if extractor is not None:
        n = min(config.fid_n, test.shape[0] // 2)
        f_real, f_fake = features_of(extractor, test[n: 2 * n]), features_of(extractor, out[:n].clamp(0, 1))
        metrics["fid"] = fid_from_features(f_real, f_fake)
        metrics["kid"] = kid_from_features(f_real, f_fake, 50, max(2, n // 2), config.seed)[0]
        f_floor = features_of(extractor, test[:n])
        metrics["fid_floor"] = fid_from_features(f_real, f_floor)
    metrics["accuracy"], metrics["accuracy_std"] = code_classification(model, data["cls_train"], data["cls_test"],
                                                                       config.cls_folds, config.seed)
    return metrics


def run_autoencoders(config: AEConfig, device="cpu", losses: tuple[str, ...] = AE_LOSSES, cache: bool = True,
                     extractor: nn.Module | None = None) -> dict:
    """Train (or load) one autoencoder per loss of ``losses`` and evaluate them (Tables 3 and 4).

    ``extractor``: the FID/KID feature space (default :func:`realism_extractor` of the preset).
    Data, extractor and comparators are all loaded before any training, so missing data or
    weights fail within seconds.  Returns ``models``, ``meta``, ``metrics`` ({loss: metrics}),
    ``test`` crops, ``reconstructions`` ({loss: the first 16 test reconstructions}),
    ``feature_space`` and ``fid_space`` (labels).
    """
    device = check_device(device)
    bad = [l for l in losses if l not in AE_LOSSES]
    if bad or not losses:
        raise ValueError(f"losses must be a non-empty subset of {AE_LOSSES}, got {losses!r}")
    data = ae_data(config)
    preset = _preset_of(config)
    extractor = extractor if extractor is not None else realism_extractor(preset, device)
    feature_net = exemplar_comparator(config.exemplar_layer, preset, device)
    if "deepsim-alexnet" in losses:
        comparator_for(config.alexnet, config.alexnet_layer, preset, device)  # fail fast without weights
    models, meta, metrics, recon = {}, {}, {}, {}
    for loss in losses:
        cfg = replace(config, loss=loss)
        models[loss], meta[loss] = autoencoder(cfg, device, cache=cache, data=data)
        models[loss].to(device)
        metrics[loss] = evaluate_autoencoder(models[loss], data, cfg, extractor, feature_net)
        recon[loss] = reconstruct(models[loss], data["test"][:16]).clamp(0, 1)
    return {"models": models, "meta": meta, "metrics": metrics, "test": data["test"], "reconstructions": recon,
            "feature_space": feature_net.label, "fid_space": getattr(extractor, "label", type(extractor).__name__)}


# --------------------------------------------------------------------------- inversion


def inversion_data(config: InversionConfig) -> dict[str, torch.Tensor]:
    """``train`` (``config.n_train`` fixed training images, uint8) and ``test`` (held-out images, float).

    bundled: crops of :data:`AE_TRAIN_IMAGES` and of the held-out :data:`AE_TEST_IMAGES`.
    Inversion learns from a fixed set (as from ImageNet's training set), so Phi's features of
    the training set can be computed once (:func:`train_inverter`)."""
    g = torch.Generator().manual_seed(config.seed + 11)
    if config.data == "bundled":
        held_out = _bundled(AE_TEST_IMAGES, config.source_size)
        test = random_crops(held_out, config.image_size, config.n_test, g)
        train = random_crops(_bundled(AE_TRAIN_IMAGES, config.source_size), config.image_size, config.n_train, g)
        return {"train": (train * 255).round().to(torch.uint8), "test": test}
    if config.data == "imagenet":
        return imagenet_data(config, g)
    raise ValueError(f"config.data must be 'bundled' or 'imagenet', got {config.data!r}")


def imagenet_data(config: InversionConfig, g: torch.Generator) -> dict[str, torch.Tensor]:
    """ILSVRC-2012 as an image folder under ``<data_dir>/imagenet/{train,val}`` (hand-placed: ImageNet
    needs a login, so there is no download), resized to ``config.image_size``; ``train`` holds
    ``config.n_train`` random training images as uint8, ``test`` ``n_test`` validation images."""
    from perceptlab.config import data_dir
    from perceptlab.data.datasets import DataUnavailableError
    from perceptlab.imaging.convert import read_image, to_uint8

    root = data_dir() / "imagenet"
    files = {s: sorted(p for p in (root / s).rglob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
             if (root / s).is_dir() else [] for s in ("train", "val")}
    if not files["train"] or not files["val"]:
        raise DataUnavailableError(
            f"ImageNet (ILSVRC-2012) was not found: looked for JPEG files under {root / 'train'} and {root / 'val'}. "
            "It cannot be downloaded automatically (it needs a login at https://image-net.org); put the "
            "train and val images there (any sub-folders), or use the quick preset (bundled images).")

    def load(paths: list[Path], n: int) -> torch.Tensor:
        pick = torch.randperm(len(paths), generator=g)[:n].tolist()
        return torch.cat([to_uint8(resize(read_image(paths[i]).expand(-1, 3, -1, -1), config.image_size))
                          for i in pick])

    return {"train": load(files["train"], config.n_train), "test": load(files["val"], config.n_test).float() / 255}


def feature_network(config: InversionConfig, device="cpu") -> Comparator:
    """Phi, the network layer whose features are inverted (``config.net`` at ``config.layer``)."""
    return comparator_for(config.net, config.layer, _preset_of(config), device)


def build_inverter(config: InversionConfig, phi: nn.Module) -> InversionGenerator:
    """Table 5's generator for Phi's output shape: fc mode for vectors, conv mode for maps."""
    device = next(phi.buffers()).device
    with torch.no_grad():
        f = phi(torch.zeros(1, 3, config.image_size, config.image_size, device=device))
    if f.dim() == 2:
        return InversionGenerator(f.shape[1], config.image_size, "fc", width=config.width, init=config.init)
    return InversionGenerator(f.shape[1], config.image_size, "conv", in_spatial=f.shape[-1], width=config.width,
                              init=config.init)


def train_inverter(config: InversionConfig, device="cpu", out_dir: str | Path | None = None,
                   stop_after: int | None = None, data: dict | None = None) -> tuple[InversionGenerator, dict]:
    """Train a generator G(Phi(y)) ~ y with the loss ``config.loss`` (a key of :data:`ABLATION`)."""
    if config.loss not in ABLATION:
        raise ValueError(f"config.loss must be one of {sorted(ABLATION)}, got {config.loss!r}")
    device = check_device(device)
    start = time.perf_counter()
    data = data or inversion_data(config)
    phi = feature_network(config, device)
    comp = comparator_for(config.comparator, config.comparator_layer, _preset_of(config), device)
    with torch.no_grad():
        f = phi(torch.zeros(1, 3, config.image_size, config.image_size, device=device))
    feature_dim = f[0].numel() if f.dim() == 2 else None  # Sec. 3.1: D also sees the (vector) features
    source = data["train"].to(device)
    reference = random_crops(source, config.image_size, 256, torch.Generator().manual_seed(config.seed + 6))
    objective, disc = _deepsim(comp, config, device, reference, feature_dim)
    torch.manual_seed(config.seed)
    G = build_inverter(config, phi).to(device)

    n = source.shape[0]
    cached = None  # Phi of the whole training set, computed once when it fits in FEATURE_CACHE_BYTES
    if n * f[0].numel() * 4 <= FEATURE_CACHE_BYTES:
        with torch.no_grad():
            cached = torch.cat([phi(c.float() / 255) for c in source.split(256)])

    def sample(g: torch.Generator, step: int):
        idx = torch.randint(n, (config.batch,), generator=g).to(device)
        images = source[idx].float() / 255
        if cached is not None:
            feats = cached[idx]
        else:
            with torch.no_grad():
                feats = phi(images)
        return feats, images, feats if feature_dim else None

    history = train_generator(G, objective, disc, sample, config, out_dir, stop_after,
                              desc=f"inverting {config.layer} ({config.loss})")
    return G.cpu(), {"train_seconds": time.perf_counter() - start, "history": history.records,
                     "label": f"{config.loss} loss ({objective.lambda_feat:g}/{objective.lambda_adv:g}/"
                              f"{objective.lambda_img:g}), comparator {comp.label}"}


def inverter(config: InversionConfig, device="cpu", cache: bool = True, retrain: bool = False,
             data: dict | None = None) -> tuple[InversionGenerator, dict]:
    """The trained inversion generator of ``config`` (cached by config, resumable); returns (model, meta)."""
    device = check_device(device)
    phi = feature_network(config, device)
    model, meta = train_once(cache_path("invert", config), lambda: build_inverter(config, phi),
                             lambda out: train_inverter(config, device, out, data=data),
                             cache=cache, retrain=retrain, config=asdict(config))
    return model.eval(), meta


@torch.no_grad()
def invert(generator: nn.Module, phi: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """G(Phi(images)): the reconstruction from the features (raw outputs)."""
    device = next(generator.parameters()).device
    return torch.cat([generator(phi(c.to(device))).cpu() for c in images.split(256)])


@torch.no_grad()
def reencode(generator: nn.Module, phi: nn.Module, images: torch.Tensor, iterations: int) -> list[torch.Tensor]:
    """Fig. 9: y_0 = images, y_{k+1} = G(Phi(y_k)) clamped to [0, 1]; returns [y_1, ..., y_iterations]."""
    out, y = [], images
    for _ in range(iterations):
        y = invert(generator, phi, y).clamp(0, 1)
        out.append(y)
    return out


@torch.no_grad()
def interpolate(generator: nn.Module, phi: nn.Module, a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Fig. 11: G((1 - t) Phi(a) + t Phi(b)) for ``steps`` values of t in [0, 1]; (steps, C, H, W)."""
    device = next(generator.parameters()).device
    fa, fb = phi(a.to(device)), phi(b.to(device))
    t = torch.linspace(0, 1, steps, device=device).view(-1, *([1] * (fa.dim() - 1)))
    return generator((1 - t) * fa + t * fb).clamp(0, 1).cpu()


def total_variation(x: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Mahendran & Vedaldi's TV^beta prior: mean over pixels of ((dx)^2 + (dy)^2)^(beta/2)."""
    dx = x[..., :-1, 1:] - x[..., :-1, :-1]
    dy = x[..., 1:, :-1] - x[..., :-1, :-1]
    return (dx.pow(2) + dy.pow(2)).pow(beta / 2).mean()


def invert_by_optimization(phi: nn.Module, images: torch.Tensor, steps: int = 200, tv_weight: float = 0.05,
                           lr: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Eq. 8 (Mahendran & Vedaldi 2015): argmin_I ||Phi(I) - Phi(I_0)||^2 / ||Phi(I_0)||^2 + tv_weight TV(I),
    by Adam from a grey image with small noise, per image, kept in [0, 1]; returns the images."""
    device = next(phi.buffers()).device
    target = phi(images.to(device)).detach()
    g = torch.Generator().manual_seed(seed)
    x = (0.5 + 0.01 * torch.randn(images.shape, generator=g)).to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    norm = target.pow(2).flatten(1).sum(1).clamp_min(1e-12)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = ((phi(x) - target).pow(2).flatten(1).sum(1) / norm).mean() + tv_weight * total_variation(x)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach().cpu()


def inversion_errors(outputs: torch.Tensor, targets: torch.Tensor, phi: nn.Module) -> dict[str, float]:
    """Fig. 8's pair: normalized Euclidean error in image space and in Phi's feature space."""
    return {"error_image": normalized_euclidean_error(outputs, targets),
            "error_feature": normalized_euclidean_error(features_of(phi, outputs.clamp(0, 1)),
                                                        features_of(phi, targets))}


def run_inversion(config: InversionConfig, device="cpu", losses: tuple[str, ...] = tuple(ABLATION),
                  cache: bool = True, mv_steps: int = 100, mv_images: int = 32) -> dict:
    """Invert ``config.layer`` with each loss of ``losses`` (Fig. 7) and by optimisation (eq. 8);
    errors as in Fig. 8.  Returns ``models``, ``meta``, ``metrics`` ({method: errors and sharpness}),
    ``test``, ``reconstructions`` ({method: first 16}), ``phi`` and labels."""
    device = check_device(device)
    data = inversion_data(config)
    phi = feature_network(config, device)
    test = data["test"]
    models, meta, metrics, recon = {}, {}, {}, {}
    for loss in losses:
        cfg = replace(config, loss=loss)
        models[loss], meta[loss] = inverter(cfg, device, cache=cache, data=data)
        models[loss].to(device)
        out = invert(models[loss], phi, test)
        metrics[loss] = {**inversion_errors(out, test, phi), **image_metrics(out, test)}
        recon[loss] = out[:16].clamp(0, 1)
    if mv_steps:
        k = min(mv_images, test.shape[0])
        out = invert_by_optimization(phi, test[:k], steps=mv_steps, seed=config.seed)
        metrics["optimization"] = {**inversion_errors(out, test[:k], phi), **image_metrics(out, test[:k])}
        recon["optimization"] = out[:16]
    return {"models": models, "meta": meta, "metrics": metrics, "test": test, "reconstructions": recon,
            "phi": phi, "phi_label": phi.label}


def d_pause_fraction(history: list[dict], last: int | None = None) -> float:
    """Fraction of training steps (of the ``last`` ones, or all) on which D was *not* updated."""
    rows = [r for r in history if "d_updated" in r]
    rows = rows[-last:] if last else rows
    return float(1 - np.mean([r["d_updated"] for r in rows])) if rows else math.nan


"""Chapter 5's experiments (Amir & Weiss 2021): random networks on 2AFC with voting, the S-CNN's
infinite-width limit measured, the Generalized Image Mean under patch losses, and the costs and
hyperparameters of the patch MMD.

Each experiment is a config with quick/full presets and one runner, called by the notebooks and by
``python -m perceptlab run {random-2afc, scnn-limit, patch-gim, patch-mmd-costs}``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from perceptlab.config import PresetConfig, default_seed
from perceptlab.data.images import load_image
from perceptlab.data.synthetic_2afc import synthetic_2afc
from perceptlab.data.triplets import load_bapps
from perceptlab.experiments.dcgan import GANConfig, trained_generator
from perceptlab.experiments.gim import GIMConfig
from perceptlab.gim import generalized_mean, shifted_crops
from perceptlab.imaging.codecs import jpeg
from perceptlab.imaging.filters import gaussian_blur
from perceptlab.imaging.patches import image_patches
from perceptlab.imaging.resample import resize
from perceptlab.losses import registry
from perceptlab.losses.patch_mmd import SIGMA, PatchMMD, PatchMMDRFF, patch_mmd
from perceptlab.metrics.sharpness import relative_sharpness
from perceptlab.metrics.twoafc import agreement_row, choice, combine, component_distances
from perceptlab.metrics.voting import network_choices, vote_agreement
from perceptlab.models.scnn import SCNN, infinite_width_distance

# --------------------------------------------------------------------------- (a) random networks on 2AFC


@dataclass
class RandomAgreementConfig(PresetConfig):
    """2AFC agreement of trained, random and patch distances (seed 000, Fig. 2), and the K-network vote.

    Quick: the equal-MSE part of the synthetic 2AFC set (rule-based orderings, not human judgements;
    on its other part, one distortion at two strengths, every metric here scores 1), the Exemplar-CNN
    trained here as the trained network, S-CNNs of width 128.  Full: also BAPPS val
    (human judgements), ImageNet VGG16 and LPIPS, the paper's S-CNN (C = 1024) and K = 20 voters.
    ``vote_k`` random VGG16s (zero-mean first-layer filters, unit-normalised features; seeds 0..K-1) vote;
    the registry's ``vgg-random-zm-norm`` is voter 0.
    """

    FULL: ClassVar[dict] = dict(
        n_per_kind=100, bapps=True, vote_k=20, parts=("strength", "equal_mse"),
        metrics=("l2", "ssim", "vgg-imagenet-norm", "lpips-vgg", "vgg-random", "vgg-random-norm", "vgg-random-zm-norm",
                 "scnn-random", "scnn-random-norm", "patch-mmd-norm", "patch-mmd-rff", "patch-mmd-rff-norm"))

    metrics: tuple[str, ...] = ("l2", "ssim", "exemplar-norm", "vgg-random", "vgg-random-norm", "vgg-random-zm-norm",
                                "scnn-random-c128", "scnn-random-c128-norm", "patch-mmd-norm", "patch-mmd-rff",
                                "patch-mmd-rff-norm")
    vote_k: int = 5
    parts: tuple[str, ...] = ("equal_mse",)
    n_per_kind: int = 12
    size: int = 64
    bapps: bool = False
    bapps_limit: int | None = None
    n_boot: int = 1000
    batch_size: int = 32
    seed: int = 0


#: The registry entry that is voter 0 of the vote (the voters are it with seeds 0..K-1).
VOTER = "vgg-random-zm-norm"


def voter(seed: int) -> torch.nn.Module:
    """Voter ``seed`` of the K-network vote: random VGG16, zero-mean first layer, unit-normalised features."""
    return registry.vgg_metric("random", seed, zero_mean=True, normalize=True)


def run_random_agreement(config: RandomAgreementConfig, device: str | torch.device = "cpu") -> dict:
    """Score every metric and the vote on every 2AFC set.

    Returns ``sets``, ``labels`` ({metric: label}), ``tables`` ({set: [rows]}, rows as
    :func:`perceptlab.metrics.agreement_row`), ``votes`` ({set: row of
    :func:`perceptlab.metrics.vote_agreement`, with each voter's score, the voters' ``choices`` and
    ``split``, the fraction of triplets on which they do not all agree}) and ``seconds`` ({metric: s}).
    """
    if config.vote_k < 1:
        raise ValueError(f"config.vote_k must be >= 1, got {config.vote_k}")
    sets = {part: synthetic_2afc(part, config.n_per_kind, config.size, seed=config.seed) for part in config.parts}
    if config.bapps:
        sets["bapps"] = load_bapps("val", limit=config.bapps_limit, size=config.size)
    labels, seconds = {}, {}
    tables: dict[str, list] = {name: [] for name in sets}
    voter0: dict[str, torch.Tensor] = {}
    for name in config.metrics:
        start = time.perf_counter()
        metric = registry.make(name, reduction="none").to(device)
        labels[name] = metric.label
        for set_name, triplets in sets.items():
            c0, c1 = component_distances(metric, triplets, config.batch_size, device)
            d0, d1 = combine(metric, c0), combine(metric, c1)
            tables[set_name].append(agreement_row(name, d0, d1, triplets, config.n_boot, seed=config.seed))
            if name == VOTER:
                voter0[set_name] = choice(d0, d1, triplets.tie_rtol)
        seconds[name] = time.perf_counter() - start
    start = time.perf_counter()
    votes = {}
    for set_name, triplets in sets.items():
        first = [voter0[set_name][None]] if set_name in voter0 else []
        rest = network_choices((voter(s).to(device) for s in range(len(first), config.vote_k)), triplets,
                               config.batch_size, device) if config.vote_k > len(first) else torch.empty(0, len(triplets))
        choices = torch.cat(first + [rest])
        votes[set_name] = {**vote_agreement(f"vote of {config.vote_k} random VGG16s", choices, triplets, config.n_boot,
                                            seed=config.seed), "choices": choices,
                           "split": float((choices != choices[:1]).any(0).double().mean())}
    seconds["vote"] = time.perf_counter() - start
    labels["vote"] = f"majority vote of {config.vote_k} x [{voter(0).label}], seeds 0-{config.vote_k - 1}"
    return {"sets": sets, "labels": labels, "tables": tables, "votes": votes, "seconds": seconds}


# --------------------------------------------------------------------------- (b) Theorem 2.1, measured


@dataclass
class SCNNLimitConfig(PresetConfig):
    """The finite random S-CNN's distance against its infinite-width limit, as the width grows.

    Image pairs (:func:`limit_pairs`): two different photos, a photo and its blur, a photo and its
    JPEG; ``size`` x ``size`` crops.  For each width, ``n_seeds`` networks.  Quick: 32-pixel crops
    with 16-pixel windows at stride 8 (the theorem holds for any window), widths up to 1024.
    Full: the paper's 64-pixel patches with W = 32, S = 16, widths up to 8192.
    """

    FULL: ClassVar[dict] = dict(size=64, window=32, stride=16, widths=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192),
                                n_seeds=16)

    size: int = 32
    image_size: int = 128
    patch_size: int = 3
    depth: int = 6
    window: int = 16
    stride: int = 8
    normalize_channels: bool = False
    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
    fit_from: int = 64  # the slope is fitted on widths >= this
    n_seeds: int = 16
    n_boot: int = 500  # bootstrap resamples of the networks, for the slope's interval


def limit_pairs(size: int, image_size: int = 128) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(x, y, names): three image pairs of ``size`` x ``size`` centre crops of bundled images."""
    crop = lambda im: im[..., (image_size - size) // 2: (image_size + size) // 2,  # noqa: E731
                         (image_size - size) // 2: (image_size + size) // 2]
    astronaut, chelsea, coffee = (crop(load_image(n, size=image_size)) for n in ("astronaut", "chelsea", "coffee"))
    x = torch.cat([astronaut, coffee, coffee])
    y = torch.cat([chelsea, gaussian_blur(coffee, 1.5), jpeg(coffee, 10)])
    return x, y, ["astronaut vs chelsea", "coffee vs blurred (sigma 1.5)", "coffee vs JPEG (quality 10)"]


def fit_slope(widths, errors) -> float:
    """Least-squares slope of log(error) against log(width)."""
    return float(np.polyfit(np.log(np.asarray(widths, float)), np.log(np.asarray(errors, float)), 1)[0])


@torch.no_grad()
def run_scnn_limit(config: SCNNLimitConfig, device: str | torch.device = "cpu") -> dict:
    """Finite S-CNN distances against :func:`perceptlab.models.scnn.infinite_width_distance`.

    Returns ``names`` (pairs), ``limit`` (P,) float64, ``distances`` (widths, seeds, P), ``rel_error``
    (same shape, (d - limit) / limit), ``rms`` (widths,) over seeds and pairs, ``bias`` (widths,),
    ``slope`` (of log rms against log width, widths >= ``fit_from``) with ``slope_ci``, a 95%
    percentile-bootstrap interval over the networks of each width, and ``seconds`` ({width: s}).
    """
    geometry = dict(patch_size=config.patch_size, depth=config.depth, window=config.window, stride=config.stride)
    x, y, names = limit_pairs(config.size, config.image_size)
    x, y = x.to(device), y.to(device)
    limit = infinite_width_distance(x.double(), y.double(), normalize_channels=config.normalize_channels,
                                    **geometry).cpu()
    dist, seconds = [], {}
    for width in config.widths:
        start = time.perf_counter()
        row = [SCNN(width=width, seed=s, normalize_channels=config.normalize_channels, **geometry).to(device)
               .distance(x, y).double().cpu() for s in range(config.n_seeds)]
        seconds[width] = time.perf_counter() - start
        dist.append(torch.stack(row))
    dist = torch.stack(dist)  # (widths, seeds, pairs)
    rel = (dist - limit) / limit
    rms = rel.pow(2).mean((1, 2)).sqrt()
    fit = [i for i, w in enumerate(config.widths) if w >= config.fit_from]
    widths = [config.widths[i] for i in fit]
    slope, slope_ci = float("nan"), (float("nan"), float("nan"))
    if len(fit) >= 2:
        slope = fit_slope(widths, rms[fit].tolist())
        g = torch.Generator().manual_seed(config.n_seeds)
        boot = []
        for _ in range(config.n_boot):  # resample the networks (seeds) of every width
            pick = torch.randint(config.n_seeds, (len(fit), config.n_seeds), generator=g)
            resampled = torch.stack([rel[i, pick[j]] for j, i in enumerate(fit)])
            boot.append(fit_slope(widths, resampled.pow(2).mean((1, 2)).sqrt().tolist()))
        slope_ci = tuple(float(q) for q in np.quantile(boot, [0.025, 0.975]))
    return {"names": names, "x": x.cpu(), "y": y.cpu(), "limit": limit, "distances": dist, "rel_error": rel,
            "rms": rms, "bias": rel.mean((1, 2)), "slope": slope, "slope_ci": slope_ci, "seconds": seconds}


# --------------------------------------------------------------------------- (c) GIM with patch losses


@dataclass
class PatchGIMConfig(GIMConfig):
    """GIM (seed 000, eq. 1 and Fig. 1) under L2, random networks and the patch MMD, on two target sets.

    (B) shifted crops of one bundled image, as in Chapters 1-2; (A) samples of a DCGAN from a small
    neighbourhood of one latent code (``latent_radius``: the std of the offsets), the Chapter 3
    digits DCGAN as a stand-in for the paper's StyleGAN, upsampled to ``dcgan_size`` and shown in
    colour (three equal channels).  ``mmd_targets`` limits the targets the *exact* patch MMD
    averages over (its cross term grows with their number; the other losses use all ``n``).
    """

    FULL: ClassVar[dict] = dict(image_size=384, crop=256, max_shift=16, n=32, steps=1000, dcgan="full", dcgan_size=128,
                                mmd_targets=32, gan_n_train=None,
                                losses=("l2", "vgg-imagenet-norm", "vgg-random-zm-norm", "scnn-random",
                                        "patch-mmd", "patch-mmd-rff"))

    image: str = "astronaut"
    image_size: int = 80
    crop: int = 48
    max_shift: int = 6
    n: int = 9
    steps: int = 150
    lr: float = 0.05
    losses: tuple[str, ...] = ("l2", "vgg-random-zm-norm", "scnn-random-c128", "patch-mmd", "patch-mmd-rff")
    mmd_targets: int = 9
    dcgan: str = "quick"  # the preset of the Chapter 3 DCGAN (GANConfig), or "" to skip set (A)
    gan_n_train: int | None = 1297  # the digits 03b trains on (the rest are held out for FID); None: all
    gan_overrides: dict = field(default_factory=dict)  # fields of the DCGAN's GANConfig to change (tests shrink it)
    dcgan_size: int = 48
    latent_radius: float = 0.5
    seed: int = 0
    gan_seed: int = field(default_factory=default_seed)


def dcgan_neighbourhood(config: PatchGIMConfig, device: str | torch.device = "cpu") -> tuple[torch.Tensor, dict]:
    """``config.n`` DCGAN samples G(z0 + r eps_i) around one code z0, as (n, 3, dcgan_size, dcgan_size), and G's meta."""
    gan = GANConfig.for_preset(config.dcgan, **{"seed": config.gan_seed, "n_train": config.gan_n_train,
                                                 **config.gan_overrides})
    G, meta = trained_generator(gan, device)
    g = torch.Generator().manual_seed(config.seed + 11)
    z0 = torch.randn(1, gan.nz, generator=g)
    z = z0 + config.latent_radius * torch.randn(config.n, gan.nz, generator=g)
    with torch.no_grad():
        images = G(z.to(device)).cpu().clamp(0, 1)
    images = resize(images, config.dcgan_size).clamp(0, 1)
    return images.expand(-1, 3, -1, -1).contiguous(), meta


def patch_contrast(images: torch.Tensor, patch_size: int = 3) -> torch.Tensor:
    """The standard deviation of every P x P patch (over its pixels and channels): (N, C, H, W) -> (N * n,).

    A loss-independent look at the local patch distribution: blur shrinks it, added texture widens it.
    """
    return image_patches(images, patch_size).std(-1).flatten()


def quantile_w1(a: torch.Tensor, b: torch.Tensor, n: int = 200) -> float:
    """The Wasserstein-1 distance between two 1-D samples, from ``n`` matched quantiles."""
    u = torch.linspace(0.0025, 0.9975, n, dtype=torch.float64)
    return float((torch.quantile(a.double(), u) - torch.quantile(b.double(), u)).abs().mean())


def solve_gim(targets: torch.Tensor, config: PatchGIMConfig, device: str | torch.device = "cpu") -> dict:
    """GIM of ``targets`` under each of ``config.losses``, each started from the targets' pixel mean
    (a grey start is a saddle point of the S-CNN: its input 2x - 1 is zero there and every ReLU is
    off); sharpness and patch-contrast W1 to the targets."""
    targets = targets.to(device)
    init = targets.mean(0, keepdim=True)  # the L2 solution: what each loss changes from blur is its own doing
    solutions, seconds = {}, {}
    for name in config.losses:
        start = time.perf_counter()
        use = targets[: config.mmd_targets] if name in ("patch-mmd", "patch-mmd-norm") else targets
        solutions[name] = generalized_mean(use, name, config.steps, config.lr, init=init).cpu()
        seconds[name] = time.perf_counter() - start
    targets = targets.cpu()
    contrast = patch_contrast(targets)
    sharp = {k: relative_sharpness(v, targets) for k, v in solutions.items()}
    w1 = {k: quantile_w1(patch_contrast(v), contrast) for k, v in solutions.items()}
    mean = targets.mean(0, keepdim=True)
    return {"targets": targets, "mean": mean, "solutions": solutions, "sharpness": sharp, "contrast_w1": w1,
            "mean_contrast_w1": quantile_w1(patch_contrast(mean), contrast), "seconds": seconds}


def run_patch_gim(config: PatchGIMConfig, device: str | torch.device = "cpu") -> dict:
    """GIM on shifted crops (``crops``) and, unless ``config.dcgan`` is "", on DCGAN samples (``dcgan``).

    Each part is :func:`solve_gim`'s dict; ``labels`` names every loss; ``dcgan_meta`` is the
    generator's training record.
    """
    image = load_image(config.image, size=config.image_size)
    out = {"crops": solve_gim(shifted_crops(image, config.crop, config.max_shift, config.n, config.seed), config, device),
           "labels": {name: registry.make(name).label if name != "l2" else "L2 (pixels)" for name in config.losses}}
    if config.dcgan:
        targets, meta = dcgan_neighbourhood(config, device)
        out["dcgan"], out["dcgan_meta"] = solve_gim(targets, config, device), meta
    return out


# --------------------------------------------------------------------------- (d) costs and hyperparameters


@dataclass
class PatchMMDCostConfig(PresetConfig):
    """The RFF estimator's error and time against r, and the patch MMD's hyperparameters on 2AFC.

    Error: ``n_draws`` seeds per r on the :func:`limit_pairs` images (``size`` pixels, W = 32, S = 16).
    Hyperparameters: one at a time around the defaults (P = 3, W = 32, S = 16, sigma = :data:`SIGMA`,
    channel normalisation on), scored on the equal-MSE part of the synthetic 2AFC set (quick;
    rule-based orderings) or BAPPS val (full), with the ``sweep_features``-feature estimate (seed 0)
    or, if None, the exact patch MMD.
    """

    FULL: ClassVar[dict] = dict(n_draws=32, sweep_set="bapps", n_per_kind=50, sweep_features=None,
                                features=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384))

    size: int = 64
    features: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024, 2048)
    n_draws: int = 8
    timing_batch: int = 4
    sigmas: tuple[float, ...] = (0.2, 0.4, 0.6, 0.75, 1.0, 2.0)
    patch_sizes: tuple[int, ...] = (3, 5, 7)
    windows: tuple[tuple[int, int], ...] = ((16, 8), (32, 16), (64, 32))
    sweep_set: str = "equal_mse"
    sweep_features: int | None = 1024
    n_per_kind: int = 10
    bapps_limit: int | None = None
    seed: int = 0


def _time(fn, repeat: int = 3) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def rff_error(config: PatchMMDCostConfig, device: str | torch.device = "cpu") -> dict:
    """Relative error of :class:`PatchMMDRFF` against :func:`patch_mmd` for each r, and forward+backward times."""
    x, y, names = limit_pairs(config.size)
    x, y = x.to(device), y.to(device)
    exact = patch_mmd(x.double(), y.double()).cpu()
    rel, times = [], []
    xb = x[:1].expand(config.timing_batch, -1, -1, -1).contiguous()
    yb = y[:1].expand(config.timing_batch, -1, -1, -1).contiguous()

    def step(loss):
        z = xb.clone().requires_grad_(True)
        loss(z, yb).sum().backward()

    for r in config.features:
        est = torch.stack([PatchMMDRFF(r, seed=s)(x, y).double().cpu() for s in range(config.n_draws)])
        rel.append((est - exact) / exact)
        times.append(_time(lambda: step(PatchMMDRFF(r))))
    exact_time = _time(lambda: step(PatchMMD()))
    rel = torch.stack(rel)  # (features, draws, pairs)
    rms = rel.pow(2).mean((1, 2)).sqrt()
    return {"names": names, "exact": exact, "rel_error": rel, "rms": rms, "slope": fit_slope(config.features, rms),
            "rff_seconds": times, "exact_seconds": exact_time, "timing_batch": config.timing_batch}


def sweep_settings(config: PatchMMDCostConfig) -> list[dict]:
    """The patch MMD settings of the sweep: one hyperparameter varied at a time around the defaults."""
    base = dict(patch_size=3, window=32, stride=16, sigma=SIGMA, normalize_channels=True)
    out = [dict(base, vary="default")]
    out += [dict(base, sigma=s, vary="sigma") for s in config.sigmas if s != SIGMA]
    out += [dict(base, patch_size=p, vary="patch_size") for p in config.patch_sizes if p != 3]
    out += [dict(base, window=w, stride=s, vary="window") for w, s in config.windows if (w, s) != (32, 16)]
    out += [dict(base, normalize_channels=False, vary="normalize_channels")]
    return out


def hyperparameter_sweep(config: PatchMMDCostConfig, device: str | torch.device = "cpu") -> dict:
    """The patch MMD's 2AFC score for each of :func:`sweep_settings` (the RFF estimate with
    ``config.sweep_features`` features, or exact if None); returns ``set``, ``n``, ``metric`` and ``rows``."""
    if config.sweep_set == "bapps":
        triplets = load_bapps("val", limit=config.bapps_limit, size=config.size)
    else:
        triplets = synthetic_2afc(config.sweep_set, config.n_per_kind, config.size, seed=config.seed)
    rows = []
    for setting in sweep_settings(config):
        options = {k: v for k, v in setting.items() if k != "vary"}
        metric = PatchMMD(**options) if config.sweep_features is None else PatchMMDRFF(config.sweep_features, **options)
        c0, c1 = component_distances(metric.to(device), triplets, 16, device)
        row = agreement_row(metric.label, c0[:, 0], c1[:, 0], triplets, 1000, seed=config.seed)
        rows.append({**setting, "score": row["score"], "low": row["low"], "high": row["high"]})
    metric = "exact" if config.sweep_features is None else f"{config.sweep_features} random Fourier features"
    return {"set": triplets.source, "n": len(triplets), "metric": metric, "rows": rows}


def run_patch_mmd_costs(config: PatchMMDCostConfig, device: str | torch.device = "cpu") -> dict:
    """:func:`rff_error` and :func:`hyperparameter_sweep`."""
    return {"rff": rff_error(config, device), "sweep": hyperparameter_sweep(config, device)}


__all__ = [
    "RandomAgreementConfig", "VOTER", "voter", "run_random_agreement",
    "SCNNLimitConfig", "limit_pairs", "fit_slope", "run_scnn_limit",
    "PatchGIMConfig", "dcgan_neighbourhood", "patch_contrast", "quantile_w1", "solve_gim", "run_patch_gim",
    "PatchMMDCostConfig", "rff_error", "sweep_settings", "hyperparameter_sweep", "run_patch_mmd_costs",
]

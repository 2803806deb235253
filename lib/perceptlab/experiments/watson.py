"""Chapter 6's experiments (Czolbe, Krause, Cox & Igel 2020): Watson's model on 2AFC, re-calibrated,
its cost, the translation test, and VAEs trained with it.

``python -m perceptlab run {watson-2afc, watson-vae}`` runs them; the notebooks call the same functions.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from perceptlab.config import PresetConfig, cache_dir, check_device, default_seed
from perceptlab.data.datasets import load_dataset
from perceptlab.data.images import load_digits, load_image, random_crops
from perceptlab.data.synthetic_2afc import synthetic_2afc
from perceptlab.data.triplets import Triplets, load_bapps
from perceptlab.experiments.dcgan import _uint8_stack
from perceptlab.imaging.filters import gaussian_blur
from perceptlab.losses import registry
from perceptlab.losses.watson import WatsonDCT, WatsonDFT
from perceptlab.metrics.distributions import fid_from_features, kid_from_features
from perceptlab.metrics.sharpness import high_frequency_fraction, relative_sharpness
from perceptlab.metrics.twoafc import agreement_row, calibrate_metric, distances
from perceptlab.models.vae import ConvVAE, latent_grid, sample_latent
from perceptlab.train import GeneratorState, config_key, fit, train_once

#: Bump when VAE training changes, so stale cached models are not reused.
VERSION = 2

# --------------------------------------------------------------------------- (b) agreement, calibration, cost

#: 2AFC scores on BAPPS val reported by Czolbe et al. (2020), the data of their Fig. 6 as printed (mean over
#: the six validation sets, in percent) by ``src/perceptual_sim_training/eval-plot.ipynb`` of their repository
#: (commit 3826d7a).  "Deeploss" are their LPIPS-style linear weights on ImageNet VGG16 / SqueezeNet features.
REPORTED_2AFC = {
    "source": "reported by Czolbe et al. 2020 (Fig. 6; values printed by their eval-plot notebook)",
    "setting": "BAPPS 2AFC val (human judgements), mean over its six sets, %",
    "human": 73.7,
    "grey": {"L2": 60.5, "SSIM": 61.5, "Watson-DFT": 63.6, "LPIPS-VGG": 65.8, "LPIPS-Squeeze": 66.3},
    "colour": {"L2": 62.9, "SSIM": 63.1, "Watson-DFT": 66.0, "LPIPS-VGG": 68.9, "LPIPS-Squeeze": 69.9},
}


@dataclass
class WatsonAgreementConfig(PresetConfig):
    """2AFC agreement of pixel, Watson and deep distances (Fig. 6), a re-calibration of Watson's model
    from its untrained values (eqs. 11-12), and the cost of each distance (Table 1).

    Quick: the equal-MSE part of the synthetic 2AFC set (rule-based orderings, not human judgements),
    split in half: the re-calibration trains on one half and every metric is scored on the other;
    Adam with ``calib_lr`` 1e-2 for 150 steps (the paper's 1e-4 moves the parameters too little in
    a CPU budget).  Full: BAPPS 2AFC train for the calibration (lr 1e-4, as in the paper) and val
    for every score, LPIPS and ImageNet VGG16 added.  ``timing_batch`` images of ``size`` pixels:
    forward + backward of each ``timing_metrics`` entry, as a ratio to ``vgg-random``.
    """

    FULL: ClassVar[dict] = dict(
        metrics=("l2", "ssim", "watson-dct", "watson-dft", "watson-dct-grey", "watson-dft-grey",
                 "watson-dct-untrained", "watson-dft-untrained", "vgg-imagenet-norm", "lpips-alex", "lpips-vgg"),
        bapps=True, calib_steps=20_000, calib_lr=1e-4, calib_batch=32, timing_batch=128,
        timing_metrics=("l2", "ssim", "watson-dft-grey", "watson-dft", "watson-dct", "lpips-vgg", "vgg-random"))

    metrics: tuple[str, ...] = ("l2", "ssim", "watson-dct", "watson-dft", "watson-dct-grey", "watson-dft-grey",
                                "watson-dct-untrained", "watson-dft-untrained", "exemplar-norm", "vgg-random-norm",
                                "lpips-alex-random")
    n_per_kind: int = 30
    size: int = 64
    bapps: bool = False
    bapps_limit: int | None = None
    calib_transforms: tuple[str, ...] = ("dft", "dct")
    calib_steps: int = 150
    calib_lr: float = 1e-2
    calib_batch: int = 16
    calib_eval_every: int = 25
    timing_batch: int = 8
    timing_repeat: int = 3
    timing_metrics: tuple[str, ...] = ("l2", "ssim", "watson-dft-grey", "watson-dft", "watson-dct", "vgg-random")
    n_boot: int = 1000
    seed: int = field(default_factory=default_seed)


def agreement_sets(config: WatsonAgreementConfig) -> tuple[Triplets, Triplets]:
    """(calibration set, evaluation set): the two halves of the synthetic set, or BAPPS train and val."""
    if config.bapps:
        return (load_bapps("train", limit=config.bapps_limit, size=config.size),
                load_bapps("val", limit=config.bapps_limit, size=config.size))
    triplets = synthetic_2afc("equal_mse", config.n_per_kind, config.size, seed=config.seed)
    return triplets.split(0.5, seed=config.seed)


def time_forward_backward(metric: nn.Module, x: torch.Tensor, y: torch.Tensor, repeat: int = 3) -> float:
    """Median seconds of one forward + backward of ``metric(x, y).sum()`` w.r.t. ``x`` (after a warm-up)."""
    def once() -> float:
        z = x.detach().clone().requires_grad_(True)
        start = time.perf_counter()
        metric(z, y).sum().backward()
        if z.device.type == "cuda":
            torch.cuda.synchronize(z.device)
        return time.perf_counter() - start

    once()
    return sorted(once() for _ in range(repeat))[repeat // 2]


def metric_costs(names: tuple[str, ...], batch: int, size: int, repeat: int = 3, seed: int = 0,
                 device: str | torch.device = "cpu") -> list[dict]:
    """Forward + backward seconds of each registry metric on ``batch`` random colour images, and the
    speed-up of each over ``vgg-random`` (FeatureLoss on VGG16; weights do not change the cost)."""
    g = torch.Generator().manual_seed(seed)
    x, y = (torch.rand(batch, 3, size, size, generator=g).to(device) for _ in range(2))
    rows = []
    for name in names:
        metric = registry.make(name).to(device)
        metric.requires_grad_(False)
        rows.append({"metric": name, "label": metric.label, "seconds": time_forward_backward(metric, x, y, repeat)})
    ref = next((r["seconds"] for r in rows if r["metric"] == "vgg-random"), None)
    for r in rows:
        r["speedup_vs_vgg"] = ref / r["seconds"] if ref else float("nan")
    return rows


def recalibrate(transform: str, train: Triplets, test: Triplets, config: WatsonAgreementConfig,
                device: str | torch.device = "cpu", out_dir: str | Path | None = None) -> dict:
    """Watson-``transform`` (colour) from the untrained values, trained on ``train`` (eqs. 11-12); returns
    the model, the history (with ``eval_score`` on ``test``), gamma and the scores before and after."""
    model = (WatsonDFT if transform == "dft" else WatsonDCT)(3, pretrained=False)
    before = agreement_row("untrained", *distances(model.to(device), test, 32, device), test, config.n_boot,
                           seed=config.seed)
    result = calibrate_metric(model, train, config.calib_steps, config.calib_lr, config.calib_batch, config.seed,
                              out_dir=out_dir, ckpt_every=max(1, config.calib_steps // 4), eval_triplets=test,
                              eval_every=config.calib_eval_every, device=device)
    with torch.no_grad():
        after = agreement_row("re-calibrated", *distances(model, test, 32, device), test, config.n_boot,
                              seed=config.seed)
    model.label = model.label.replace("untrained starting values", f"re-calibrated here on {train.source}")
    if out_dir is not None:
        model.save_parameters(Path(out_dir) / f"watson-{transform}-recalibrated.json", trained_on=train.source,
                              steps=config.calib_steps, lr=config.calib_lr)
    return {"model": model, "history": result["history"], "gamma": result["gamma"], "before": before, "after": after}


def run_watson_agreement(config: WatsonAgreementConfig, device: str | torch.device = "cpu",
                         out_dir: str | Path | None = None) -> dict:
    """Score every metric on the evaluation set, re-calibrate Watson's model, and time every metric.

    Returns ``train`` and ``test`` (the two sets), ``labels``, ``rows`` (agreement rows on the
    evaluation set, :func:`perceptlab.metrics.agreement_row`), ``calibration`` ({transform: the
    :func:`recalibrate` result}) and ``costs`` (:func:`metric_costs`).
    """
    device = check_device(device)
    train, test = agreement_sets(config)
    labels, rows = {}, []
    for name in config.metrics:
        metric = registry.make(name).to(device)
        labels[name] = metric.label
        with torch.no_grad():
            rows.append(agreement_row(name, *distances(metric, test, 32, device), test, config.n_boot,
                                      seed=config.seed))
    calibration = {}
    for transform in config.calib_transforms:
        folder = Path(out_dir) / f"calibration-{transform}" if out_dir is not None else None
        calibration[transform] = recalibrate(transform, train, test, config, device, folder)
    costs = metric_costs(config.timing_metrics, config.timing_batch, config.size, config.timing_repeat,
                         config.seed, device)
    return {"train": train, "test": test, "labels": labels, "rows": rows, "calibration": calibration,
            "costs": costs}


# --------------------------------------------------------------------------- (a) the translation test


def translation_test(metrics: dict[str, nn.Module], image: str = "astronaut", size: int = 64, n: int = 16,
                     shifts: tuple[int, ...] = (1, 2), blur_sigma: float = 1.0, seed: int = 0) -> list[dict]:
    """How much does each metric charge for moving the content by a few pixels?

    ``n`` crops of ``size`` pixels of a bundled image (seeded positions); each crop's reference is
    compared with the same window moved by ``s`` pixels (a real translation, new content enters at
    the border) and with a Gaussian blur of ``blur_sigma``.  A row per metric and shift gives
    ``ratio`` = median over crops of d(shifted, ref) / d(blurred, ref): below 1, the metric finds
    the shift smaller than a visible blur (what a human observer reports); L2 and a blockwise DCT
    charge a shift heavily.
    """
    big = load_image(image, 256)
    g = torch.Generator().manual_seed(seed)
    margin = max(shifts)
    ys = torch.randint(0, 256 - size - margin, (n,), generator=g).tolist()
    xs = torch.randint(0, 256 - size - margin, (n,), generator=g).tolist()
    crop = lambda dy, dx: torch.cat([big[:, :, y + dy: y + dy + size, x + dx: x + dx + size]  # noqa: E731
                                     for y, x in zip(ys, xs)])
    ref = crop(0, 0)
    blurred = gaussian_blur(ref, blur_sigma).clamp(0, 1)
    rows = []
    for name, metric in metrics.items():
        with torch.no_grad():
            d_blur = metric(blurred, ref).double()
            for s in shifts:
                for direction, (dy, dx) in (("horizontal", (0, s)), ("diagonal", (s, s))):
                    d = metric(crop(dy, dx), ref).double()
                    rows.append({"metric": name, "shift": s, "direction": direction,
                                 "ratio": float((d / d_blur).median())})
    return rows


# --------------------------------------------------------------------------- (c) VAEs


VAE_DATA = ("digits", "mnist", "celeba", "bundled")


@dataclass
class WatsonVAEConfig(PresetConfig):
    """VAEs whose reconstruction term is each loss of ``losses`` (Sec. 4.2, Figs. 3-5).

    Objective per image: d(x_hat, x) / scale + ``beta`` KL(q(z|x) || N(0, I)), where ``scale`` is the
    loss's mean distance between random pairs of training images (so one ``beta`` fits every loss;
    the paper instead searched beta = e^k per loss by eye).  Quick: scikit-learn's digits at 32x32
    (``n_test`` held out), 2-d latent, the Exemplar-CNN trained here as the deep loss, Adam 2e-3.
    Full: MNIST padded to 32x32 with a 2-d latent (Fig. 3), LPIPS-VGG as the deep loss, Adam 1e-4
    halved every ``lr_half_every`` steps as in the paper.  :class:`WatsonColourVAEConfig` is the
    colour VAE (CelebA 64x64, 256-d latent, in the full preset).  Models are cached by config.
    """

    FULL: ClassVar[dict] = dict(data="mnist", losses=("l2", "ssim", "watson-dft-grey-shift",
                                                      "watson-dft-grey-untrained-shift", "lpips-vgg"), n_train=None,
                                steps=50_000, lr=1e-4, lr_half_every=20_000, widths=(32, 64, 128), n_eval=10_000)

    data: str = "digits"
    image_size: int = 32
    latent_dim: int = 2
    widths: tuple[int, ...] = (16, 32, 64)
    losses: tuple[str, ...] = ("l2", "ssim", "watson-dft-grey-shift", "watson-dft-grey-untrained-shift", "exemplar-norm")
    n_train: int | None = None
    n_test: int = 360
    steps: int = 500
    batch: int = 64
    lr: float = 2e-3
    lr_half_every: int = 0
    beta: float = 0.02
    grid: int = 12
    n_eval: int = 360
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 250



@dataclass
class WatsonColourVAEConfig(WatsonVAEConfig):
    """The colour VAE of Figs. 4-5.  Quick: 32x32 crops of bundled colour photographs (``n_train``
    training crops from the first images, ``n_test`` from held-out ones), a 16-d latent, the colour
    Watson-DFT; FID/KID in the Exemplar-CNN's pooled features (trained here).  Full: CelebA 64x64,
    a 256-d latent, LPIPS-VGG as the deep loss, Inception-v3 features."""

    FULL: ClassVar[dict] = dict(data="celeba", image_size=64, latent_dim=256, widths=(32, 64, 128, 256),
                                losses=("l2", "ssim", "watson-dft-shift", "watson-dft-untrained-shift", "lpips-vgg"),
                                n_train=None, steps=100_000,
                                lr=1e-4, lr_half_every=20_000, n_eval=10_000)

    data: str = "bundled"
    latent_dim: int = 16
    widths: tuple[int, ...] = (32, 64, 128)
    losses: tuple[str, ...] = ("l2", "ssim", "watson-dft-shift", "watson-dft-untrained-shift", "exemplar-norm")
    n_train: int | None = 2048
    n_test: int = 256
    n_eval: int = 256


#: Bundled colour photographs of the quick colour VAE: crops of the first train, of the last test.
VAE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "china", "flower")


def vae_data(config: WatsonVAEConfig) -> dict[str, torch.Tensor]:
    """``train`` and ``test`` images (N, C, S, S) float in [0, 1] (digits: a seeded split; MNIST: 28x28
    padded with black to 32x32; CelebA: the official split, 64x64; bundled: crops of
    :data:`VAE_PHOTOS`, the last two held out)."""
    if config.data not in VAE_DATA:
        raise ValueError(f"config.data must be one of {VAE_DATA}, got {config.data!r}")
    if config.data == "digits":
        images = load_digits(config.image_size)[0]
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
        test, train = images[perm[: config.n_test]], images[perm[config.n_test:]]
        return {"train": train[: config.n_train], "test": test}
    if config.data == "bundled":
        photos = [load_image(name, 256) for name in VAE_PHOTOS]
        g = torch.Generator().manual_seed(config.seed)
        return {"train": random_crops(torch.cat(photos[:-2]), config.image_size, config.n_train or 2048, g),
                "test": random_crops(torch.cat(photos[-2:]), config.image_size, config.n_test, g)}
    out = {}
    for split in ("train", "test"):
        dataset = load_dataset(config.data, split)
        limit = config.n_train if split == "train" else config.n_eval
        n = len(dataset) if limit is None else min(limit, len(dataset))
        if config.data == "mnist":
            x = torch.stack([dataset[i][0] for i in range(n)])
            pad = (config.image_size - x.shape[-1]) // 2
            out[split] = torch.nn.functional.pad(x, (pad,) * 4)
        else:
            out[split] = _uint8_stack(dataset, n, config.image_size, f"loading {config.data} {split}").float() / 255
    return out


def as_rgb(x: torch.Tensor) -> torch.Tensor:
    """Grey (N, 1, H, W) repeated to RGB for the registry's distances; RGB unchanged."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def loss_scale(loss: nn.Module, images: torch.Tensor, n: int = 256, seed: int = 0) -> float:
    """Mean distance between ``n`` random pairs of ``images`` (each loss's natural unit on the data)."""
    g = torch.Generator().manual_seed(seed)
    i, j = torch.randint(0, len(images), (2, n), generator=g)
    with torch.no_grad():
        return float(torch.cat([loss(as_rgb(images[a]), as_rgb(images[b]))
                                for a, b in zip(i.split(64), j.split(64))]).double().mean())


def train_vae(config: WatsonVAEConfig, loss_name: str, data: dict, device="cpu",
              out_dir: str | Path | None = None) -> tuple[ConvVAE, dict]:
    """Train one VAE with reconstruction loss ``loss_name`` (checkpoints in ``out_dir``, exact resume)."""
    loss = registry.make(loss_name).to(device)
    loss.requires_grad_(False)
    train = data["train"]
    scale = loss_scale(loss, train.to(device), seed=config.seed)
    torch.manual_seed(config.seed)
    model = ConvVAE(train.shape[1], config.image_size, config.latent_dim, config.widths).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, config.lr_half_every or 10 ** 12, gamma=0.5)

    def sample(g: torch.Generator, step: int) -> torch.Tensor:
        return torch.randint(0, len(train), (config.batch,), generator=g)

    def step_fn(index: torch.Tensor, step: int) -> dict:
        x = train[index].to(device)
        opt.zero_grad(set_to_none=True)
        recon = loss(as_rgb(model(x)), as_rgb(x)).mean() / scale
        total = recon + config.beta * model.kl
        total.backward()
        opt.step()
        sched.step()
        return {"loss": total.item(), "reconstruction": recon.item(), "kl": model.kl.item()}

    start = time.perf_counter()
    state = {"model": model, "opt": opt, "sched": sched}
    if getattr(loss, "shift", False):  # the grid shift's offsets continue where they stopped on resume
        state["loss_generator"] = GeneratorState(loss.generator)
    history = fit(step_fn, sample, state=state, steps=config.steps,
                  seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, desc=f"VAE {loss_name}")
    meta = {"loss": loss_name, "label": loss.label, "scale": scale, "train_seconds": time.perf_counter() - start,
            "final_kl": history.last("kl") if history.records else float("nan"), "history": history.records}
    return model.eval(), meta


def vae(config: WatsonVAEConfig, loss_name: str, device="cpu", cache: bool = True, retrain: bool = False,
        data: dict | None = None) -> tuple[ConvVAE, dict]:
    """The trained VAE of ``config`` and ``loss_name`` (trained once, cached by both, resumable)."""
    device = check_device(device)
    data = data if data is not None else vae_data(config)
    key = {**asdict(config), "loss": loss_name}
    folder = cache_dir() / "watson" / f"vae-{loss_name}-{config_key(config, VERSION)}"
    channels = 1 if config.data in ("digits", "mnist") else 3
    model, meta = train_once(folder, lambda: ConvVAE(channels, config.image_size, config.latent_dim, config.widths),
                             lambda out_dir: train_vae(config, loss_name, data, device, out_dir),
                             cache=cache, retrain=retrain, config=key)
    return model.to(device).eval(), meta


def vae_extractor(config: WatsonVAEConfig, device="cpu") -> nn.Module:
    """The FID/KID feature space: the digits classifier trained here (digits, MNIST), the Exemplar-CNN's
    pooled features (bundled photographs; trained here) or Inception-v3 pool3 (CelebA)."""
    from perceptlab.models.digits import digits_classifier, extractor_for_preset

    if config.data in ("digits", "mnist"):
        return digits_classifier(device=device)
    if config.data == "bundled":
        from perceptlab.experiments.deepsim import exemplar_comparator

        return exemplar_comparator("gap", "quick", device)
    return extractor_for_preset("full").to(device)


def _features(extractor: nn.Module, x: torch.Tensor, device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([extractor(c.to(device)).cpu() for c in x.split(256)])


def evaluate_vae(model: ConvVAE, data: dict, config: WatsonVAEConfig, extractor: nn.Module, device="cpu") -> dict:
    """Samples z ~ N(0, I) and test reconstructions, measured: FID and KID of the samples against
    held-out images in ``extractor``'s space (and the real-vs-real floor), sharpness (mean gradient
    magnitude) and high-frequency fraction of samples and reconstructions relative to the test
    images, the reconstructions' mean squared error, and ``sample_diversity``: the per-pixel standard
    deviation across samples relative to that across test images (near 0: the decoder ignores z,
    a collapsed posterior)."""
    test = data["test"]
    n = min(config.n_eval, len(test))
    with torch.no_grad():
        samples = torch.cat([model.decode(z.to(device)).cpu()
                             for z in sample_latent(n, config.latent_dim, config.seed).split(256)])
        recon = torch.cat([model(x.to(device)).cpu() for x in test[:n].split(256)])
    half = n // 2
    f_real, f_fake = _features(extractor, test[:half], device), _features(extractor, samples[:half], device)
    f_other = _features(extractor, test[half: 2 * half], device)
    hf = lambda x: float(high_frequency_fraction(x).mean())  # noqa: E731
    spread = lambda x: float(x.std(0).mean())  # noqa: E731  (per-pixel spread across images)
    return {"fid": fid_from_features(f_real, f_fake), "fid_floor": fid_from_features(f_real, f_other),
            "kid": kid_from_features(f_real, f_fake, 50, max(2, half // 2), config.seed)[0],
            "kid_floor": kid_from_features(f_real, f_other, 50, max(2, half // 2), config.seed)[0],
            "sample_sharpness": relative_sharpness(samples, test[:n]),
            "recon_sharpness": relative_sharpness(recon, test[:n]),
            "sample_hf": hf(samples) / hf(test[:n]), "recon_hf": hf(recon) / hf(test[:n]),
            "recon_mse": float((recon - test[:n]).pow(2).mean()),
            "sample_diversity": spread(samples) / spread(test[:n]), "n": n}


def run_watson_vae(config: WatsonVAEConfig, device="cpu", cache: bool = True) -> dict:
    """Train (or load) one VAE per loss and measure them; data and the extractor load first (fail fast).

    Returns ``models``, ``meta``, ``metrics`` ({loss: :func:`evaluate_vae`}), ``test`` images,
    ``reconstructions`` ({loss: the first 16 test reconstructions}), ``manifold`` ({loss: decoded
    :func:`latent_grid` over [-1.5, 1.5]^2}, 2-d latents only), ``samples`` ({loss: 64 samples})
    and ``fid_space`` (the extractor's label).
    """
    device = check_device(device)
    data = vae_data(config)
    extractor = vae_extractor(config, device)
    models, meta, metrics, recon, manifold, samples = {}, {}, {}, {}, {}, {}
    for name in config.losses:
        models[name], meta[name] = vae(config, name, device, cache=cache, data=data)
        metrics[name] = evaluate_vae(models[name], data, config, extractor, device)
        with torch.no_grad():
            recon[name] = models[name](data["test"][:16].to(device)).cpu()
            samples[name] = models[name].decode(sample_latent(64, config.latent_dim, config.seed + 1).to(device)).cpu()
            if config.latent_dim == 2:
                manifold[name] = models[name].decode(latent_grid(config.grid).to(device)).cpu()
    return {"models": models, "meta": meta, "metrics": metrics, "test": data["test"], "reconstructions": recon,
            "manifold": manifold, "samples": samples, "fid_space": getattr(extractor, "label", type(extractor).__name__)}


__all__ = [
    "REPORTED_2AFC", "WatsonAgreementConfig", "agreement_sets", "time_forward_backward", "metric_costs", "recalibrate",
    "run_watson_agreement", "translation_test",
    "VAE_DATA", "WatsonVAEConfig", "WatsonColourVAEConfig", "VAE_PHOTOS", "vae_data", "as_rgb", "loss_scale", "train_vae", "vae", "vae_extractor",
    "evaluate_vae", "run_watson_vae",
]

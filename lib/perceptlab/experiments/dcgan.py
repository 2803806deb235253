"""The DCGAN experiment (Chapter 3): data, training with fixed-noise grids, FID/KID evaluation while training.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from perceptlab.config import PresetConfig, cache_dir, check_device, default_device, default_seed, progress
from perceptlab.data.datasets import load_dataset
from perceptlab.data.images import load_digits
from perceptlab.imaging.codecs import save_png
from perceptlab.imaging.convert import to_float, to_uint8
from perceptlab.imaging.resample import resize
from perceptlab.losses.adversarial import (
    GENERATOR_LOSSES,
    discriminator_loss,
    generator_loss,
)
from perceptlab.metrics.pixels import pixel_w1
from perceptlab.models.dcgan import (
    Discriminator,
    Generator,
    _n_upsamplings,
    generate,
    sample_noise,
)
from perceptlab.train import History, config_key, fit, save_cached_model, train_once
from perceptlab.validate import check_image, check_positive_int

DATA_SOURCES = ("digits", "cifar10", "celeba")
#: Version of the cached generators (:func:`trained_generator`); bump it when training changes.
VERSION = 1


class SampleLog:
    """Checkpointable record of the fixed-noise samples: ``steps`` (ints) and ``samples`` (uint8 (n, C, H, W)).

    Passed to :func:`perceptlab.train.fit` in ``state`` so that a resumed run has the grids of
    the epochs before the interruption too.
    """

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.samples: list[torch.Tensor] = []

    def append(self, step: int, images: torch.Tensor) -> None:
        self.steps.append(int(step))
        self.samples.append(to_uint8(images).cpu())

    def as_float(self) -> torch.Tensor:
        """All samples as one float tensor (n_logged, n, C, H, W) in [0, 1]."""
        if not self.samples:
            return torch.empty(0)
        return torch.stack(self.samples).float() / 255

    def state_dict(self) -> dict:
        return {"steps": list(self.steps), "samples": list(self.samples)}

    def load_state_dict(self, state: Mapping) -> None:
        self.steps, self.samples = list(state["steps"]), list(state["samples"])


@dataclass
class GANConfig(PresetConfig):
    """Sizes and data of the DCGAN experiment (quick defaults; ``FULL``: DCGAN on CelebA 64x64).

    ``data``: "digits" (scikit-learn, bundled), "cifar10" (train split) or "celeba" (train split,
    108x108 centre crop resized to 64, :func:`perceptlab.data.celeba_transform`); images are
    resized to ``image_size`` when it differs.  ``n_train``: use the first n_train images (None: all).
    ``g_width``/``d_width``: channels of G's last and D's first hidden layer (DCGAN: 64).
    ``loss``: the generator loss, "non_saturating" or "minimax".  ``steps``: total G (and D)
    updates; one epoch is ceil(n_train / batch) steps and ends with a fixed-noise sample grid.
    """

    FULL: ClassVar[dict] = dict(data="celeba", image_size=64, nz=100, g_width=64, d_width=64, batch=128,
                                steps=10_000, n_grid=64, ckpt_every=500)

    data: str = "digits"
    image_size: int = 32
    n_train: int | None = None
    nz: int = 32
    g_width: int = 16
    d_width: int = 16
    batch: int = 32
    steps: int = 2400
    lr: float = 2e-4
    beta1: float = 0.5
    loss: str = "non_saturating"
    n_grid: int = 64
    n_samples: int = 64
    n_reference: int = 512
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 200


def _uint8_stack(dataset, n: int, size: int, desc: str) -> torch.Tensor:
    """The first n items of an image dataset as one uint8 (n, C, size, size) tensor (JPEGs decoded in workers)."""
    if hasattr(dataset, "images") and dataset.images.dtype == torch.uint8:  # TensorImageDataset: no decoding
        images = dataset.images[:n]
        if images.shape[-1] != size or images.shape[-2] != size:
            images = torch.cat([to_uint8(resize(c.float() / 255, size)) for c in images.split(1024)])
        return images
    subset = torch.utils.data.Subset(dataset, range(n))
    workers = min(8, os.cpu_count() or 1) if n >= 2048 else 0
    loader = torch.utils.data.DataLoader(subset, batch_size=256, num_workers=workers)
    chunks = []
    for x, _ in progress(loader, desc=desc, total=len(loader)):
        if x.shape[-1] != size or x.shape[-2] != size:
            x = resize(x, size)
        chunks.append(to_uint8(x))
    return torch.cat(chunks)


def load_gan_data(config: GANConfig) -> torch.Tensor:
    """Training images (N, C, image_size, image_size): float in [0, 1] for digits, uint8 for photos."""
    _n_upsamplings(config.image_size)
    if config.n_train is not None:
        check_positive_int(config.n_train, "config.n_train")
    if config.data == "digits":
        images = load_digits(config.image_size)[0]
        return images[: config.n_train] if config.n_train is not None else images
    if config.data in ("cifar10", "celeba"):
        dataset = load_dataset(config.data, "train")
        n = len(dataset) if config.n_train is None else min(config.n_train, len(dataset))
        return _uint8_stack(dataset, n, config.image_size, desc=f"loading {config.data}")
    raise ValueError(f"config.data must be one of {DATA_SOURCES}, got {config.data!r}")


def build_models(config: GANConfig, channels: int, device=None) -> tuple[Generator, Discriminator]:
    """G and D for ``config`` with DCGAN initialisation drawn after ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    G = Generator(config.nz, channels, config.image_size, config.g_width)
    D = Discriminator(channels, config.image_size, config.d_width)
    return (G.to(device), D.to(device)) if device is not None else (G, D)


def steps_per_epoch(n_train: int, batch: int) -> int:
    """ceil(n_train / batch): the number of steps that sees (in expectation) every image once."""
    return -(-n_train // batch)


def run_gan(config: GANConfig, device: str | torch.device | None = None, out_dir: str | Path | None = None,
            stop_after: int | None = None, eval_fn: Callable[[Generator, int], Mapping[str, float]] | None = None,
            eval_every: int | None = None) -> dict:
    """Train a DCGAN on ``config.data`` with :func:`perceptlab.train.fit`.

    One step = one discriminator update on a real batch and a fake batch G(z), then one
    generator update on D's logits of the same fakes with the updated D (Goodfellow et al.
    2014, Algorithm 1 with k = 1; fakes reused as in the PyTorch DCGAN example).  Real
    images and noise are drawn from fit's data generator, so training does not use the
    global RNG and a run stopped after any checkpoint resumes bit-identically: both
    networks, both Adam optimisers, the history and the sample grids are checkpointed
    to ``out_dir/checkpoint.pt`` every ``config.ckpt_every`` steps.

    At the end of every epoch (and at the last step) G, in eval mode, maps a *fixed*
    noise batch (``config.n_grid`` vectors, seed ``config.seed + 1``) to images: the same
    z's over training show how G's mapping evolves.  These are kept (``grids``) and, with
    ``out_dir``, written to ``out_dir/grids/step_<step>.png``; the record of that step gets
    ``epoch`` and ``pixel_w1`` (:func:`pixel_w1` of the grid against ``n_reference`` real images).

    Args:
        eval_fn: ``eval_fn(G, step) -> {name: float}``, e.g. FID/KID of samples of G against
            real images, merged into the history record of ``step`` at the end of every
            epoch (``eval_every=None``), every ``eval_every`` steps, or only at the last
            step (``eval_every=0``); always at the last step.  G is in eval mode and under
            ``torch.no_grad()`` when it is called, and back in train mode afterwards.  Draw
            its noise from a seeded generator of its own (:func:`generate`); the global RNG
            it may use does not affect training, and is checkpointed anyway.
        eval_every: period of ``eval_fn`` in steps; None: once per epoch; 0: only at the last step.
        stop_after: stop after this many steps, as if the session died (see ``fit``).

    Returns:
        ``generator``, ``discriminator`` (both in eval mode), ``history`` (per step:
        ``loss_d``, ``loss_g``, ``d_real``/``d_fake`` = mean D on the real/fake batch before
        the D update, ``acc_d`` = fraction of both classified right, plus the epoch-end and
        ``eval_fn`` entries), ``grids`` (float (n_logged, n_grid, C, H, W) in [0, 1], uint8-
        rounded), ``grid_steps``, ``fixed_noise``, ``samples`` (``n_samples`` images from
        seed ``config.seed + 2``), ``real`` (the reference real images) and ``metrics``
        (``pixel_w1_init``, ``pixel_w1_final``, ``d_real``/``d_fake``/``acc_d`` averaged over
        the last epoch, ``steps_per_epoch``).
    """
    if config.loss not in GENERATOR_LOSSES:
        raise ValueError(f"config.loss must be one of {GENERATOR_LOSSES}, got {config.loss!r}")
    for name in ("batch", "n_grid", "n_samples", "n_reference"):
        check_positive_int(getattr(config, name), f"config.{name}")
    if eval_every is not None and (isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0):
        raise ValueError(f"eval_every must be None (once per epoch) or a non-negative integer, got {eval_every!r}")
    device = default_device(device)
    images = load_gan_data(config)
    n_train, channels = images.shape[0], images.shape[1]
    spe = steps_per_epoch(n_train, config.batch)
    eval_period = spe if eval_every is None else eval_every
    pick = torch.randperm(n_train, generator=torch.Generator().manual_seed(config.seed + 3))[: config.n_reference]
    real_ref = to_float(images[pick])
    images = images.to(device)

    G, D = build_models(config, channels, device)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr, betas=(config.beta1, 0.999))
    fixed_noise = sample_noise(config.n_grid, config.nz, torch.Generator().manual_seed(config.seed + 1))
    log = SampleLog()
    grid_dir = Path(out_dir) / "grids" if out_dir is not None else None

    @torch.no_grad()
    def fixed_samples() -> torch.Tensor:
        G.eval()
        out = G(fixed_noise.to(device)).cpu()
        G.train()
        return out

    w1_init = pixel_w1(fixed_samples(), real_ref)

    def sample(g: torch.Generator, step: int):
        idx = torch.randint(n_train, (config.batch,), generator=g)
        z = sample_noise(config.batch, config.nz, g)
        return to_float(images[idx.to(device)]), z.to(device)

    def step_fn(batch, step: int) -> dict:
        real, z = batch
        fake = G(z)
        real_logits, fake_logits = D(real), D(fake.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = generator_loss(D(fake), config.loss)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        acc = 0.5 * ((real_logits > 0).float().mean() + (fake_logits < 0).float().mean())
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item(), "acc_d": acc.item()}

    def on_step_end(done: int) -> dict:
        record: dict = {}
        if done % spe == 0 or done == config.steps:
            grid = fixed_samples()
            log.append(done, grid)
            record.update(epoch=done / spe, pixel_w1=pixel_w1(grid, real_ref))
            if grid_dir is not None:
                save_png(log.samples[-1], grid_dir / f"step_{done:06d}.png", nrow=math.ceil(math.sqrt(config.n_grid)))
        if eval_fn is not None and ((eval_period and done % eval_period == 0) or done == config.steps):
            G.eval()
            with torch.no_grad():
                record.update(eval_fn(G, done))
            G.train()
        return record

    G.train()
    D.train()
    history: History = fit(step_fn, sample, state={"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, "grids": log},
                           steps=config.steps, seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every,
                           eval_fn=on_step_end, eval_every=1, stop_after=stop_after,
                           desc=f"DCGAN {config.data} {config.image_size}px")
    G.eval()
    D.eval()
    samples = generate(G, config.n_samples, seed=config.seed + 2).cpu()
    last = [r for r in history.records if r["step"] > history.records[-1]["step"] - spe] if history.records else []
    metrics = {"pixel_w1_init": w1_init, "pixel_w1_final": pixel_w1(samples, real_ref), "steps_per_epoch": spe}
    for key in ("d_real", "d_fake", "acc_d"):
        metrics[key] = float(np.mean([r[key] for r in last])) if last else float("nan")
    return {"generator": G, "discriminator": D, "history": history, "grids": log.as_float(),
            "grid_steps": list(log.steps), "fixed_noise": fixed_noise, "samples": samples, "real": real_ref,
            "metrics": metrics}


def held_out_real(config: GANConfig, n: int) -> torch.Tensor:
    """Up to ``n`` real images (float, [0, 1]) that :func:`run_gan` does *not* train on, at ``config.image_size``.

    digits: the digits after the first ``config.n_train`` (so set ``n_train`` below 1797; with
    ``n_train=None`` every digit is a training digit and this raises); cifar10: the test split;
    celeba: the test split.  The reference set for FID/KID of a generator: a score against the
    training images would reward memorising them.
    """
    check_positive_int(n, "n")
    _n_upsamplings(config.image_size)
    if config.data == "digits":
        images = load_digits(config.image_size)[0]
        if config.n_train is None or config.n_train >= len(images):
            raise ValueError(f"held-out digits need config.n_train < {len(images)} (the GAN trains on the first "
                             f"n_train digits), got n_train={config.n_train}")
        return images[config.n_train:][:n]
    if config.data in ("cifar10", "celeba"):
        dataset = load_dataset(config.data, "test")
        return to_float(_uint8_stack(dataset, min(n, len(dataset)), config.image_size,
                                      desc=f"loading {config.data} test"))
    raise ValueError(f"config.data must be one of {DATA_SOURCES}, got {config.data!r}")


class FIDEval:
    """``eval_fn`` for :func:`run_gan`: FID and KID of ``n`` samples of G against fixed real images.

    The real images' features are computed once, here; each call draws ``n`` samples with
    :func:`generate` (seed ``seed``: the same noise every time, so changes are G's), extracts
    their features and returns ``{"fid": ..., "kid": ..., "kid_std": ...}`` (KID's mean and
    standard deviation over ``kid_subsets`` subsets of ``kid_subset_size``; with subsets as large
    as the sets the std would be 0, hence the default n // 2).  ``feature_space`` is the
    extractor's ``label``: quote it with the numbers, scores from different extractors are not
    comparable.  ``seconds`` accumulates the time spent in calls.
    """

    def __init__(self, extractor: nn.Module, real: torch.Tensor, n: int = 500, seed: int = 0, *,
                 kid_subsets: int = 50, kid_subset_size: int | None = None, batch_size: int = 256, device=None):
        from perceptlab.metrics.distributions import extractor_label, features

        check_image(real, "real")
        check_positive_int(n, "n")
        check_positive_int(kid_subsets, "kid_subsets")
        if n < 2 or real.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 samples on each side, got n={n} and {real.shape[0]} real images")
        self.extractor, self.n, self.seed = extractor, n, seed
        self.kid_subsets = kid_subsets
        self.kid_subset_size = kid_subset_size or max(2, min(n, real.shape[0]) // 2)
        self.batch_size, self.device = batch_size, device
        self.feature_space = extractor_label(extractor)
        self.real_features = features(real, extractor, batch_size=batch_size, device=device, name="real")
        self.seconds = 0.0

    @torch.no_grad()
    def __call__(self, generator: Generator, step: int | None = None) -> dict[str, float]:
        import time

        from perceptlab.metrics.distributions import (
            features,
            fid_from_features,
            kid_from_features,
        )

        start = time.perf_counter()
        fake = generate(generator, self.n, seed=self.seed, batch_size=self.batch_size)
        f_fake = features(fake, self.extractor, batch_size=self.batch_size, device=self.device, name="fake")
        kid, kid_std = kid_from_features(self.real_features, f_fake, self.kid_subsets, self.kid_subset_size, self.seed)
        out = {"fid": fid_from_features(self.real_features, f_fake), "kid": kid, "kid_std": kid_std}
        self.seconds += time.perf_counter() - start
        return out


def real_floor(evaluator: FIDEval, train: torch.Tensor, n: int | None = None, seed: int = 7) -> dict[str, float]:
    """The floor of FID and KID: ``n`` random images of ``train`` (the training images, :func:`load_gan_data`;
    seed ``seed``) against the evaluator's held-out images, in the same feature space and at the same N.
    A generator that reproduced the training distribution perfectly would score about this, not 0.
    Returns ``fid``, ``kid``, ``kid_std``.
    """
    from perceptlab.metrics.distributions import features, fid_from_features, kid_from_features

    pick = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(seed))[: n or evaluator.n]
    f_train = features(to_float(train[pick]), evaluator.extractor)
    kid, kid_std = kid_from_features(evaluator.real_features, f_train, evaluator.kid_subsets,
                                     evaluator.kid_subset_size, evaluator.seed)
    return {"fid": fid_from_features(evaluator.real_features, f_train), "kid": kid, "kid_std": kid_std}


def fid_eval_fn(extractor: nn.Module, real: torch.Tensor, n: int = 500, seed: int = 0, **kwargs) -> FIDEval:
    """:class:`FIDEval` (an ``eval_fn`` for :func:`run_gan` computing FID and KID against ``real``)."""
    return FIDEval(extractor, real, n, seed, **kwargs)


def generator_cache_path(config: GANConfig) -> Path:
    """Where :func:`trained_generator` keeps the generator of ``config``: ``<cache_dir>/dcgan/generator-<key>``."""
    return cache_dir() / "dcgan" / f"generator-{config_key(config, VERSION)}"


def trained_generator(config: GANConfig, device: str | torch.device = "cpu", cache: bool = True,
                      retrain: bool = False) -> tuple[Generator, dict]:
    """The generator of :func:`run_gan` with ``config``, trained once and cached by config; (G in eval mode, meta).

    Later chapters use the Chapter 3 DCGAN as a source of images (Chapter 5 draws samples from a
    small neighbourhood of one latent code).  Training resumes from the cache folder's checkpoint
    if it was interrupted; ``meta`` holds the run's ``metrics``.
    """
    device = check_device(device)
    channels = 1 if config.data == "digits" else 3

    def train(out_dir):
        result = run_gan(config, device, out_dir=out_dir)
        return result["generator"], {"metrics": result["metrics"]}

    G, meta = train_once(generator_cache_path(config),
                         lambda: Generator(config.nz, channels, config.image_size, config.g_width), train,
                         cache=cache, retrain=retrain, config=asdict(config))
    return G.to(device).eval(), meta


def cache_generator(config: GANConfig, result: dict) -> None:
    """Store the generator of a finished :func:`run_gan` ``result`` (trained with ``config``) where
    :func:`trained_generator` looks for it, so that later chapters load it instead of training again."""
    save_cached_model(generator_cache_path(config), result["generator"], asdict(config),
                      {"metrics": result["metrics"]})

"""4x super-resolution trained with L2 (Chapter 1): PSNR gains, sharpness losses.
"""
from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from perceptlab.config import PresetConfig, check_device, default_seed
from perceptlab.data.datasets import load_dataset
from perceptlab.data.images import PatchDataset, random_crops
from perceptlab.imaging.resample import downsample, upsample_bicubic
from perceptlab.losses.pixel import mse, psnr_from_mse
from perceptlab.losses.registry import resolve
from perceptlab.metrics.sharpness import relative_sharpness
from perceptlab.models.srnet import SRNet
from perceptlab.train import History, fit


@dataclass
class SRConfig(PresetConfig):
    """Sizes and data of the super-resolution experiment. ``data``: "bundled", "stl10" or "div2k"."""

    # STL-10 (Coates et al. 2011): 100k unlabelled 96x96 photos for training, the test split for evaluation.
    FULL: ClassVar[dict] = dict(data="stl10", patch=96, n_train=100_000, n_test=512, width=64, depth=10,
                                steps=20_000, batch=64, lr=1e-3, ckpt_every=1000, eval_every=500)

    data: str = "bundled"
    train_images: tuple[str, ...] = ("astronaut", "chelsea", "rocket", "brick", "grass", "gravel", "china", "camera")
    test_images: tuple[str, ...] = ("coffee", "flower")
    image_size: int = 256
    patch: int = 32
    scale: int = 4
    n_train: int = 4096
    n_test: int = 64
    width: int = 32
    depth: int = 5
    steps: int = 300
    batch: int = 32
    lr: float = 2e-3
    loss: str = "l2"
    seed: int = field(default_factory=default_seed)
    ckpt_every: int = 100
    eval_every: int = 25  # held-out PSNR and sharpness every so many steps (0: only at the end)


def _stack(dataset, n: int) -> torch.Tensor:
    n = min(n, len(dataset))
    return torch.stack([dataset[i][0] for i in range(n)])


def make_patches(config: SRConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) HR patches (N, C, patch, patch) in [0, 1] from the configured source."""
    if config.data == "bundled":
        train = PatchDataset(list(config.train_images), config.patch, config.n_train, seed=config.seed,
                             image_size=config.image_size).patches
        test = PatchDataset(list(config.test_images), config.patch, config.n_test, seed=config.seed + 1,
                            image_size=config.image_size).patches
        return train, test
    if config.data == "stl10":
        train_set, test_set = load_dataset("stl10", "unlabeled"), load_dataset("stl10", "test")
        g = torch.Generator().manual_seed(config.seed)
        train = random_crops(_stack(train_set, config.n_train), config.patch, min(config.n_train, len(train_set)), g)
        test = random_crops(_stack(test_set, config.n_test), config.patch, min(config.n_test, len(test_set)), g)
        return train, test
    if config.data == "div2k":
        g = torch.Generator().manual_seed(config.seed)
        return (crops_per_image(load_dataset("div2k", "train"), config.patch, config.n_train, g),
                crops_per_image(load_dataset("div2k", "valid"), config.patch, config.n_test, g))
    raise ValueError(f"config.data must be 'bundled', 'stl10' or 'div2k', got {config.data!r}")


def crops_per_image(dataset, size: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random ``size``-pixel crops from a dataset of images of different sizes (DIV2K), an equal
    number from each image in order (each image read once), (n, C, size, size) in [0, 1]."""
    per = math.ceil(n / len(dataset))
    crops, count = [], 0
    for i in range(len(dataset)):
        crops.append(random_crops(dataset[i][0].unsqueeze(0), size, per, generator))
        count += per
        if count >= n:
            break
    return torch.cat(crops)[:n]


def run_superres(config: SRConfig, device: str | torch.device = "cpu", out_dir=None,
                 stop_after: int | None = None) -> dict:
    """Train :class:`SRNet` with ``config.loss`` and evaluate it on held-out patches.

    Every ``config.eval_every`` steps (and at the last) the history records the held-out set's
    ``test_psnr`` and ``test_sharpness`` (gradient magnitude relative to the ground truth), so
    training can be compared with bicubic on the same patches.  Checkpoints to ``out_dir`` (if
    given) every ``ckpt_every`` steps and resumes exactly.
    Returns the model, history, test tensors (``lr``, ``hr``, ``bicubic``, ``output``)
    and ``metrics``: PSNR (dB) and sharpness relative to the ground truth for
    bicubic and for the network.
    """
    device = check_device(device)
    train, test = make_patches(config)
    train = train.to(device)
    torch.manual_seed(config.seed)
    model = SRNet(train.shape[1], config.width, config.depth, config.scale).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.steps, 1))
    loss_fn = resolve(config.loss, reduction="mean")

    def sample(g: torch.Generator, step: int) -> torch.Tensor:
        return train[torch.randint(train.shape[0], (config.batch,), generator=g).to(device)]

    def step_fn(hr: torch.Tensor, step: int) -> dict:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(downsample(hr, config.scale)).clamp(0, 1), hr)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.item()}

    hr = test.to(device)
    lr = downsample(hr, config.scale)
    bic = upsample_bicubic(lr, config.scale)
    # PSNR of the whole held-out set: one MSE over all its patches (losses.mse), in dB (losses.psnr_from_mse).
    # The mean of per-patch PSNRs (losses.psnr) would be dominated by the flat patches, where both
    # bicubic and the network are nearly exact and a small difference is many dB.
    set_psnr = lambda x: float(psnr_from_mse(mse(x.clamp(0, 1), hr).double()))  # noqa: E731

    @torch.no_grad()
    def predict() -> torch.Tensor:
        model.eval()
        out = torch.cat([model(chunk).clamp(0, 1) for chunk in lr.split(256)])
        model.train()
        return out

    def evaluate(step: int) -> dict:
        out = predict()
        return {"test_psnr": set_psnr(out), "test_sharpness": relative_sharpness(out, hr)}

    history: History = fit(step_fn, sample, state={"model": model, "opt": opt, "sched": sched}, steps=config.steps,
                           seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, stop_after=stop_after,
                           eval_fn=evaluate, eval_every=config.eval_every, desc=f"x{config.scale} SR ({config.loss})")
    out = predict()
    model.eval()
    metrics = {
        "psnr_bicubic": set_psnr(bic),
        "psnr_network": set_psnr(out),
        "sharpness_bicubic": relative_sharpness(bic, hr),
        "sharpness_network": relative_sharpness(out, hr),
        "final_train_loss": history.last("loss") if history.records else float("nan"),
    }
    return {"model": model, "history": history, "metrics": metrics,
            "images": {"hr": hr.cpu(), "lr": lr.cpu(), "bicubic": bic.cpu(), "output": out.cpu()}}

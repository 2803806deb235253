"""x4 super-resolution regressed with a pixel loss: the "L2 regression blurs" experiment (Chapter 1).

A low-resolution (LR) input is made by averaging ``scale`` x ``scale`` blocks of a
high-resolution (HR) patch.  Many sharp HR patches map to the same LR patch, so a
deterministic network trained with L2 learns to predict (approximately) their
conditional mean, which is blurry (Amir & Weiss 2021, Sec. 1.1).  We measure it:
PSNR goes up relative to bicubic upsampling, while sharpness stays below that of
the ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .data import PatchDataset, load_dataset, random_crops
from .gim import gradient_magnitude
from .config import PresetConfig, default_seed
from .train import History, fit
from .validate import check_image


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """Average-pool (N, C, H, W) images by ``scale`` (the degradation: box filter + subsampling)."""
    check_image(hr, "hr")
    if hr.shape[-1] % scale or hr.shape[-2] % scale:
        raise ValueError(f"hr height and width must be multiples of scale={scale}, got {tuple(hr.shape[-2:])}")
    return F.avg_pool2d(hr, scale)


def upsample_bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling by ``scale``, clamped to [0, 1] (the classical baseline)."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)


class SRNet(nn.Module):
    """A small residual CNN: bicubic upsampling plus a learned correction.

    (N, C, h, w) LR in [0, 1] -> (N, C, h*scale, w*scale); ``depth`` 3x3 conv layers of ``width`` channels.
    """

    def __init__(self, channels: int = 3, width: int = 32, depth: int = 5, scale: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + self.body(up)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for [0, 1] images: 10 log10(1 / MSE), over the whole batch.

    One MSE over all pixels of the batch (not the mean of per-image PSNRs, :func:`losses.psnr`);
    +inf for identical batches.
    """
    return float(losses.psnr_from_mse(losses.mse(x.clamp(0, 1), y).double()))


@dataclass
class SRConfig(PresetConfig):
    """Sizes and data of the super-resolution experiment. ``data``: "bundled" or "stl10"."""

    # STL-10 (Coates et al. 2011): 100k unlabelled 96x96 photos for training, the test split for evaluation.
    FULL: ClassVar[dict] = dict(data="stl10", patch=96, n_train=100_000, n_test=512, width=64, depth=10,
                                steps=20_000, batch=64, lr=1e-3, ckpt_every=1000)

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
    raise ValueError(f"config.data must be 'bundled' or 'stl10', got {config.data!r}")


def run_superres(config: SRConfig, device: str | torch.device = "cpu", out_dir=None,
                 stop_after: int | None = None) -> dict:
    """Train :class:`SRNet` with ``config.loss`` and evaluate it on held-out patches.

    Checkpoints to ``out_dir`` (if given) every ``ckpt_every`` steps and resumes exactly.
    Returns the model, history, test tensors (``lr``, ``hr``, ``bicubic``, ``output``)
    and ``metrics``: PSNR (dB) and sharpness relative to the ground truth for
    bicubic and for the network.
    """
    device = torch.device(device)
    train, test = make_patches(config)
    train = train.to(device)
    torch.manual_seed(config.seed)
    model = SRNet(train.shape[1], config.width, config.depth, config.scale).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.steps, 1))
    loss_fn = losses.get(config.loss)

    def sample(g: torch.Generator, step: int) -> torch.Tensor:
        return train[torch.randint(train.shape[0], (config.batch,), generator=g).to(device)]

    def step_fn(hr: torch.Tensor, step: int) -> dict:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(downsample(hr, config.scale)).clamp(0, 1), hr)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.item()}

    history: History = fit(step_fn, sample, state={"model": model, "opt": opt, "sched": sched}, steps=config.steps,
                           seed=config.seed, out_dir=out_dir, ckpt_every=config.ckpt_every, stop_after=stop_after,
                           desc=f"x{config.scale} SR ({config.loss})")
    model.eval()
    with torch.no_grad():
        hr = test.to(device)
        lr = downsample(hr, config.scale)
        out = torch.cat([model(chunk).clamp(0, 1) for chunk in lr.split(256)])
        bic = upsample_bicubic(lr, config.scale)
    truth_sharp = float(gradient_magnitude(hr).mean())
    metrics = {
        "psnr_bicubic": psnr(bic, hr),
        "psnr_network": psnr(out, hr),
        "sharpness_bicubic": float(gradient_magnitude(bic).mean()) / truth_sharp,
        "sharpness_network": float(gradient_magnitude(out).mean()) / truth_sharp,
        "final_train_loss": history.last("loss") if history.records else float("nan"),
    }
    return {"model": model, "history": history, "metrics": metrics,
            "images": {"hr": hr.cpu(), "lr": lr.cpu(), "bicubic": bic.cpu(), "output": out.cpu()}}

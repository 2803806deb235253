"""The Generalized Image Mean (GIM) and measures of blur (Chapter 1).

Amir & Weiss (2021), eq. (1): given targets Y = {y_1, ..., y_N} and a loss L,

    y_hat = argmin_y (1/N) sum_i L(y, y_i).

For L2 the minimiser is the pixel-wise mean of Y; for L1 it is the pixel-wise
median.  For any differentiable loss we find it by gradient descent on y itself.
When the targets are sharp but misaligned (slightly shifted crops of one image),
the mean is blurry: this is why a network regressed with L2 onto many plausible
sharp answers predicts a blurry one.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from . import losses
from .config import PresetConfig, progress
from .data import load_image, to_gray
from .validate import check_image, check_positive_int

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def resolve_loss(loss: str | Loss) -> Loss:
    """A callable loss from a pixel-loss name (``losses.BY_NAME``), a distance name
    (``perceptlab.distances.REGISTRY``, built with ``reduction="mean"``) or the callable itself."""
    if callable(loss) or loss in losses.BY_NAME:
        return losses.get(loss)
    from . import distances

    return distances.make(loss, reduction="mean")


def generalized_mean(targets: torch.Tensor, loss: str | Loss = "l2", steps: int = 300, lr: float = 0.05,
                     init: torch.Tensor | None = None, history: list[float] | None = None) -> torch.Tensor:
    """Solve eq. (1) of Amir & Weiss (2021) by Adam on the image, projected to [0, 1].

    Args:
        targets: (N, C, H, W) images in [0, 1].
        loss: a name ("l2", "l1", "ssim", or a distance of ``perceptlab.distances``) or any
            ``loss(x, y) -> scalar`` over (N, C, H, W) batches that averages over the batch.
            A loss with a ``mean_objective(targets)`` method (feature losses) is evaluated
            through it: the same objective, one network pass per step.
        steps: optimisation steps (cosine-decayed learning rate, so L1 settles on the median).
        lr: initial Adam learning rate.
        init: (1, C, H, W) starting image; default a uniform grey 0.5.
        history: if given, the loss after each step is appended to it.
    Returns:
        The (1, C, H, W) minimiser, detached, in [0, 1].
    """
    check_image(targets, "targets")
    check_positive_int(steps, "steps")
    loss_fn = resolve_loss(loss)
    if isinstance(loss_fn, torch.nn.Module):
        loss_fn = loss_fn.to(targets.device)
    mean_objective = getattr(loss_fn, "mean_objective", None)
    if mean_objective is not None:  # feature losses: one forward of y per step (exact, see mean_objective)
        objective = mean_objective(targets)
    else:
        objective = lambda y: loss_fn(y.expand_as(targets), targets)  # noqa: E731
    if init is None:
        init = torch.full_like(targets[:1], 0.5)
    else:
        check_image(init, "init")
        if init.shape != targets[:1].shape:
            raise ValueError(f"init must have shape {tuple(targets[:1].shape)}, got {tuple(init.shape)}")
    y = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for _ in progress(range(steps), desc="GIM"):
        opt.zero_grad(set_to_none=True)
        value = objective(y)
        value.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            y.clamp_(0, 1)
        if history is not None:
            history.append(value.item())
    return y.detach()


def shifted_crops(image: torch.Tensor, size: int, max_shift: int, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` crops of ``size`` x ``size`` from (1, C, H, W) ``image``, centred with a random shift.

    Each crop's offset from the centre is drawn uniformly from [-max_shift, max_shift]
    in both directions (Amir & Weiss 2021, Fig. 1B: "slightly different crops of a single image").
    Returns (n, C, size, size).
    """
    check_image(image, "image")
    check_positive_int(n, "n")
    H, W = image.shape[-2:]
    top0, left0 = (H - size) // 2, (W - size) // 2
    if size <= 0 or top0 < max_shift or left0 < max_shift:
        raise ValueError(f"size + 2 * max_shift must fit in the image {(H, W)}, got size={size}, max_shift={max_shift}")
    g = torch.Generator().manual_seed(seed)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=g)
    return torch.cat([image[:, :, top0 + dy: top0 + dy + size, left0 + dx: left0 + dx + size]
                      for dy, dx in shifts.tolist()])


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """Mean gradient magnitude of each image's luminance: mean sqrt(dx^2 + dy^2), shape (N,).

    Forward differences over the interior; a sharp image scores higher than its blurred copy.
    """
    check_image(images, "images", channels=(1, 3))
    g = to_gray(images)[:, 0]
    dx = g[:, :-1, 1:] - g[:, :-1, :-1]
    dy = g[:, 1:, :-1] - g[:, :-1, :-1]
    return torch.sqrt(dx * dx + dy * dy).flatten(1).mean(1)


def high_frequency_fraction(images: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Fraction of each image's (mean-removed) luminance power above ``cutoff`` cycles/pixel, shape (N,).

    Radial frequency is measured in cycles per pixel (Nyquist is 0.5).
    """
    check_image(images, "images", channels=(1, 3))
    g = to_gray(images)[:, 0]
    g = g - g.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(g).abs().pow(2)
    fy = torch.fft.fftfreq(g.shape[-2]).view(-1, 1)
    fx = torch.fft.fftfreq(g.shape[-1]).view(1, -1)
    high = (fy ** 2 + fx ** 2).sqrt() > cutoff
    total = power.flatten(1).sum(1).clamp_min(1e-20)
    return (power * high).flatten(1).sum(1) / total


def relative_sharpness(x: torch.Tensor, targets: torch.Tensor,
                       measure: Callable[[torch.Tensor], torch.Tensor] = gradient_magnitude) -> float:
    """``measure(x)`` over the mean of ``measure(targets)``: 1 is as sharp as the targets, below 1 blurrier."""
    return float(measure(x).mean() / measure(targets).mean().clamp_min(1e-12))


# --------------------------------------------------------------------------- experiment


@dataclass
class GIMConfig(PresetConfig):
    """GIM on slightly shifted crops of one bundled image (Amir & Weiss 2021, Fig. 1B)."""

    FULL: ClassVar[dict] = dict(image_size=512, crop=384, max_shift=24, n=64, steps=2000)

    image: str = "astronaut"
    image_size: int = 192
    crop: int = 128
    max_shift: int = 8
    n: int = 15  # odd: the pixel median is unique
    steps: int = 300
    lr: float = 0.05
    losses: tuple[str, ...] = ("l2", "l1")
    seed: int = 0


@dataclass
class PerceptualGIMConfig(GIMConfig):
    """GIM under perceptual losses (Chapter 2): the pixel losses next to feature distances.

    Quick: offline distances (random VGG16, the Exemplar-CNN trained here) on smaller crops.
    Full: adds ImageNet VGG16 and LPIPS, on the full-size crops of :class:`GIMConfig`.
    """

    FULL: ClassVar[dict] = dict(image_size=512, crop=384, max_shift=24, n=64, steps=1000,
                                losses=("l2", "ssim", "vgg-random-norm", "exemplar-norm", "vgg-imagenet",
                                        "lpips-vgg"))

    image_size: int = 112
    crop: int = 64
    max_shift: int = 6
    steps: int = 200
    losses: tuple[str, ...] = ("l2", "ssim", "vgg-random", "vgg-random-norm", "exemplar-norm")


def run_gim(config: GIMConfig, device: str | torch.device = "cpu") -> dict:
    """Run GIM for each loss. Returns targets, the pixel mean/median, each solution and its sharpness."""
    image = load_image(config.image, size=config.image_size)
    targets = shifted_crops(image, config.crop, config.max_shift, config.n, config.seed).to(device)
    solutions = {name: generalized_mean(targets, name, config.steps, config.lr).cpu() for name in config.losses}
    targets = targets.cpu()
    sharp = {name: relative_sharpness(sol, targets) for name, sol in solutions.items()}
    return {
        "targets": targets,
        "mean": targets.mean(0, keepdim=True),
        "median": targets.median(0, keepdim=True).values,
        "solutions": solutions,
        "sharpness": sharp,
        "metrics": {f"sharpness_{k}": v for k, v in sharp.items()},
    }

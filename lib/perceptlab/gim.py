"""The Generalized Image Mean (Amir & Weiss 2021): the image that minimises the mean loss to a set of
targets, found by projected Adam on the pixels; and the shifted crops it is applied to.

Under L2 the minimiser is the pixel mean, under L1 the pixel median: the reason L2 regression blurs.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from perceptlab.config import progress
from perceptlab.losses.registry import resolve
from perceptlab.validate import check_image, check_positive_int

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def generalized_mean(targets: torch.Tensor, loss: str | Loss = "l2", steps: int = 300, lr: float = 0.05,
                     init: torch.Tensor | None = None, history: list[float] | None = None) -> torch.Tensor:
    """Solve eq. (1) of Amir & Weiss (2021) by Adam on the image, projected to [0, 1].

    Args:
        targets: (N, C, H, W) images in [0, 1].
        loss: a name ("l2", "l1", "ssim", or a distance of ``perceptlab.losses.registry``) or any
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
    if targets.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"targets must be float32 or float64 (in half precision Adam's small steps round away "
                         f"and the image saturates), got {targets.dtype}")
    check_positive_int(steps, "steps")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")
    loss_fn = resolve(loss, reduction="mean")
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
    try:  # the loss's own checks (e.g. SSIM's minimum size) speak of its arguments: name the targets
        loss_fn(targets[:1], targets[:1])
    except ValueError as exc:
        raise ValueError(f"targets do not suit the loss {getattr(loss_fn, 'label', loss)!r}: {exc}") from exc
    y = init.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    for step in progress(range(steps), desc="GIM"):
        opt.zero_grad(set_to_none=True)
        value = objective(y)
        if not torch.isfinite(value):
            raise ValueError(f"the loss became {value.item()} at step {step + 1} of GIM (a loss that is not finite "
                             f"for these targets, or lr={lr} too large); no image is returned")
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

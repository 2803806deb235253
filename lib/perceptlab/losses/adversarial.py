"""Adversarial losses on discriminator logits (Goodfellow et al. 2014): the discriminator's binary
cross-entropy and the generator's minimax or non-saturating loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GENERATOR_LOSSES = ("non_saturating", "minimax")


def _check_logits(logits: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of discriminator logits, got {type(logits).__name__}")
    if logits.numel() == 0:
        raise ValueError(f"{name} must not be empty")
    return logits


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's loss -V(D, G), estimated on a batch of real and a batch of fake logits.

    loss = -(1/n) sum log D(x_i) - (1/m) sum log(1 - D(G(z_j)))
         = mean softplus(-l_real) + mean softplus(l_fake),   D = sigmoid(l).

    This is binary cross-entropy with label 1 for real and 0 for fake
    (Goodfellow et al. 2014, Algorithm 1: D *ascends* V; we minimise -V).
    Logits of any shape; returns a scalar >= 0.  At l = 0 everywhere (D = 1/2) it is
    log 4 = 2 log 2, the value -V(D*, G) takes when p_g = p_data (Thm. 1).
    """
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "non_saturating") -> torch.Tensor:
    """The generator's loss on D's logits l = logit D(G(z)) of a batch of fakes (scalar).

    - ``"minimax"``: mean log(1 - D(G(z))) = -mean softplus(l), to minimise
      (the game's own objective; <= 0; saturates: d/dl = -sigmoid(l) / n -> 0 as D(G(z)) -> 0).
    - ``"non_saturating"``: -mean log D(G(z)) = mean softplus(-l), to minimise
      (Goodfellow et al. 2014, Sec. 3; >= 0; d/dl = -sigmoid(-l) / n -> -1 / n as D(G(z)) -> 0).

    Both have the same fixed point; they differ in where the gradient is strong.
    """
    _check_logits(fake_logits, "fake_logits")
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()
    if kind == "non_saturating":
        return F.softplus(-fake_logits).mean()
    raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")


def value_estimate(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """V(D, G) = E log D(x) + E log(1 - D(G(z))) estimated on the batches (= -:func:`discriminator_loss`)."""
    return -discriminator_loss(real_logits, fake_logits)


class DiscriminatorLoss(nn.Module):
    """Module twin of :func:`discriminator_loss`: ``DiscriminatorLoss()(real_logits, fake_logits)``."""

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(real_logits, fake_logits)


class GeneratorLoss(nn.Module):
    """Module twin of :func:`generator_loss`: ``GeneratorLoss(kind="non_saturating")(fake_logits)``."""

    def __init__(self, kind: str = "non_saturating"):
        super().__init__()
        if kind not in GENERATOR_LOSSES:
            raise ValueError(f"kind must be one of {GENERATOR_LOSSES}, got {kind!r}")
        self.kind = kind

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return generator_loss(fake_logits, self.kind)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"

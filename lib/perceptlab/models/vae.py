"""A convolutional VAE with a latent *vector*, as in Czolbe et al. (2020), Sec. 4.2 (MNIST: 2-d latent;
CelebA: 256-d): the model whose reconstruction loss Chapter 6 swaps.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from perceptlab.models.deepsim import kl_divergence
from perceptlab.validate import check_image


class ConvVAE(nn.Module):
    """Encoder: ``len(widths)`` conv(4, stride 2) + BatchNorm + LeakyReLU(0.2) blocks down to 4x4, then a
    linear layer to (mu, log sigma^2) of a ``latent_dim`` Gaussian; decoder: the mirror image with
    transposed convolutions and a sigmoid output in [0, 1].

    ``forward(x)`` returns the reconstruction of ``z = mu + sigma * eps`` in training mode (the
    reparameterisation trick, Kingma & Welling 2014) and of ``z = mu`` in eval mode, and stores
    ``self.kl``, KL(q(z|x) || N(0, I)) averaged over the batch (eq. 1's regulariser).
    ``image_size`` must be 4 * 2^len(widths) (e.g. 32 with three widths, 64 with four).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 32, latent_dim: int = 2,
                 widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        if image_size != 4 * 2 ** len(widths):
            raise ValueError(f"image_size must be 4 * 2^len(widths) = {4 * 2 ** len(widths)} for widths {widths}, "
                             f"got {image_size}")
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.in_channels, self.image_size, self.latent_dim = in_channels, image_size, latent_dim
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        enc, c = [], in_channels
        for w in widths:
            enc += [nn.Conv2d(c, w, 4, 2, 1), nn.BatchNorm2d(w), act()]
            c = w
        self.encoder = nn.Sequential(*enc, nn.Flatten())
        self.to_stats = nn.Linear(c * 16, 2 * latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, c * 16), act(), nn.Unflatten(1, (c, 4, 4)))
        dec = []
        for w in list(widths[::-1][1:]) + [None]:
            if w is None:
                dec += [nn.ConvTranspose2d(c, in_channels, 4, 2, 1), nn.Sigmoid()]
            else:
                dec += [nn.ConvTranspose2d(c, w, 4, 2, 1), nn.BatchNorm2d(w), act()]
                c = w
        self.decoder = nn.Sequential(*dec)
        self.kl = torch.tensor(0.0)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, S, S) in [0, 1] -> (mu, logvar), each (N, latent_dim)."""
        check_image(x, "x", channels=(self.in_channels,))
        if tuple(x.shape[-2:]) != (self.image_size,) * 2:
            raise ValueError(f"x must be {self.image_size}x{self.image_size}, got {tuple(x.shape[-2:])}")
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent_dim) -> (N, C, S, S) in [0, 1]."""
        return self.decoder(self.from_latent(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encode(x)
        self.kl = kl_divergence(mu, logvar)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z)


def latent_grid(n: int = 12, limit: float = 1.5) -> torch.Tensor:
    """(n*n, 2) latent points on a regular grid over [-limit, limit]^2, row by row (Fig. 3: limit 1.5)."""
    t = torch.linspace(-limit, limit, n)
    zy, zx = torch.meshgrid(t.flip(0), t, indexing="ij")
    return torch.stack([zx.reshape(-1), zy.reshape(-1)], dim=1)


def sample_latent(n: int, dim: int, seed: int = 0) -> torch.Tensor:
    """n draws of z ~ N(0, I) in ``dim`` dimensions from a seeded generator."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def vae_widths(image_size: int, base: int = 32) -> tuple[int, ...]:
    """Widths base, 2 base, ... with one block per halving from ``image_size`` down to 4."""
    blocks = int(math.log2(image_size // 4))
    if 4 * 2 ** blocks != image_size:
        raise ValueError(f"image_size must be 4 times a power of two, got {image_size}")
    return tuple(base * 2 ** i for i in range(blocks))

"""The DCGAN generator and discriminator (Radford et al. 2016) and sampling from a generator.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from perceptlab.validate import check_positive_int


def _n_upsamplings(image_size: int) -> int:
    """How many stride-2 layers lead from 4x4 to ``image_size`` (a power of two >= 8)."""
    check_positive_int(image_size, "image_size")
    k = int(round(math.log2(image_size))) - 2
    if image_size < 8 or 2 ** (k + 2) != image_size:
        raise ValueError(f"image_size must be a power of two >= 8 (e.g. 32 or 64), got {image_size}")
    return k


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016, Sec. 4): conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """DCGAN generator: noise (N, nz) -> images (N, channels, image_size, image_size) in [0, 1].

    z is reshaped to (N, nz, 1, 1); a 4x4 transposed convolution makes a 4x4 map of
    ``width * 2^(k-1)`` channels, then k = log2(image_size) - 2 stride-2 transposed
    4x4 convolutions each double the size and halve the channels, the last one going to
    ``channels`` with tanh; BN + ReLU in between (Radford et al. 2016, Fig. 1).
    image_size 64 with width 64, nz 100 is the paper's CelebA/LSUN generator
    (1024 channels at 4x4 in the paper's figure, 512 in the reference code used here).
    The tanh output t in [-1, 1] is returned as (t + 1) / 2.
    """

    def __init__(self, nz: int = 100, channels: int = 3, image_size: int = 64, width: int = 64):
        super().__init__()
        check_positive_int(nz, "nz")
        check_positive_int(channels, "channels")
        check_positive_int(width, "width")
        k = _n_upsamplings(image_size)
        self.nz, self.channels, self.image_size = nz, channels, image_size
        c = width * 2 ** (k - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(k - 1):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(f"z must have shape (N, {self.nz}), got {tuple(z.shape)}")
        return (self.net(z[:, :, None, None]) + 1) / 2


class Discriminator(nn.Module):
    """DCGAN discriminator: images (N, channels, image_size, image_size) in [0, 1] -> logits (N,).

    The mirror of :class:`Generator`: k = log2(image_size) - 2 stride-2 4x4 convolutions
    (``width``, 2 width, ... channels; LeakyReLU(0.2), batch norm except after the first),
    then a 4x4 convolution from the 4x4 map to one logit.  D(x) = sigmoid(logit).
    Inputs are mapped from [0, 1] to [-1, 1] first, the range DCGAN trains on.
    """

    def __init__(self, channels: int = 3, image_size: int = 64, width: int = 64):
        super().__init__()
        check_positive_int(channels, "channels")
        check_positive_int(width, "width")
        k = _n_upsamplings(image_size)
        self.channels, self.image_size = channels, image_size
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(k - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (N, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.net(2 * x - 1).flatten()


def sample_noise(n: int, nz: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """n standard normal noise vectors (n, nz) (DCGAN's paper used uniform noise; N(0, I) is the common choice)."""
    z = torch.randn(n, nz, generator=generator)
    return z.to(device) if device is not None else z


@torch.no_grad()
def generate(generator: Generator, n: int, seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """n images (n, C, H, W) in [0, 1] from noise drawn with its own seeded generator, in batches.

    Uses ``generator``'s current mode (call ``.eval()`` first for samples with the running
    batch-norm statistics, as :func:`run_gan` does) and device; returns them on that device.
    Meant for ``eval_fn`` hooks, e.g. FID over 10k samples: it does not touch the global RNG.
    """
    check_positive_int(n, "n")
    g = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    z = sample_noise(n, generator.nz, g)
    return torch.cat([generator(chunk.to(device)) for chunk in z.split(batch_size)])

"""The 1-D GAN toy: Goodfellow et al. (2014), Proposition 1 and Theorem 1, on a grid.

Densities on the line are tensors of values on an evenly spaced grid x_0 .. x_{n-1}
with spacing dx, normalised so that sum_i p(x_i) dx = 1; integrals are Riemann sums.

Proposition 1: for a fixed generator with density p_g, the discriminator that
maximises V(D, G) = E_{p_data} log D(x) + E_{p_g} log(1 - D(x)) is

    D*(x) = p_data(x) / (p_data(x) + p_g(x)).

Theorem 1: the generator's "virtual training criterion" C(G) = max_D V(D, G) = V(D*, G) is

    C(G) = -log 4 + 2 JSD(p_data || p_g),

minimal (= -log 4) exactly when p_g = p_data, where D* = 1/2.  On the grid this
identity holds to rounding error, which the tests check.

The second half trains a small GAN on samples (an MLP generator from 4-D Gaussian
noise to the line, an MLP discriminator), records D(x), the generator's density (a
histogram of many generated points) and D* on the grid over training, and measures
how close the *learned* D comes to D*.  During the game D lags behind D*; trained
alone against a frozen G (Prop. 1's inner maximisation) it comes closer (how close varies
from seed to seed and machine to machine: see ``perceptlab.spread``).  Default run: seconds on a CPU.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from perceptlab.config import PresetConfig, check_device, default_seed
from perceptlab.losses.adversarial import (
    GENERATOR_LOSSES,
    discriminator_loss,
    generator_loss,
)
from perceptlab.train import History, fit
from perceptlab.validate import check_positive_int

LOG4 = math.log(4.0)


# --------------------------------------------------------------------------- densities on a grid


def make_grid(half_width: float = 6.0, n: int = 1201) -> tuple[torch.Tensor, float]:
    """An evenly spaced float64 grid (n,) on [-half_width, half_width] and its spacing dx."""
    if not half_width > 0:
        raise ValueError(f"half_width must be positive, got {half_width!r}")
    check_positive_int(n, "n")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    x = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    return x, 2 * half_width / (n - 1)


def _check_density(p: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(p, torch.Tensor) or p.dim() != 1 or not p.is_floating_point():
        raise ValueError(f"{name} must be a 1-D floating-point tensor of density values on the grid, "
                         f"got {type(p).__name__} {tuple(getattr(p, 'shape', ()))}")
    if not torch.isfinite(p).all() or (p < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return p


def _check_pair(p: torch.Tensor, q: torch.Tensor, name_p: str, name_q: str) -> None:
    _check_density(p, name_p)
    _check_density(q, name_q)
    if p.shape != q.shape:
        raise ValueError(f"{name_p} and {name_q} must live on the same grid, "
                         f"got shapes {tuple(p.shape)} and {tuple(q.shape)}")


def normalize(p: torch.Tensor, dx: float) -> torch.Tensor:
    """p / (sum p dx): the density on the grid that integrates to 1 by the Riemann sum."""
    _check_density(p, "p")
    mass = float(p.sum()) * dx
    if not mass > 0:
        raise ValueError("p must have positive mass on the grid")
    return p / mass


def gaussian_mixture(x: torch.Tensor, means: Sequence[float], stds: Sequence[float],
                     weights: Sequence[float] | None = None, dx: float | None = None) -> torch.Tensor:
    """Density sum_k w_k N(x; mu_k, sigma_k^2) on the grid ``x``, renormalised on the grid (spacing ``dx``).

    ``weights`` default to equal; they are normalised to sum to 1.  With ``dx`` None it is x[1] - x[0].
    """
    means, stds = [float(m) for m in means], [float(s) for s in stds]
    weights = [1.0] * len(means) if weights is None else [float(w) for w in weights]
    if not means or len(stds) != len(means) or len(weights) != len(means):
        raise ValueError(f"means, stds and weights must have the same non-zero length, got {len(means)}, "
                         f"{len(stds)}, {len(weights)}")
    if min(stds) <= 0 or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"stds must be positive and weights non-negative with a positive sum, got {stds}, {weights}")
    x = x.double()
    p = sum(w * torch.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))
            for m, s, w in zip(means, stds, weights))
    return normalize(p / sum(weights), float(x[1] - x[0]) if dx is None else dx)


def uniform_density(x: torch.Tensor, low: float, high: float, dx: float | None = None) -> torch.Tensor:
    """The uniform density on [low, high], as it falls on the grid (renormalised on the grid)."""
    if not high > low:
        raise ValueError(f"high must exceed low, got low={low}, high={high}")
    p = ((x >= low) & (x <= high)).double()
    return normalize(p, float(x[1] - x[0]) if dx is None else dx)


def sample_mixture(n: int, means: Sequence[float], stds: Sequence[float], weights: Sequence[float] | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """n samples (n, 1) of the Gaussian mixture, all randomness drawn from ``generator``."""
    check_positive_int(n, "n")
    w = torch.tensor([1.0] * len(means) if weights is None else list(weights), dtype=torch.float64)
    k = torch.multinomial(w / w.sum(), n, replacement=True, generator=generator)
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    mu, sd = torch.tensor(list(means), dtype=torch.float64), torch.tensor(list(stds), dtype=torch.float64)
    return (mu[k] + sd[k] * eps).float().unsqueeze(1)


def histogram_density(samples: torch.Tensor, x: torch.Tensor, bandwidth: float = 0.0) -> torch.Tensor:
    """A density estimate on the grid ``x`` from samples: a histogram with one bin per grid point.

    Bin i is [x_i - dx/2, x_i + dx/2); samples outside the grid are dropped and the result is
    renormalised on the grid.  With ``bandwidth`` > 0 the histogram is smoothed with a Gaussian
    kernel of that standard deviation (in units of x), which makes it a kernel density
    estimate (Gaussian KDE with the samples binned to the grid).
    """
    x = x.double()
    dx = float(x[1] - x[0])
    s = samples.detach().double().flatten().cpu()
    idx = torch.floor((s - (float(x[0]) - dx / 2)) / dx).long()
    idx = idx[(idx >= 0) & (idx < x.numel())]
    if idx.numel() == 0:
        raise ValueError("samples must have at least one value inside the grid")
    p = torch.bincount(idx, minlength=x.numel()).double()
    if bandwidth > 0:
        r = int(math.ceil(4 * bandwidth / dx))
        t = torch.arange(-r, r + 1, dtype=torch.float64) * dx
        kernel = torch.exp(-0.5 * (t / bandwidth) ** 2)
        p = torch.nn.functional.conv1d(p.view(1, 1, -1), (kernel / kernel.sum()).view(1, 1, -1), padding=r).flatten()
    return normalize(p, dx)


def optimal_discriminator(p_data: torch.Tensor, p_g: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Goodfellow et al. 2014, Prop. 1), values in [0, 1].

    Where both densities are 0 (0/0) D* is set to 1/2: V does not depend on D there, so any
    value is optimal; 1/2 is the answer of a discriminator that has seen nothing.
    """
    _check_pair(p_data, p_g, "p_data", "p_g")
    total = p_data + p_g
    return torch.where(total > 0, p_data / torch.where(total > 0, total, torch.ones_like(total)),
                       torch.full_like(total, 0.5))


def value(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, dx: float) -> float:
    """V(D, G) = integral p_data log D + p_g log(1 - D) dx by quadrature (Goodfellow et al. 2014, eq. 1).

    ``d`` holds D(x) in [0, 1] on the grid; 0 log 0 = 0 (a density that is 0 where D is 0 or 1
    contributes nothing).  At most 0; -inf where D = 0 on data or D = 1 on generated mass.
    """
    _check_pair(p_data, p_g, "p_data", "p_g")
    if d.shape != p_data.shape or (d < 0).any() or (d > 1).any():
        raise ValueError(f"d must hold values in [0, 1] on the grid of shape {tuple(p_data.shape)}, "
                         f"got shape {tuple(d.shape)}")
    d = d.double()
    return float((torch.xlogy(p_data, d) + torch.xlogy(p_g, 1 - d)).sum() * dx)


def kl(p: torch.Tensor, q: torch.Tensor, dx: float) -> float:
    """KL(p || q) = integral p log(p / q) dx in nats, with 0 log 0 = 0 (+inf if p > 0 where q = 0)."""
    _check_pair(p, q, "p", "q")
    p, q = p.double(), q.double()
    return float((torch.xlogy(p, p) - torch.xlogy(p, q)).sum() * dx)


def jsd(p: torch.Tensor, q: torch.Tensor, dx: float) -> float:
    """Jensen-Shannon divergence in nats: JSD = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2.

    Symmetric, 0 iff p = q, at most log 2 (reached for disjoint supports); 0 log 0 = 0.
    """
    _check_pair(p, q, "p", "q")
    m = (p.double() + q.double()) / 2
    return 0.5 * kl(p, m, dx) + 0.5 * kl(q, m, dx)


def virtual_criterion(p_data: torch.Tensor, p_g: torch.Tensor, dx: float) -> float:
    """C(G) = max_D V(D, G) = V(D*, G) by quadrature, with D* = p_data / (p_data + p_g) put in *before*
    taking logs: integral p_data log(p_data / (p_data + p_g)) + p_g log(p_g / (p_data + p_g)) dx.

    Evaluating :func:`value` on a rounded D* would give -inf where one density's tail is
    many orders of magnitude below the other's (D* rounds to exactly 0 or 1); the logs of
    the densities themselves stay finite.
    """
    _check_pair(p_data, p_g, "p_data", "p_g")
    p, q = p_data.double(), p_g.double()
    total = p + q
    return float((torch.xlogy(p, p) - torch.xlogy(p, total) + torch.xlogy(q, q) - torch.xlogy(q, total)).sum() * dx)


def criterion_closed_form(p_data: torch.Tensor, p_g: torch.Tensor, dx: float) -> float:
    """C(G) = -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Thm. 1, eq. 6); in [-log 4, 0]."""
    return -LOG4 + 2 * jsd(p_data, p_g, dx)


# --------------------------------------------------------------------------- a learned 1-D GAN


ACTIVATIONS = {"tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def mlp(n_in: int, hidden: int, depth: int = 2, activation: str = "leaky_relu") -> nn.Sequential:
    """n_in -> ``depth`` hidden layers of ``hidden`` units -> 1 output.

    ``activation``: "leaky_relu" (slope 0.2, the default), "elu" or "tanh".  A generator of 1-D
    noise folds the line where it is not monotone, and its density has spikes (1 / abs(G') blows
    up at stationary points); a tanh generator also piles mass up at its saturated ends.
    Noise of a few dimensions (the default 4) smooths these out.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(n_in if i == 0 else hidden, hidden), ACTIVATIONS[activation]()]
    layers.append(nn.Linear(hidden, 1))
    return nn.Sequential(*layers)


class Generator1D(nn.Module):
    """G: noise z ~ N(0, I_{noise_dim}) (N, noise_dim) -> samples on the line (N, 1), an MLP."""

    def __init__(self, noise_dim: int = 4, hidden: int = 32, depth: int = 2, activation: str = "leaky_relu"):
        super().__init__()
        check_positive_int(noise_dim, "noise_dim")
        check_positive_int(hidden, "hidden")
        self.noise_dim = noise_dim
        self.net = mlp(noise_dim, hidden, depth, activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class Discriminator1D(nn.Module):
    """D: points (N, 1) -> logits (N,); D(x) = sigmoid(logit), an MLP."""

    def __init__(self, hidden: int = 32, depth: int = 2, activation: str = "leaky_relu"):
        super().__init__()
        check_positive_int(hidden, "hidden")
        self.net = mlp(1, hidden, depth, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()

    @torch.no_grad()
    def on_grid(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) = sigmoid(logit) on the grid, float64 (n,)."""
        device = next(self.parameters()).device
        logits = self(x.float().view(-1, 1).to(device)).double()
        return torch.sigmoid(logits).cpu()  # in float64, so that rounding gives no D = 0 or 1


def noise_quantiles(n: int, noise_dim: int = 1, seed: int = 0) -> torch.Tensor:
    """n noise vectors (n, noise_dim) that represent N(0, I) deterministically.

    For noise_dim = 1 the n quantiles Phi^{-1}((i + 1/2) / n), so that the pushed-forward
    histogram is the generator's density up to binning, with no sampling noise; otherwise
    n seeded draws.
    """
    check_positive_int(n, "n")
    if noise_dim == 1:
        u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        return (math.sqrt(2) * torch.erfinv(2 * u - 1)).float().unsqueeze(1)
    return torch.randn(n, noise_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generator_density(G: Generator1D, x: torch.Tensor, n: int = 200_000, bandwidth: float = 0.0) -> torch.Tensor:
    """The density of G(z), z ~ N(0, I), on the grid: :func:`histogram_density` of G(:func:`noise_quantiles`)."""
    device = next(G.parameters()).device
    return histogram_density(G(noise_quantiles(n, G.noise_dim).to(device)), x, bandwidth)


def discriminator_gap(d: torch.Tensor, p_data: torch.Tensor, p_g: torch.Tensor, dx: float,
                      rel_threshold: float = 0.01) -> dict[str, float]:
    """How far a discriminator's D(x) on the grid is from D* = p_data / (p_data + p_g).

    Returns ``weighted``: integral m abs(D - D*) dx with m = (p_data + p_g) / 2, the mean gap
    over the points D is trained on (half real, half generated); ``data_mean`` and
    ``data_max``: mean and max of abs(D - D*) over the region with data, where p_data is at least
    ``rel_threshold`` times its maximum.  D is unconstrained where neither density has mass,
    so that region is left out.
    """
    _check_pair(p_data, p_g, "p_data", "p_g")
    if d.shape != p_data.shape:
        raise ValueError(f"d must have the grid's shape {tuple(p_data.shape)}, got {tuple(d.shape)}")
    gap = (d.double() - optimal_discriminator(p_data, p_g)).abs()
    m = (p_data + p_g).double() / 2
    region = p_data >= rel_threshold * float(p_data.max())
    return {"weighted": float((m * gap).sum() * dx), "data_mean": float(gap[region].mean()),
            "data_max": float(gap[region].max())}


@dataclass
class GAN1DConfig(PresetConfig):
    """The 1-D GAN toy.  Seconds on a CPU, so ``FULL`` changes nothing.

    Data: a mixture of Gaussians (``means``, ``stds``, ``weights``); grid: ``n_grid`` points on
    [-half_width, half_width].  Networks: MLPs with ``depth`` hidden layers of ``hidden`` units.
    Training: ``steps`` generator updates, each after ``d_steps`` discriminator updates
    (Algorithm 1's k), batches of ``batch`` real and ``batch`` fake points; every
    ``snapshot_every`` steps D, p_g and D* are recorded on the grid; p_g is the histogram of
    ``n_density`` generated points smoothed with a Gaussian of std ``bandwidth``.  ``refine_steps``:
    afterwards a copy of D is trained alone against the frozen final G with learning rate
    ``lr_refine`` (Prop. 1's inner maximisation; near equilibrium D* - D is small and D moves
    slowly at the game's learning rate).
    """

    FULL: ClassVar[dict] = {}

    means: tuple[float, ...] = (-2.0, 1.5)
    stds: tuple[float, ...] = (0.5, 0.8)
    weights: tuple[float, ...] = (0.4, 0.6)
    half_width: float = 6.0
    n_grid: int = 1201
    noise_dim: int = 4
    hidden: int = 32
    depth: int = 2
    activation: str = "leaky_relu"
    steps: int = 2000
    d_steps: int = 1
    batch: int = 256
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    beta1: float = 0.5
    loss: str = "non_saturating"
    snapshot_every: int = 100
    n_density: int = 200_000
    bandwidth: float = 0.02
    refine_steps: int = 1500
    lr_refine: float = 3e-3
    seed: int = field(default_factory=default_seed)


class SnapshotLog:
    """Checkpointable list of per-snapshot dicts (``step``, ``d``, ``p_g``, ``d_star`` on the grid)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def state_dict(self) -> dict:
        return {"records": list(self.records)}

    def load_state_dict(self, state: Mapping) -> None:
        self.records = list(state["records"])


def data_density(config: GAN1DConfig) -> tuple[torch.Tensor, float, torch.Tensor]:
    """(x, dx, p_data): the grid and the data mixture's density on it."""
    x, dx = make_grid(config.half_width, config.n_grid)
    return x, dx, gaussian_mixture(x, config.means, config.stds, config.weights, dx)


def snapshot(G: Generator1D, D: Discriminator1D, x: torch.Tensor, dx: float, p_data: torch.Tensor,
             n_density: int = 200_000, bandwidth: float = 0.02) -> dict:
    """D(x), the generator's density p_g, D* and the scalars V(D, G), C(G), JSD and the D-vs-D* gap.

    p_g is :func:`generator_density` (``n_density`` points, smoothing ``bandwidth``); ``gap`` is
    :func:`discriminator_gap`'s ``weighted``, ``gap_data_mean``/``gap_data_max`` its other two, and
    ``gap_half`` the same weighted gap of the constant D = 1/2 (the baseline any learned D must beat).
    """
    p_g = generator_density(G, x, n_density, bandwidth)
    d = D.on_grid(x)
    d_star = optimal_discriminator(p_data, p_g)
    gap = discriminator_gap(d, p_data, p_g, dx)
    half = discriminator_gap(torch.full_like(d, 0.5), p_data, p_g, dx)  # the know-nothing D = 1/2, as a baseline
    return {"d": d, "p_g": p_g, "d_star": d_star, "value": value(d, p_data, p_g, dx),
            "criterion": virtual_criterion(p_data, p_g, dx), "jsd": jsd(p_data, p_g, dx),
            "gap": gap["weighted"], "gap_data_mean": gap["data_mean"], "gap_data_max": gap["data_max"],
            "gap_half": half["weighted"]}


def build_models(config: GAN1DConfig) -> tuple[Generator1D, Discriminator1D]:
    """G and D with PyTorch's default initialisation drawn after ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    return (Generator1D(config.noise_dim, config.hidden, config.depth, config.activation),
            Discriminator1D(config.hidden, config.depth, config.activation))


def _adam(module: nn.Module, lr: float, beta1: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(beta1, 0.999))


def train_discriminator(D: Discriminator1D, G: Generator1D, config: GAN1DConfig, steps: int, seed: int = 1,
                        lr: float | None = None, out_dir: str | Path | None = None) -> History:
    """Train D alone against the frozen G for ``steps`` steps (Prop. 1's max over D); D is updated in place.

    Each step: ``batch`` data points and ``batch`` points G(z), one Adam step on
    :func:`perceptlab.losses.discriminator_loss`.  As the steps grow D(x) approaches
    D*(x) = p_data / (p_data + p_g) where there is data or generated mass.
    """
    opt = _adam(D, config.lr_d if lr is None else lr, config.beta1)
    device = next(D.parameters()).device

    def sample(g: torch.Generator, step: int):
        real = sample_mixture(config.batch, config.means, config.stds, config.weights, g)
        return real.to(device), torch.randn(config.batch, config.noise_dim, generator=g).to(device)

    def step_fn(batch, step: int) -> dict:
        real, z = batch
        with torch.no_grad():
            fake = G(z)
        loss = discriminator_loss(D(real), D(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss_d": loss.item()}

    return fit(step_fn, sample, state={"D": D, "opt_d": opt}, steps=steps, seed=seed, out_dir=out_dir,
               desc="D against a frozen G")


def run_gan1d(config: GAN1DConfig, device: str | torch.device = "cpu", out_dir: str | Path | None = None,
              stop_after: int | None = None) -> dict:
    """Train the 1-D GAN on samples of the mixture and compare the learned D with D*.

    Each step: ``config.d_steps`` discriminator updates, each on a fresh batch of data and
    of G(z), then one generator update on a fresh noise batch (Goodfellow et al. 2014,
    Algorithm 1).  Every ``snapshot_every`` steps (and at the last) :func:`snapshot` records
    D, p_g, D* on the grid, and V, C(G), JSD(p_data || p_g) and the D-vs-D* gap in the
    history.  Checkpoints and exact resume as :func:`perceptlab.train.fit`.

    Returns ``x``, ``dx``, ``p_data``, ``generator``, ``discriminator``, ``history``,
    ``snapshots`` (list of dicts with ``step``, ``d``, ``p_g``, ``d_star`` and the scalars),
    ``initial`` (the snapshot of the untrained pair), ``final`` (the last snapshot),
    ``refined_discriminator`` (a copy of D trained ``refine_steps`` more steps against the
    frozen final G), ``refined`` (its snapshot) and ``metrics`` (``jsd_init``,
    ``jsd_final``, ``gap_init``, ``gap_final``, ``gap_refined``, their ``data_mean`` variants, and
    ``gap_half_init``, ``gap_half_final``: the gaps of the constant D = 1/2 against the same generators).
    """
    if config.loss not in GENERATOR_LOSSES:
        raise ValueError(f"config.loss must be one of {GENERATOR_LOSSES}, got {config.loss!r}")
    for name in ("steps", "d_steps", "batch", "snapshot_every", "n_density"):
        check_positive_int(getattr(config, name), f"config.{name}")
    device = check_device(device)
    x, dx, p_data = data_density(config)
    G, D = build_models(config)
    G, D = G.to(device), D.to(device)
    opt_g, opt_d = _adam(G, config.lr_g, config.beta1), _adam(D, config.lr_d, config.beta1)
    snaps = SnapshotLog()
    initial = snapshot(G, D, x, dx, p_data, config.n_density, config.bandwidth)

    def sample(g: torch.Generator, step: int):
        k, b = config.d_steps, config.batch
        real = sample_mixture(k * b, config.means, config.stds, config.weights, g).view(k, b, 1)
        z_d = torch.randn(k, b, config.noise_dim, generator=g)
        z_g = torch.randn(b, config.noise_dim, generator=g)
        return real.to(device), z_d.to(device), z_g.to(device)

    def step_fn(batch, step: int) -> dict:
        real, z_d, z_g = batch
        for i in range(config.d_steps):
            with torch.no_grad():
                fake = G(z_d[i])
            real_logits, fake_logits = D(real[i]), D(fake)
            loss_d = discriminator_loss(real_logits, fake_logits)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        loss_g = generator_loss(D(G(z_g)), config.loss)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item()}

    def on_step_end(done: int) -> dict:
        if done % config.snapshot_every and done != config.steps:
            return {}
        snap = snapshot(G, D, x, dx, p_data, config.n_density, config.bandwidth)
        snaps.records.append({"step": done, **snap})
        return {k: v for k, v in snap.items() if isinstance(v, float)}

    history = fit(step_fn, sample, state={"G": G, "D": D, "opt_g": opt_g, "opt_d": opt_d, "snapshots": snaps},
                  steps=config.steps, seed=config.seed, out_dir=out_dir, ckpt_every=config.snapshot_every,
                  eval_fn=on_step_end, eval_every=1, stop_after=stop_after, desc="1-D GAN")
    final = snaps.records[-1] if snaps.records else {"step": 0, **initial}
    refined_d = Discriminator1D(config.hidden, config.depth, config.activation).to(device)
    refined_d.load_state_dict(D.state_dict())
    refined = final
    if config.refine_steps:
        train_discriminator(refined_d, G, config, config.refine_steps, seed=config.seed + 1, lr=config.lr_refine)
        refined = {"step": final["step"], **snapshot(G, refined_d, x, dx, p_data, config.n_density, config.bandwidth)}
    metrics = {"jsd_init": initial["jsd"], "jsd_final": final["jsd"], "gap_init": initial["gap"],
               "gap_final": final["gap"], "gap_refined": refined["gap"],
               "gap_half_init": initial["gap_half"], "gap_half_final": final["gap_half"],
               "gap_data_mean_final": final["gap_data_mean"], "gap_data_mean_refined": refined["gap_data_mean"]}
    return {"x": x, "dx": dx, "p_data": p_data, "generator": G, "discriminator": D, "history": history,
            "snapshots": snaps.records, "initial": {"step": 0, **initial}, "final": final,
            "refined_discriminator": refined_d, "refined": refined, "metrics": metrics}


def plot_snapshots(result: Mapping, snapshots: Sequence[Mapping] | None = None, size: float = 3.2):
    """One panel per snapshot: p_data, p_g (left axis, each panel scaled to show both whole) and D, D*
    (right axis, [0, 1]) on the grid.

    ``result`` is what :func:`run_gan1d` returns; ``snapshots`` default to the untrained pair,
    about three snapshots spread over training, and D refined against the final G.
    Returns the figure.
    """
    import matplotlib.pyplot as plt

    if snapshots is None:
        snaps = result["snapshots"]
        picks = [snaps[i] for i in sorted({len(snaps) // 4, len(snaps) // 2, len(snaps) - 1})] if snaps else []
        snapshots = [result["initial"], *picks, result["refined"]]
    x = result["x"].numpy()
    fig, axes = plt.subplots(1, len(snapshots), figsize=(size * len(snapshots), size * 0.8), squeeze=False)
    for k, (ax, s) in enumerate(zip(axes[0], snapshots)):
        ax.fill_between(x, result["p_data"].numpy(), color="0.8", label="$p_{data}$")
        ax.plot(x, s["p_g"].numpy(), color="tab:green", lw=1, label="$p_g$")
        # nothing clipped: an untrained G's spike dwarfs p_data in its panel, but its width stays visible
        ax.set_ylim(0, 1.08 * max(float(result["p_data"].max()), float(s["p_g"].max())))
        ax.set_yticks([])
        twin = ax.twinx()
        twin.plot(x, s["d"].numpy(), color="tab:blue", lw=1.5, label="D")
        twin.plot(x, s["d_star"].numpy(), color="tab:blue", ls="--", lw=1, label="D*")
        twin.set_ylim(0, 1.02)
        if k < len(snapshots) - 1:
            twin.set_yticklabels([])
        refined = s is result.get("refined") and s is not result.get("final")
        ax.set_title(f"{'D refined, ' if refined else ''}step {s['step']}: JSD {s['jsd']:.3f}\n"
                     f"gap {s['gap']:.3f} (D = 1/2: {s['gap_half']:.3f})",
                     fontsize=9)
        if k == 0:
            ax.legend(loc="upper left", fontsize=7)
            twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    return fig

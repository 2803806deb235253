"""Tuning curves of every channel of a network layer, measured with gratings in one batched pass.

As neuroscientists record a neuron's response to gratings of varying frequency and orientation,
:func:`probe` shows a network concentric gratings at each frequency and oriented gratings at each
orientation (at the CSF's peak frequency), each at several phases, takes every channel's *spatial
mean* activation (Tariq et al. 2020, Sec. 4.1), averages over the phases, and computes mu1, mu2 and
the perceptual efficacy of every channel (:mod:`perceptlab.probing.efficacy`).  All stimuli go
through the network together (in chunks of ``batch``), and all requested layers come out of the
same forward pass.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from perceptlab.models.backbones import Backbone
from perceptlab.probing.csf import csf, csf_peak
from perceptlab.probing.efficacy import mu1, mu2, perceptual_efficacy
from perceptlab.probing.stimuli import check_grating, grating_batch


def geometric_frequencies(lo: float, hi: float, n: int) -> tuple[float, ...]:
    """``n`` geometrically spaced frequencies from ``lo`` to ``hi``, the ends exactly ``lo`` and ``hi`` (so that
    ``hi`` may be the Nyquist frequency without rounding above it)."""
    inner = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)[1:-1]
    return (float(lo), *(float(v) for v in inner), float(hi))


@dataclass(frozen=True)
class Stimuli:
    """The stimulus set of a probe: ``size`` x ``size`` gratings viewed at ``ppd`` pixels per degree
    (so the image spans size / ppd degrees), concentric at frequencies ``freqs`` (cpd, increasing, at
    most ppd / 2) and oriented at ``thetas`` (radians) at ``orient_cpd`` (None: the peak of
    ``csf_model``), each at every phase of ``phases``, with Michelson ``contrast``."""

    size: int = 64
    ppd: float = 32.0
    freqs: tuple[float, ...] = field(default_factory=lambda: geometric_frequencies(0.5, 16.0, 12))
    thetas: tuple[float, ...] = tuple(k * math.pi / 12 for k in range(12))
    phases: tuple[float, ...] = (0.0, math.pi / 2, math.pi, 3 * math.pi / 2)
    contrast: float = 1.0
    orient_cpd: float | None = None
    csf_model: str = "mannos-sakrison"
    channels: int = 3
    modulation: str = "achromatic"

    def __post_init__(self):
        check_grating(self.size, list(self.freqs), self.ppd, self.contrast)
        if len(self.freqs) < 2 or any(b <= a for a, b in zip(self.freqs, self.freqs[1:])):
            raise ValueError(f"freqs must be at least two strictly increasing frequencies, got {self.freqs}")
        if len(self.thetas) < 2 or not self.phases:
            raise ValueError("thetas needs at least two orientations and phases at least one phase")

    @property
    def orientation_frequency(self) -> float:
        """The oriented gratings' frequency: ``orient_cpd`` or the CSF's peak, capped at Nyquist."""
        f = self.orient_cpd if self.orient_cpd is not None else csf_peak(self.csf_model)
        check_grating(self.size, f, self.ppd, self.contrast)
        return f

    def images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(concentric, oriented) stimuli: (len(freqs) * len(phases), C, S, S) and (len(thetas) * len(phases), ...)."""
        conc = grating_batch("concentric", self.size, self.freqs, self.ppd, self.phases, contrast=self.contrast,
                             channels=self.channels, modulation=self.modulation)
        orient = grating_batch("oriented", self.size, self.thetas, self.ppd, self.phases,
                               cpd=self.orientation_frequency, contrast=self.contrast, channels=self.channels,
                               modulation=self.modulation)
        return conc, orient


def mean_activations(net: Backbone, layers: Sequence[str], images: torch.Tensor, batch: int = 64,
                     device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The spatial mean activation of every channel of every layer for every image: {layer: (N, C)} float64,
    from one forward pass per chunk of ``batch`` images."""
    layers = list(layers)
    out: dict[str, list[torch.Tensor]] = {l: [] for l in layers}
    net = net.to(device)
    with torch.no_grad():
        for chunk in images.split(batch):
            feats = net(chunk.to(device), layers)
            for l in layers:
                out[l].append(feats[l].double().mean((2, 3)).cpu())
    return {l: torch.cat(v) for l, v in out.items()}


def _by_value(act: torch.Tensor, n_values: int, n_phases: int) -> torch.Tensor:
    """(n_values * n_phases, C) value-major -> (C, n_values), averaged over phases."""
    return act.view(n_values, n_phases, -1).mean(1).T.contiguous()


def probe(net: Backbone, layers: str | Sequence[str], stimuli: Stimuli | None = None, batch: int = 64,
          device: str | torch.device = "cpu") -> dict[str, dict[str, torch.Tensor]]:
    """Tuning curves, mu1, mu2 and PE of every channel of each of ``layers`` of ``net``.

    Returns {layer: {"frequency": (C, n_freqs), "orientation": (C, n_thetas), "mu1", "mu2", "pe": (C,)}}
    (float64), plus "freqs", "thetas", "csf" (the CSF at ``freqs``) and "orient_cpd" in each entry.
    One forward pass over all stimuli serves every layer.
    """
    stimuli = stimuli or Stimuli()
    layers = [layers] if isinstance(layers, str) else list(layers)
    unknown = [l for l in layers if l not in net.layer_names]
    if not layers or unknown:
        raise ValueError(f"layers must be names of {net.name} layers {net.layer_names}, got {layers}")
    conc, orient = stimuli.images()
    acts = mean_activations(net, layers, torch.cat([conc, orient]), batch, device)
    n_f, n_t, n_p = len(stimuli.freqs), len(stimuli.thetas), len(stimuli.phases)
    weights = csf(list(stimuli.freqs), stimuli.csf_model)
    out = {}
    for l in layers:
        freq = _by_value(acts[l][: len(conc)], n_f, n_p)
        ori = _by_value(acts[l][len(conc):], n_t, n_p)
        m1, m2 = mu1(freq, stimuli.freqs, weights), mu2(ori)
        out[l] = {"frequency": freq, "orientation": ori, "mu1": m1, "mu2": m2,
                  "pe": perceptual_efficacy(m1, m2) if m1.sum() > 0 and m2.sum() > 0 else torch.zeros_like(m1),
                  "freqs": torch.tensor(stimuli.freqs, dtype=torch.float64),
                  "thetas": torch.tensor(stimuli.thetas, dtype=torch.float64), "csf": weights,
                  "orient_cpd": stimuli.orientation_frequency}
    return out


__all__ = ["Stimuli", "mean_activations", "probe"]

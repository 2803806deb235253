"""Sinusoidal gratings, the stimuli of psychophysics, with the viewing geometry explicit.

A grating of ``cpd`` cycles per degree of visual angle, shown at ``ppd`` pixels per degree, has
``cpd / ppd`` cycles per pixel; the highest frequency a pixel grid can show is 1/2 cycle per pixel
(Nyquist), so ``cpd <= ppd / 2``.  Luminance is ``mean * (1 + contrast * cos(.))`` (Michelson
contrast ``contrast`` around the mean grey ``mean``): with the defaults, mean grey 0.5 and contrast
1, the values span [0, 1].  Tariq et al. (2020) stimulate networks with radially symmetric
(concentric) gratings to isolate spatial frequency from orientation, and with oriented gratings
at the CSF's peak frequency to measure orientation tuning.
"""
from __future__ import annotations

import math

import torch

#: A colour direction per modulation: the grating adds ``direction * amplitude * cos(.)`` to the mean
#: grey.  Achromatic: the same in R, G, B.  Red-green and blue-yellow: opposite signs, unit length,
#: of zero luminance (BT.601 weights 0.299, 0.587, 0.114) so that only colour varies.
MODULATIONS = {
    "achromatic": (1.0, 1.0, 1.0),
    "red-green": (1.0, -0.299 / 0.587, 0.0),
    "blue-yellow": (-0.114 / 0.886, -0.114 / 0.886, 1.0),
}


def check_grating(size: int, cpd, ppd: float, contrast: float, mean: float = 0.5) -> None:
    """ValueError naming the argument: ``size`` and ``ppd`` positive, ``contrast`` in (0, 1], every
    ``cpd`` positive and at most the Nyquist frequency ``ppd / 2``, ``mean`` in (0, 1)."""
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size must be a positive int (pixels), got {size!r}")
    if not ppd > 0:
        raise ValueError(f"ppd must be positive (pixels per degree), got {ppd!r}")
    if not 0 < contrast <= 1:
        raise ValueError(f"contrast must be in (0, 1] (Michelson contrast), got {contrast!r}")
    if not 0 < mean < 1:
        raise ValueError(f"mean must be in (0, 1), got {mean!r}")
    values = torch.as_tensor(cpd, dtype=torch.float64).flatten()
    if not torch.isfinite(values).all() or (values <= 0).any():
        raise ValueError(f"cpd must be positive (cycles per degree), got {cpd!r}")
    if (values > ppd / 2 * (1 + 1e-9)).any():  # a tolerance for frequencies computed in floating point
        raise ValueError(f"cpd must be at most the Nyquist frequency ppd / 2 = {ppd / 2:g} cycles per degree at "
                         f"ppd = {ppd:g} pixels per degree, got {values.max().item():g}")


def _coordinates(size: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (y, x) relative to the image centre, each (size, size)."""
    c = (size - 1) / 2
    t = torch.arange(size, dtype=torch.float64) - c
    y, x = torch.meshgrid(t, t, indexing="ij")
    return y, x


def _render(phase_map: torch.Tensor, contrast: float, channels: int, modulation: str, mean: float) -> torch.Tensor:
    """(..., S, S) phases -> (..., channels, S, S) gratings mean * (1 + contrast * direction * cos)."""
    if modulation not in MODULATIONS:
        raise ValueError(f"modulation must be one of {tuple(MODULATIONS)}, got {modulation!r}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if channels == 1 and modulation != "achromatic":
        raise ValueError(f"a one-channel grating is achromatic; modulation={modulation!r} needs channels=3")
    wave = torch.cos(phase_map).unsqueeze(-3)  # (..., 1, S, S)
    direction = torch.tensor(MODULATIONS[modulation][:channels], dtype=torch.float64).view(channels, 1, 1)
    scale = min(1.0, 1.0 / float(direction.abs().max()))  # keep every channel within [0, 1]
    out = mean * (1 + contrast * scale * direction * wave)
    return out.float().clamp(0, 1)


def concentric_grating(size: int, cpd: float, ppd: float, contrast: float = 1.0, phase: float = 0.0,
                       channels: int = 3, modulation: str = "achromatic", mean: float = 0.5) -> torch.Tensor:
    """A radially symmetric grating: mean (1 + contrast cos(2 pi (cpd / ppd) r + phase)), r the distance
    in pixels from the image centre.  Returns (channels, size, size) float32 in [0, 1]."""
    check_grating(size, cpd, ppd, contrast, mean)
    y, x = _coordinates(size)
    return _render(2 * math.pi * cpd / ppd * torch.sqrt(x ** 2 + y ** 2) + phase, contrast, channels, modulation, mean)


def oriented_grating(size: int, cpd: float, ppd: float, theta: float, contrast: float = 1.0, phase: float = 0.0,
                     channels: int = 3, modulation: str = "achromatic", mean: float = 0.5) -> torch.Tensor:
    """A plane-wave grating whose stripes run at angle ``theta`` (radians) from vertical: luminance varies
    along the direction (cos theta, sin theta) in (x, y), i.e. theta = 0 gives vertical stripes.
    Returns (channels, size, size) float32 in [0, 1]."""
    check_grating(size, cpd, ppd, contrast, mean)
    y, x = _coordinates(size)
    u = x * math.cos(theta) + y * math.sin(theta)
    return _render(2 * math.pi * cpd / ppd * u + phase, contrast, channels, modulation, mean)


def grating_batch(kind: str, size: int, values, ppd: float, phases, *, cpd: float | None = None,
                  contrast: float = 1.0, channels: int = 3, modulation: str = "achromatic") -> torch.Tensor:
    """All stimuli of a tuning curve in one tensor (len(values) * len(phases), channels, size, size),
    ordered value-major: ``kind`` "concentric" (``values`` are frequencies in cpd) or "oriented"
    (``values`` are orientations in radians, at frequency ``cpd``)."""
    if kind == "concentric":
        make = lambda v, p: concentric_grating(size, float(v), ppd, contrast, float(p), channels, modulation)  # noqa: E731
    elif kind == "oriented":
        if cpd is None:
            raise ValueError("cpd must be given for oriented gratings")
        make = lambda v, p: oriented_grating(size, cpd, ppd, float(v), contrast, float(p), channels, modulation)  # noqa: E731
    else:
        raise ValueError(f"kind must be 'concentric' or 'oriented', got {kind!r}")
    return torch.stack([make(v, p) for v in values for p in phases])


def dominant_frequency(image: torch.Tensor, ppd: float) -> float:
    """The frequency (cycles per degree) of the strongest non-d.c. component of a (C, H, W) or (H, W)
    image's 2-D amplitude spectrum (channels averaged, mean removed): the radial frequency of the
    peak bin, sqrt(u^2 + v^2) cycles per pixel times ``ppd``."""
    x = image.double()
    x = x.mean(0) if x.dim() == 3 else x
    x = x - x.mean()
    amp = torch.fft.fft2(x).abs()
    amp[0, 0] = 0
    i, j = divmod(int(amp.argmax()), amp.shape[1])
    fy = torch.fft.fftfreq(amp.shape[0], dtype=torch.float64)[i]
    fx = torch.fft.fftfreq(amp.shape[1], dtype=torch.float64)[j]
    return float(torch.sqrt(fx ** 2 + fy ** 2) * ppd)


def radial_amplitude(image: torch.Tensor, ppd: float, n_bins: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(frequencies in cpd, mean amplitude) of a (C, H, W) or (H, W) image's spectrum in ``n_bins`` radial
    bins up to Nyquist (corner frequencies beyond 1/2 cycle per pixel fall in the last bin), mean removed:
    for a concentric grating, a peak at its frequency."""
    x = image.double()
    x = x.mean(0) if x.dim() == 3 else x
    x = x - x.mean()
    amp = torch.fft.fft2(x).abs()
    fy = torch.fft.fftfreq(x.shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(x.shape[1], dtype=torch.float64)[None, :]
    r = torch.sqrt(fx ** 2 + fy ** 2)
    edges = torch.linspace(0, 0.5, n_bins + 1, dtype=torch.float64)
    idx = torch.bucketize(r.flatten(), edges[1:-1])
    total = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, amp.flatten())
    count = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, idx, torch.ones_like(amp.flatten()))
    centres = (edges[:-1] + edges[1:]) / 2 * ppd
    return centres, total / count.clamp_min(1)


__all__ = ["MODULATIONS", "check_grating", "concentric_grating", "oriented_grating", "grating_batch",
           "dominant_frequency", "radial_amplitude"]

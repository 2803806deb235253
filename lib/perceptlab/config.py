"""Presets, devices and the locations of data, weights and runs.

``quick``: CPU, offline, every notebook within 3 minutes on 2 cores, still a real
experiment (small data, small models, real training).
``full``: the papers' data and models on one GPU.
An experiment's config differs between the two only in sizes and data sources.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import torch

PRESETS = ("quick", "full")


def preset(name: str | None = None) -> str:
    """Return the active preset, ``"quick"`` or ``"full"``.

    Order: the explicit ``name`` argument, the ``PERCEPTLAB_PRESET`` environment
    variable, then ``"full"`` if CUDA is available else ``"quick"``.
    """
    value = name or os.environ.get("PERCEPTLAB_PRESET") or ("full" if torch.cuda.is_available() else "quick")
    value = value.strip().lower()
    if value not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {value!r} (check PERCEPTLAB_PRESET)")
    return value


def default_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the argument, ``PERCEPTLAB_DEVICE``, else cuda > mps > cpu."""
    if device is None:
        device = os.environ.get("PERCEPTLAB_DEVICE")
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    return check_device(device)


def check_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, raising a ValueError at once when it names an accelerator this machine lacks.

    (Without this check torch fails seconds later with an AssertionError deep inside, or a model
    loaded from a cache silently stays on the CPU.)
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:<n>' or 'mps', got {device!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested (argument or PERCEPTLAB_DEVICE), but CUDA is not "
                         f"available here (torch {torch.__version__}); use 'cpu', or run on a machine with a GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} was requested, but this machine has {torch.cuda.device_count()} "
                         "CUDA device(s)")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested, but MPS is not available here; use 'cpu'")
    return device


def default_seed() -> int:
    """The default seed of every training run's config: ``PERCEPTLAB_SEED``, else 0.

    Training runs (the 1-D GAN, the DCGAN, super-resolution, the Exemplar-CNN and the digits
    classifier) take it as their ``seed`` field's default, so that a notebook can be rerun with
    another seed without editing it (``PERCEPTLAB_SEED=3 jupyter nbconvert --execute ...``), as
    ``python -m perceptlab spread`` does.  Data draws (crops, synthetic 2AFC sets, bootstraps)
    keep their own fixed seeds: they are the same on every machine.
    """
    value = os.environ.get("PERCEPTLAB_SEED", "0").strip() or "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"PERCEPTLAB_SEED must be an integer, got {value!r}") from None


def cache_dir() -> Path:
    """Root for downloaded or hand-placed data: ``PERCEPTLAB_CACHE`` or ``~/.cache/perceptlab``."""
    return Path(os.environ.get("PERCEPTLAB_CACHE", Path.home() / ".cache" / "perceptlab")).expanduser()


def data_dir() -> Path:
    """Where datasets live: ``PERCEPTLAB_DATA`` or ``<cache_dir>/data``."""
    return Path(os.environ.get("PERCEPTLAB_DATA", cache_dir() / "data")).expanduser()


def quiet() -> bool:
    """True under pytest, CI or ``PERCEPTLAB_QUIET=1``: progress bars are switched off."""
    flag = os.environ.get("PERCEPTLAB_QUIET")
    if flag is not None:
        return flag not in ("", "0", "false", "False")
    return "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("CI", "").lower() in ("1", "true")


def progress(iterable=None, **kwargs):
    """A ``tqdm.auto`` progress bar that is silent under tests and CI (see :func:`quiet`)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)


class PresetConfig:
    """Mixin for experiment config dataclasses: the defaults are the quick preset,
    ``FULL`` lists the fields the full preset changes (sizes and data sources only)."""

    FULL: ClassVar[dict] = {}

    @classmethod
    def for_preset(cls, preset: str, **overrides):
        """The config of ``preset`` ("quick" or "full") with field ``overrides`` applied last."""
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
        return cls(**{**(cls.FULL if preset == "full" else {}), **overrides})

"""Pretrained weights: where they live on disk, and one fetch with a timeout and a clear error.

Every pretrained network of the library (torchvision's ImageNet backbones and Inception,
pytorch-fid's FID Inception) is loaded by :func:`load_hub_state`: from torch's hub cache if the
file is there, else downloaded (hash-checked, with a socket timeout so that an offline
machine fails within seconds), else a :class:`WeightsUnavailableError` that says what was tried
and where to put the file by hand.
"""
from __future__ import annotations

import socket
from pathlib import Path

import torch

from perceptlab.data.datasets import DataUnavailableError
from perceptlab.train import load_state_file

#: pytorch-fid's port of the TensorFlow FID Inception graph (inception-2015-12-05) to PyTorch.
FID_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                   "pt_inception-2015-12-05-6726825d.pth")


class WeightsUnavailableError(DataUnavailableError):
    """Pretrained weights are not on disk and could not be downloaded."""


def read_state_dict(path: Path, what: str, fix: str) -> dict:
    """A state dict from ``path`` with ``weights_only=True`` (tensors only, never pickled code).

    A damaged file (empty, truncated, random bytes) or one holding anything but a dict raises
    :class:`WeightsUnavailableError` naming the file, ``what`` it should hold and ``fix``.
    """
    try:
        return load_state_file(path, what, f"Fix: {fix}.")
    except ValueError as exc:
        raise WeightsUnavailableError(str(exc)) from exc


def hub_path(url: str) -> Path:
    """Where torch's hub cache keeps (or expects) the weights file downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def load_hub_state(url: str, what: str, alternatives: str, timeout: float = 10.0) -> dict:
    """The state dict at ``url``: from the hub cache (:func:`hub_path`), else downloaded; else a clear error.

    Loading uses ``weights_only=True`` (tensors only, no pickled code).  ``what`` names the weights
    and ``alternatives`` the other choices in the error message.
    """
    path = hub_path(url)
    if path.exists():
        return read_state_dict(path, what, f"delete {path} so that it is downloaded again (or put a good copy "
                                           f"there by hand), or {alternatives}")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return torch.hub.load_state_dict_from_url(url, model_dir=str(path.parent), map_location="cpu",
                                                  progress=False, check_hash=True, weights_only=True)
    except Exception as exc:  # URLError, timeouts, hash mismatch
        raise WeightsUnavailableError(
            f"{what} are not available.\n"
            f"Tried: the file {path} (missing), then downloading {url} ({type(exc).__name__}: {exc}).\n"
            f"Put the file by hand at {path} (set TORCH_HOME to move torch's cache), or {alternatives}."
        ) from exc
    finally:
        socket.setdefaulttimeout(old)


def fid_weights_path() -> Path:
    """Where torch's hub cache keeps (or expects) pytorch-fid's FID Inception weights.

    This is where ``pytorch_fid`` itself downloads them (``torch.hub.load_state_dict_from_url``),
    so a machine that has run pytorch-fid already has the file.
    """
    return hub_path(FID_WEIGHTS_URL)


def load_fid_inception_state(timeout: float = 10.0) -> dict:
    """The FID Inception state dict: from the hub cache, else downloaded (hash-checked); else a clear error."""
    return load_hub_state(FID_WEIGHTS_URL, "The FID Inception weights (TF inception-2015-12-05 ported by pytorch-fid)",
                          "use weights='imagenet' (torchvision's Inception, scores not comparable with published "
                          "FIDs) or weights='<path to the .pth file>'", timeout)


def imagenet_weights(name: str):
    """The torchvision weights enum entry used for ``weights="imagenet"`` (torchvision's weights API)."""
    import torchvision

    return torchvision.models.get_model_weights(name).IMAGENET1K_V1


def imagenet_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps (or expects) the ImageNet weights file of ``name``."""
    return hub_path(imagenet_weights(name).url)


def load_imagenet_state(name: str, timeout: float = 10.0) -> dict:
    """The ImageNet state dict of ``name``: from the hub cache, else downloaded; else a clear error."""
    weights = imagenet_weights(name)
    return load_hub_state(weights.url, f"ImageNet weights for {name} ({weights})",
                          "pass weights='random' (seeded random filters) or weights='<path to a .pth state dict>'",
                          timeout)

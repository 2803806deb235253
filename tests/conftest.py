"""Small fixtures shared by the library tests."""
from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``PERCEPTLAB_DATA`` and ``PERCEPTLAB_CACHE`` at an empty temporary folder."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PERCEPTLAB_DATA", str(data))
    return data


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``TORCH_HOME`` at an empty temporary folder, so no cached weights are found."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def write_stl10(folder: Path, n_unlabeled: int = 6, n_test: int = 4, seed: int = 0) -> Path:
    """A tiny STL-10 stand-in in the dataset's binary format under ``folder/stl10/stl10_binary``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    d = folder / "stl10" / "stl10_binary"
    d.mkdir(parents=True)
    rng.integers(0, 256, (n_unlabeled, 3, 96, 96), dtype=np.uint8).tofile(d / "unlabeled_X.bin")
    rng.integers(0, 256, (n_test, 3, 96, 96), dtype=np.uint8).tofile(d / "test_X.bin")
    rng.integers(1, 11, n_test, dtype=np.uint8).tofile(d / "test_y.bin")
    return d


def write_div2k(folder: Path, n_train: int = 3, n_valid: int = 2, seed: int = 0) -> Path:
    """A tiny DIV2K stand-in in the official layout: ``folder/div2k/DIV2K_{train,valid}_HR/NNNN.png``, RGB PNGs
    of different sizes (as DIV2K's are)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = folder / "div2k"
    for split, first, n in (("train", 1, n_train), ("valid", 801, n_valid)):
        d = root / f"DIV2K_{split}_HR"
        d.mkdir(parents=True)
        for k in range(n):
            h, w = 40 + 8 * k, 56 + 4 * k
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{first + k:04d}.png")
    return root


@pytest.fixture
def stl10_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``make(n_unlabeled, n_test)`` writes an STL-10 stand-in and points ``PERCEPTLAB_DATA`` at it."""
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    return lambda n_unlabeled=6, n_test=4: write_stl10(tmp_path, n_unlabeled, n_test)


def assert_same(a, b) -> None:
    """Recursively assert two checkpoint-like objects (tensors, dicts, lists, scalars) are identical."""
    import torch

    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def load_or_fail_fast_offline(build, url: str, path: Path):
    """Call ``build()``, which needs downloaded weights.  Offline (this machine, CI) it must raise a
    :class:`~perceptlab.nets.WeightsUnavailableError` (a ``DataUnavailableError``) within 30 s that
    names ``url`` and the exact ``path`` to put the file; returns None then.  Online, the weights
    were really downloaded to ``path``: returns what ``build()`` made, for the caller to check."""
    import time

    from perceptlab.data.datasets import DataUnavailableError
    from perceptlab.models.weights import WeightsUnavailableError

    start = time.monotonic()
    try:
        made = build()
    except WeightsUnavailableError as exc:
        assert time.monotonic() - start < 30
        message = str(exc)
        assert url in message and f"Put the file by hand at {path}" in message
        assert isinstance(exc, DataUnavailableError)
        return None
    assert path.exists()
    return made


# --------------------------------------------------------------------------- stand-ins in real on-disk formats


class Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as in the real CIFAR-10 batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def write_cifar_batch(path: Path, images: np.ndarray, labels: list[int], label: bytes) -> None:
    """A CIFAR-10 batch file in the real python-2 pickle format (bytes as py2 str)."""
    entry = {b"batch_label": label, b"labels": labels, b"data": images.reshape(len(images), 3072),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(entry)
    path.write_bytes(buf.getvalue())


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (toy-sized networks run faster than on two, and a shared CI
    machine is not oversubscribed); the thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_bapps(folder: Path, subsets=("traditional", "cnn"), n: int = 4, size: int = 64, seed: int = 0,
                split: str = "val") -> Path:
    """A tiny BAPPS 2AFC stand-in in the official layout under ``folder/bapps/2afc/<split>/<subset>/``:
    ``ref``, ``p0``, ``p1`` PNGs and ``judge`` .npy files (the fraction of people who chose p1)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for subset in subsets:
        root = folder / "bapps" / "2afc" / split / subset
        for part in ("ref", "p0", "p1", "judge"):
            (root / part).mkdir(parents=True)
        for i in range(n):
            for part in ("ref", "p0", "p1"):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / part / f"{i:06d}.png")
            np.save(root / "judge" / f"{i:06d}.npy", np.array([rng.random()]))
    return folder / "bapps"


@pytest.fixture
def bapps_stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A BAPPS val stand-in (:func:`write_bapps`) with ``PERCEPTLAB_DATA`` pointing at it."""
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    return write_bapps(tmp_path)


def write_celeba(root: Path, n: int = 6) -> None:
    """A CelebA stand-in in the real layout: img_align_celeba/00000k.jpg (178x218) + list_eval_partition.txt."""
    from PIL import Image

    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(1, n + 1):
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg", quality=90)
        lines.append(f"{i:06d}.jpg {0 if i <= n - 2 else 1}")
    (root / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")


def write_mnist(root: Path, n_train: int = 6, n_test: int = 4) -> dict:
    """An MNIST stand-in in the real layout: ``root/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte``
    (IDX files of random 28x28 uint8 images and labels). Returns {split: (images, labels)}."""
    from perceptlab.data import datasets

    raw = root / "raw"
    raw.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        rng = np.random.default_rng(len(out))
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        fx, fy = datasets._MNIST_FILES[split]
        (raw / fx).write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + x.tobytes())
        (raw / fy).write_bytes(struct.pack(">ii", 2049, n) + y.tobytes())
        out[split] = (x, y)
    return out


def write_bapps_jnd(folder: Path, subsets=("traditional", "cnn"), n: int = 4, size: int = 64, seed: int = 0) -> Path:
    """A tiny BAPPS JND val stand-in in the official layout under ``folder/bapps/jnd/val/<subset>/``:
    ``p0``, ``p1`` PNGs and ``same`` .npy files (the fraction of people who judged the pair the same)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for subset in subsets:
        root = folder / "bapps" / "jnd" / "val" / subset
        for part in ("p0", "p1", "same"):
            (root / part).mkdir(parents=True)
        for i in range(n):
            for part in ("p0", "p1"):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / part / f"{i:06d}.png")
            np.save(root / "same" / f"{i:06d}.npy", np.array([rng.choice([0.0, 1 / 3, 2 / 3, 1.0])]))
    return folder / "bapps"


def write_iqa(folder: Path, name: str = "live", n_refs: int = 3, per_ref: int = 4, size: int = 48) -> Path:
    """A human-rated QA stand-in in the documented layout: ``folder/iqa/<name>/scores.csv`` (reference,
    distorted, score, group) and its PNG images (noise of growing strength, score = strength)."""
    from PIL import Image

    root = folder / "iqa" / name
    (root / "refs").mkdir(parents=True)
    (root / "dist").mkdir()
    rng = np.random.default_rng(0)
    lines = ["reference,distorted,score,group"]
    for r in range(n_refs):
        ref = rng.integers(0, 256, (size, size, 3)).astype(np.float64)
        Image.fromarray(ref.astype(np.uint8)).save(root / "refs" / f"r{r}.png")
        for k in range(per_ref):
            noisy = np.clip(ref + rng.normal(0, 10 * (k + 1), ref.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(root / "dist" / f"r{r}_{k}.png")
            lines.append(f"refs/r{r}.png,dist/r{r}_{k}.png,{10 * (k + 1)},noise")
    (root / "scores.csv").write_text("\n".join(lines) + "\n")
    return root

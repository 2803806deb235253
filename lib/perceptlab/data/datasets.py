"""The dataset registry: each dataset's files, URLs and checksums, download or hand-placed files, and readers
in the datasets' own on-disk formats (MNIST, CIFAR-10, STL-10, CelebA, BAPPS).

A dataset that is neither on disk nor downloadable raises :class:`DataUnavailableError` within
seconds, naming what was tried and where to put the files.
"""
from __future__ import annotations

import gzip
import hashlib
import pickle
import shutil
import socket
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from perceptlab.config import data_dir
from perceptlab.imaging.convert import read_image
from perceptlab.imaging.resample import resize


class DataUnavailableError(FileNotFoundError):
    """Data (or weights) are not on disk and could not be fetched."""


@dataclass(frozen=True)
class Resource:
    """One file of a dataset: where it comes from, its checksum, and what to do with it."""

    url: str
    filename: str
    md5: str | None = None
    extract: bool = False
    splits: tuple[str, ...] | None = None  # None: needed for every split


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, fetch and read one real dataset."""

    name: str
    resources: tuple[Resource, ...]
    required: Callable[[Path, str], list[Path]]  # files that must exist for a split
    reader: Callable[[Path, str], torch.utils.data.Dataset]
    splits: tuple[str, ...]
    homepage: str
    notes: str = ""
    manual: bool = False  # True when files can't be fetched automatically (licence/Drive)


REGISTRY: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec) -> DatasetSpec:
    REGISTRY[spec.name] = spec
    return spec


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Download ``url`` to ``target`` through ``target.part`` (removed if the transfer fails)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": "perceptlab"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)


def download(resource: Resource, folder: Path, timeout: float = 15.0) -> Path:
    """Fetch ``resource`` into ``folder``, verify its md5, extract archives. Returns the verified file's path.

    A file that is already there (put by hand, or an earlier download) is used when its md5
    matches.  When it does not, it is **kept**, never deleted or overwritten: a fresh copy is
    downloaded beside it, into ``folder/.download/``, verified and used instead.  A fresh
    download that fails its checksum is removed (it is the library's own file) and reported.
    """
    target = folder / resource.filename
    if target.exists():
        actual = md5sum(target) if resource.md5 is not None else None
        if actual == resource.md5:
            if resource.extract:
                extract_archive(target, folder, resource.filename)
            return target
        kept = (f"{target} is there but does not match (expected md5 {resource.md5}, found {actual}); it was "
                f"kept as it is")
        target = folder / ".download" / resource.filename
        try:
            _fetch(resource.url, target, timeout)
        except OSError as exc:
            raise DataUnavailableError(f"{kept}, and a fresh copy could not be downloaded from {resource.url} "
                                       f"({type(exc).__name__}: {exc}). Replace it by the file from that URL.") from exc
    else:
        _fetch(resource.url, target, timeout)
    if resource.md5 is not None:
        actual = md5sum(target)
        if actual != resource.md5:
            target.unlink()
            raise DataUnavailableError(f"the download from {resource.url} does not match its checksum (expected md5 "
                                       f"{resource.md5}, got {actual}); the downloaded file was removed")
    if resource.extract:
        extract_archive(target, folder, resource.filename)
    return target


def extract_archive(archive: Path, folder: Path, filename: str | None = None) -> None:
    """Extract ``archive`` into ``folder``; a single ``.gz`` file becomes ``folder/filename`` without ``.gz``
    (``filename``: its path relative to ``folder``, default the archive's own name)."""
    name = archive.name
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(folder)
    elif name.endswith(".gz"):
        out_path = (folder / (filename or archive.name)).with_suffix("")
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(archive, "rb") as src, open(out_path, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        raise ValueError(f"don't know how to extract {archive}")


def dataset_root(name: str, root: str | Path | None = None) -> Path:
    return Path(root).expanduser() if root is not None else data_dir() / name


def load_dataset(name: str, split: str = "train", root: str | Path | None = None, download_ok: bool = True,
                 timeout: float = 15.0) -> torch.utils.data.Dataset:
    """Open a registered dataset; items are ``(image, target)`` with image (C, H, W) in [0, 1].

    Looks for the dataset's files in ``root`` (default ``data_dir()/<name>``). If
    they are missing and ``download_ok``, fetches each resource from its official
    URL (checking its md5). If that fails, raises :class:`DataUnavailableError`
    naming the URLs tried and the exact files to put in place by hand.
    """
    if name not in REGISTRY:
        raise ValueError(f"name must be one of {sorted(REGISTRY)}, got {name!r}")
    spec = REGISTRY[name]
    if split not in spec.splits:
        raise ValueError(f"split must be one of {spec.splits} for {name}, got {split!r}")
    folder = dataset_root(name, root)
    missing = [p for p in spec.required(folder, split) if not p.exists()]
    if not missing:
        return spec.reader(folder, split)
    tried: list[str] = []
    if download_ok and not spec.manual:
        try:
            for res in spec.resources:
                if res.splits is not None and split not in res.splits:
                    continue
                tried.append(res.url)
                download(res, folder, timeout=timeout)
        except (OSError, socket.timeout, tarfile.TarError, zipfile.BadZipFile) as exc:
            tried[-1] += f" ({type(exc).__name__}: {exc})"
        else:
            missing = [p for p in spec.required(folder, split) if not p.exists()]
            if not missing:
                return spec.reader(folder, split)
    raise DataUnavailableError(unavailable_message(spec, folder, split, missing, tried, download_ok))


def unavailable_message(spec: DatasetSpec, folder: Path, split: str, missing: list[Path], tried: list[str],
                        download_ok: bool) -> str:
    lines = [f"dataset {spec.name!r} is not available."]
    lines.append("Missing: " + ", ".join(str(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else ""))
    if tried:
        lines.append("Tried to download: " + "; ".join(tried))
    elif spec.manual:
        lines.append("It cannot be downloaded automatically.")
    elif not download_ok:
        lines.append("Downloading was not allowed (download_ok=False).")
    lines.append(
        f"Put the files by hand into {folder} (or set PERCEPTLAB_DATA to a folder holding '{spec.name}/'): "
        + ", ".join(f"{r.filename} from {r.url}" for r in spec.resources if r.splits is None or split in r.splits)
        + (f". {spec.notes.rstrip('.')}" if spec.notes else "")
        + f". Homepage: {spec.homepage}"
    )
    lines.append("Offline, use the quick preset, which needs only bundled images.")
    return "\n".join(lines)


class TensorImageDataset(torch.utils.data.Dataset):
    """(N, C, H, W) uint8 or float images with integer targets; items are float (C, H, W) in [0, 1]."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor | None = None):
        self.images = images
        self.targets = targets if targets is not None else torch.zeros(len(images), dtype=torch.long)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = self.images[i]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return x, int(self.targets[i])


class ImageFolderList(torch.utils.data.Dataset):
    """Images read with PIL from a list of files; items are ``(image, target)``."""

    def __init__(self, files: list[Path], targets: list | None = None, transform: Callable | None = None):
        self.files = list(files)
        self.targets = targets if targets is not None else [0] * len(self.files)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        x = read_image(self.files[i])[0]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.targets[i]


# MNIST: IDX files, read with torchvision's own IDX reader.
_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _mnist_required(folder: Path, split: str) -> list[Path]:
    return [folder / "raw" / f for f in _MNIST_FILES[split]]


def _mnist_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    images_file, labels_file = _mnist_required(folder, split)
    images = read_image_file(str(images_file)).unsqueeze(1)
    labels = read_label_file(str(labels_file))
    return TensorImageDataset(images, labels)


_MNIST_BASE = "https://ossci-datasets.s3.amazonaws.com/mnist/"


# CIFAR-10: the python pickle batches.
def _cifar_files(split: str) -> list[str]:
    return [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]


def _cifar_required(folder: Path, split: str) -> list[Path]:
    return [folder / "cifar-10-batches-py" / f for f in _cifar_files(split)]


def _cifar_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    data, labels = [], []
    for path in _cifar_required(folder, split):
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return TensorImageDataset(torch.from_numpy(np.concatenate(data)), torch.tensor(labels))


# STL-10: binary files of uint8 images stored column-major (N, 3, 96, 96) transposed.
_STL_FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"), "unlabeled": ("unlabeled_X.bin", None)}


def _stl_required(folder: Path, split: str) -> list[Path]:
    return [folder / "stl10_binary" / f for f in _STL_FILES[split] if f]


def _stl_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    x_file, y_file = _STL_FILES[split]
    raw = np.fromfile(folder / "stl10_binary" / x_file, dtype=np.uint8)
    images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)  # stored column-major
    labels = None
    if y_file:
        labels = torch.from_numpy(np.fromfile(folder / "stl10_binary" / y_file, dtype=np.uint8).astype(np.int64) - 1)
    return TensorImageDataset(torch.from_numpy(np.ascontiguousarray(images)), labels)


# CelebA (aligned & cropped JPEGs + the official partition file).
_CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


def _celeba_required(folder: Path, split: str) -> list[Path]:
    return [folder / "img_align_celeba", folder / "list_eval_partition.txt"]


def celeba_transform(size: int = 64) -> Callable[[torch.Tensor], torch.Tensor]:
    """The usual DCGAN CelebA preprocessing: centre crop 108x108 then resize to ``size``."""

    def apply(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        c = min(108, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        return resize(x[None, :, top: top + c, left: left + c], size)[0]

    return apply


def _celeba_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    wanted = _CELEBA_SPLITS[split]
    files = []
    for line in (folder / "list_eval_partition.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) == 2 and int(parts[1]) == wanted:
            files.append(folder / "img_align_celeba" / parts[0])
    return ImageFolderList(files, transform=celeba_transform(64))


# BAPPS 2AFC (Zhang et al. 2018): 2afc/<split>/<subset>/{ref,p0,p1}/*.png and judge/*.npy.
BAPPS_SUBSETS = {
    "train": ("traditional", "cnn", "mix"),
    "val": ("traditional", "cnn", "superres", "deblur", "color", "frameinterp"),
}


# and BAPPS JND, split "jnd-val": jnd/val/<subset>/{p0,p1}/*.png and same/*.npy.
def _bapps_required(folder: Path, split: str) -> list[Path]:
    return [folder / "jnd" / split.removeprefix("jnd-")] if split.startswith("jnd-") else [folder / "2afc" / split]


def _bapps_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    if split.startswith("jnd-"):
        return BAPPSJND(folder / "jnd" / split.removeprefix("jnd-"))
    return BAPPS2AFC(folder / "2afc" / split)


class _BAPPSFolders(torch.utils.data.Dataset):
    """Records of a BAPPS split from the dataset's own folder layout: subset folders, each with one folder
    of PNG images per part (matching names) and a folder of ``.npy`` files with one number per record."""

    parts: tuple[str, ...] = ()
    value: str = ""

    def __init__(self, root: str | Path, subsets: tuple[str, ...] | None = None, size: int | None = None):
        root = Path(root)
        first = self.parts[0]
        folders = [root] if (root / first).is_dir() else sorted(p for p in root.iterdir() if (p / first).is_dir())
        if subsets is not None:
            folders = [f for f in folders if f.name in subsets]
        if not folders:
            raise DataUnavailableError(f"no BAPPS subset folders (with {', '.join(p + '/' for p in self.parts)} "
                                       f"{self.value}/) found in {root}")
        self.items = []
        for folder in folders:
            for image in sorted((folder / first).glob("*.png")):
                self.items.append((folder.name, *(folder / part / image.name for part in self.parts),
                                   folder / self.value / f"{image.stem}.npy"))
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, path: Path) -> torch.Tensor:
        x = read_image(path)
        return (resize(x, self.size) if self.size else x)[0]

    def __getitem__(self, i: int) -> dict:
        subset, *images, value = self.items[i]
        return {**{part: self._read(path) for part, path in zip(self.parts, images)},
                self.value: float(np.load(value).reshape(-1)[0]), "subset": subset}


class BAPPS2AFC(_BAPPSFolders):
    """BAPPS two-alternative forced choice triplets from the dataset's own folder layout.

    ``root`` is ``.../2afc/<split>`` holding subset folders, or one subset folder,
    each with ``ref/``, ``p0/``, ``p1/`` (PNG images with matching names) and
    ``judge/`` (``.npy`` files holding the fraction of people who chose p1).
    Items are dicts with ``ref``, ``p0``, ``p1`` (3, H, W) in [0, 1], ``judge``
    (float) and ``subset`` (str).
    """

    parts, value = ("ref", "p0", "p1"), "judge"


class BAPPSJND(_BAPPSFolders):
    """BAPPS just-noticeable-difference pairs from the dataset's own folder layout.

    ``root`` is ``.../jnd/<split>`` holding subset folders (``cnn``, ``traditional``), or one, each with
    ``p0/``, ``p1/`` (PNG images with matching names) and ``same/`` (``.npy`` files holding the fraction
    of people who judged the pair the same).  Items are dicts with ``p0``, ``p1``, ``same``, ``subset``.
    """

    parts, value = ("p0", "p1"), "same"


# DIV2K (Agustsson & Timofte 2017): 800 training and 100 validation photos of about 2040 pixels, PNG.
_DIV2K_FOLDERS = {"train": "DIV2K_train_HR", "valid": "DIV2K_valid_HR"}


def _div2k_required(folder: Path, split: str) -> list[Path]:
    return [folder / _DIV2K_FOLDERS[split]]


def _div2k_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    files = sorted((folder / _DIV2K_FOLDERS[split]).glob("*.png"))
    if not files:
        raise DataUnavailableError(f"{folder / _DIV2K_FOLDERS[split]} holds no PNG images; unzip "
                                   f"{_DIV2K_FOLDERS[split]}.zip in {folder}")
    return ImageFolderList(files)


# --------------------------------------------------------------------------- the registered datasets

register(DatasetSpec(
    name="mnist",
    resources=tuple(
        Resource(_MNIST_BASE + f + ".gz", "raw/" + f + ".gz", md5, extract=True, splits=(split,))
        for f, md5, split in [
            ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "train"),
            ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432", "train"),
            ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3", "test"),
            ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c", "test"),
        ]
    ),
    required=_mnist_required, reader=_mnist_reader, splits=("train", "test"),
    homepage="http://yann.lecun.com/exdb/mnist/",
    notes="Files go in raw/ (gunzipped IDX files).",
))

register(DatasetSpec(
    name="cifar10",
    resources=(Resource("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a", extract=True),),
    required=_cifar_required, reader=_cifar_reader, splits=("train", "test"),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
))

register(DatasetSpec(
    name="stl10",
    resources=(Resource("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                        "91f7769df0f17e558f3565bffb0c7dfb", extract=True),),
    required=_stl_required, reader=_stl_reader, splits=("train", "test", "unlabeled"),
    homepage="https://cs.stanford.edu/~acoates/stl10/",
))

register(DatasetSpec(
    name="celeba",
    resources=(Resource("https://drive.google.com/file/d/0B7EVK8r0v71pZjFTYXZWM3FlRnM", "img_align_celeba.zip",
                        "00d2c5bc6d35e252742224ab0c1e8fcb", extract=True),
               Resource("https://drive.google.com/file/d/0B7EVK8r0v71pY0NSMzRuSXJEVkk", "list_eval_partition.txt",
                        "d32c9cbf5e040fd4025c592c306e6668")),
    required=_celeba_required, reader=_celeba_reader, splits=("train", "valid", "test"),
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    notes="CelebA is served from Google Drive and must be fetched by hand: unzip img_align_celeba.zip so that "
          "img_align_celeba/000001.jpg exists, next to list_eval_partition.txt",
    manual=True,
))

register(DatasetSpec(
    name="div2k",
    resources=(Resource("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", "DIV2K_train_HR.zip", None,
                        extract=True, splits=("train",)),
               Resource("http://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", "DIV2K_valid_HR.zip", None,
                        extract=True, splits=("valid",))),
    required=_div2k_required, reader=_div2k_reader, splits=("train", "valid"),
    homepage="https://data.vision.ee.ethz.ch/cvl/DIV2K/",
    notes="Unzip so that DIV2K_train_HR/0001.png ... and DIV2K_valid_HR/0801.png ... exist (the layout of the "
          "official zip files; only the high-resolution images are used). The authors publish no checksums, so "
          "none is verified",
))

register(DatasetSpec(
    name="bapps",
    resources=(Resource("https://people.eecs.berkeley.edu/~rich.zhang/projects/2018_perceptual/dataset/twoafc_val.tar.gz",
                        "twoafc_val.tar.gz", None, extract=True, splits=("val",)),
               Resource("https://people.eecs.berkeley.edu/~rich.zhang/projects/2018_perceptual/dataset/twoafc_train.tar.gz",
                        "twoafc_train.tar.gz", None, extract=True, splits=("train",)),
               Resource("https://people.eecs.berkeley.edu/~rich.zhang/projects/2018_perceptual/dataset/jnd.tar.gz",
                        "jnd.tar.gz", None, extract=True, splits=("jnd-val",))),
    required=_bapps_required, reader=_bapps_reader, splits=("val", "train", "jnd-val"),
    homepage="https://github.com/richzhang/PerceptualSimilarity",
    notes="Unpack so that 2afc/val/<subset>/{ref,p0,p1,judge}/ (and, for split jnd-val, jnd/val/<subset>/"
          "{p0,p1,same}/) exist (the layout of the official tarballs). "
          "The authors publish no checksums, so none is verified",
))

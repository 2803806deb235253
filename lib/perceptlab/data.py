"""Data: bundled images, random crops and patches, and a registry of real datasets.

Bundled images (offline, shipped by scikit-image and scikit-learn) are returned as
float tensors (N, C, H, W) in [0, 1].  Real datasets (MNIST, CIFAR-10, STL-10,
CelebA, BAPPS 2AFC) are read from their original on-disk formats in
``data_dir()/<name>`` and, where allowed, downloaded there from their official
URL with a checksum.  When files are missing and cannot be fetched,
:class:`DataUnavailableError` says what was tried and where to put the files.
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
import torch.nn.functional as F

from .config import data_dir
from .validate import check_image, check_positive_int

# --------------------------------------------------------------------------- bundled images

SKIMAGE_IMAGES = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "text",
    "coins", "moon", "page", "horse", "clock", "hubble_deep_field", "immunohistochemistry",
    "logo", "motorcycle_left", "retina", "cat",
)
SKLEARN_IMAGES = ("china", "flower")


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """Convert an (H, W) or (H, W, C) uint8/bool/float array to a (1, C, H, W) float tensor in [0, 1]."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"array must have shape (H, W) or (H, W, C), got {arr.shape}")
    arr = arr[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).unsqueeze(0).clamp(0, 1)


def read_image(path: str | Path) -> torch.Tensor:
    """Read an image file with PIL as a (1, 3, H, W) float tensor in [0, 1] (``torchvision.io`` is not used)."""
    from PIL import Image

    with Image.open(path) as im:
        return to_tensor(np.asarray(im.convert("RGB")))


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """Convert a (C, H, W) or (1, C, H, W) tensor to an (H, W) or (H, W, C) float array for plotting."""
    x = image.detach().cpu()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"image must hold a single image, got shape {tuple(x.shape)}")
        x = x[0]
    if x.dim() == 3:
        x = x.permute(1, 2, 0)
        if x.shape[-1] == 1:
            x = x[..., 0]
    return x.numpy()


def resize(images: torch.Tensor, size: int | tuple[int, int], antialias: bool = True) -> torch.Tensor:
    """Resize (N, C, H, W) images with bilinear interpolation (antialiased when shrinking)."""
    check_image(images, "images")
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=antialias).clamp(0, 1)


def to_gray(images: torch.Tensor) -> torch.Tensor:
    """Luminance of (N, 3, H, W) images with the BT.709 weights ``skimage.color.rgb2gray`` uses."""
    check_image(images, "images", channels=(1, 3))
    if images.shape[1] == 1:
        return images
    w = images.new_tensor([0.2125, 0.7154, 0.0721]).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def load_image(name: str, size: int | tuple[int, int] | None = None, gray: bool = False) -> torch.Tensor:
    """Load one bundled image as a (1, C, H, W) float tensor in [0, 1].

    Args:
        name: a scikit-image ``skimage.data`` image shipped with the package (see
            ``SKIMAGE_IMAGES``) or a scikit-learn sample image ("china", "flower").
        size: optional output size (square int or (H, W)) after a centre crop to the target aspect.
        gray: return one luminance channel.
    """
    if name in SKLEARN_IMAGES:
        from sklearn.datasets import load_sample_image

        array = load_sample_image(f"{name}.jpg")
    elif name in SKIMAGE_IMAGES:
        import skimage.data

        try:
            array = getattr(skimage.data, name)()
        except Exception as exc:  # e.g. an image that needs a download
            raise DataUnavailableError(
                f"scikit-image image {name!r} could not be loaded offline ({exc}); "
                f"use one shipped with the package, e.g. {', '.join(SKIMAGE_IMAGES[:9])}"
            ) from exc
    else:
        raise ValueError(f"name must be one of {SKIMAGE_IMAGES + SKLEARN_IMAGES}, got {name!r}")
    image = to_tensor(array)
    if gray:
        image = to_gray(image) if image.shape[1] == 3 else image
    if size is not None:
        image = resize(center_crop_to_aspect(image, size), size)
    return image


def center_crop_to_aspect(images: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Centre-crop (N, C, H, W) images to the aspect ratio of ``size``."""
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = images.shape[-2:]
    if h * tw > w * th:  # too tall
        nh = round(w * th / tw)
        top = (h - nh) // 2
        return images[..., top: top + nh, :]
    nw = round(h * tw / th)
    left = (w - nw) // 2
    return images[..., :, left: left + nw]


def load_digits(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 handwritten digits as (N, 1, size, size) images in [0, 1] and labels (N,)."""
    from sklearn.datasets import load_digits as _load

    check_positive_int(size, "size")
    bunch = _load()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    return images, torch.from_numpy(bunch.target.astype(np.int64))


def random_crops(images: torch.Tensor, size: int, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random ``size``x``size`` crops from (N, C, H, W) images (image chosen uniformly)."""
    check_image(images, "images")
    check_positive_int(size, "size")
    check_positive_int(n, "n")
    H, W = images.shape[-2:]
    if size > H or size > W:
        raise ValueError(f"size must be at most the image size {(H, W)}, got {size}")
    idx = torch.randint(images.shape[0], (n,), generator=generator)
    top = torch.randint(H - size + 1, (n,), generator=generator)
    left = torch.randint(W - size + 1, (n,), generator=generator)
    return torch.stack([images[i, :, t: t + size, l: l + size] for i, t, l in zip(idx.tolist(), top.tolist(), left.tolist())])


class PatchDataset(torch.utils.data.Dataset):
    """A fixed, seeded set of ``n`` random patches from bundled (or given) images.

    Items are (C, size, size) tensors in [0, 1] (C = 3 unless ``gray``; greyscale
    images are repeated over 3 channels); the set is drawn once, so epochs
    and resumed runs see the same patches.
    """

    def __init__(self, images: torch.Tensor | list[str], size: int, n: int, seed: int = 0, gray: bool = False,
                 image_size: int | None = None):
        if isinstance(images, (list, tuple)):
            loaded = [load_image(name, size=image_size, gray=gray) for name in images]
            if not gray:  # greyscale images (camera, brick, ...) become 3 equal channels
                loaded = [im.expand(-1, 3, -1, -1) for im in loaded]
            if image_size is None and len({im.shape[-2:] for im in loaded}) > 1:
                raise ValueError("images of different sizes need image_size to be set")
            images = torch.cat(loaded)
        self.patches = random_crops(images, size, n, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return self.patches.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.patches[i]


# --------------------------------------------------------------------------- registry of real datasets


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


def download(resource: Resource, folder: Path, timeout: float = 15.0) -> Path:
    """Download ``resource`` into ``folder``, verify its md5, extract archives. Returns the file path."""
    target = folder / resource.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_suffix(target.suffix + ".part")
        request = urllib.request.Request(resource.url, headers={"User-Agent": "perceptlab"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response, open(partial, "wb") as out:
                shutil.copyfileobj(response, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(target)
    if resource.md5 is not None:
        actual = md5sum(target)
        if actual != resource.md5:
            target.unlink()
            raise DataUnavailableError(
                f"checksum mismatch for {target.name}: expected md5 {resource.md5}, got {actual}; the file was removed"
            )
    if resource.extract:
        extract_archive(target, folder)
    return target


def extract_archive(archive: Path, folder: Path) -> None:
    name = archive.name
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(folder)
    elif name.endswith(".gz"):
        with gzip.open(archive, "rb") as src, open(archive.with_suffix(""), "wb") as out:
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


register(DatasetSpec(
    name="cifar10",
    resources=(Resource("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                        "c58f30108f718f92721af3b95e74349a", extract=True),),
    required=_cifar_required, reader=_cifar_reader, splits=("train", "test"),
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
))


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


register(DatasetSpec(
    name="stl10",
    resources=(Resource("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "stl10_binary.tar.gz",
                        "91f7769df0f17e558f3565bffb0c7dfb", extract=True),),
    required=_stl_required, reader=_stl_reader, splits=("train", "test", "unlabeled"),
    homepage="https://cs.stanford.edu/~acoates/stl10/",
))


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


# BAPPS 2AFC (Zhang et al. 2018): 2afc/<split>/<subset>/{ref,p0,p1}/*.png and judge/*.npy.
BAPPS_SUBSETS = {
    "train": ("traditional", "cnn", "mix"),
    "val": ("traditional", "cnn", "superres", "deblur", "color", "frameinterp"),
}


def _bapps_required(folder: Path, split: str) -> list[Path]:
    return [folder / "2afc" / split]


def _bapps_reader(folder: Path, split: str) -> torch.utils.data.Dataset:
    return BAPPS2AFC(folder / "2afc" / split)


class BAPPS2AFC(torch.utils.data.Dataset):
    """BAPPS two-alternative forced choice triplets from the dataset's own folder layout.

    ``root`` is ``.../2afc/<split>`` holding subset folders, or one subset folder,
    each with ``ref/``, ``p0/``, ``p1/`` (PNG images with matching names) and
    ``judge/`` (``.npy`` files holding the fraction of people who chose p1).
    Items are dicts with ``ref``, ``p0``, ``p1`` (3, H, W) in [0, 1], ``judge``
    (float) and ``subset`` (str).
    """

    def __init__(self, root: str | Path, subsets: tuple[str, ...] | None = None, size: int | None = None):
        root = Path(root)
        folders = [root] if (root / "ref").is_dir() else sorted(p for p in root.iterdir() if (p / "ref").is_dir())
        if subsets is not None:
            folders = [f for f in folders if f.name in subsets]
        if not folders:
            raise DataUnavailableError(f"no BAPPS subset folders (with ref/, p0/, p1/, judge/) found in {root}")
        self.items = []
        for folder in folders:
            for ref in sorted((folder / "ref").glob("*.png")):
                stem = ref.stem
                self.items.append((folder.name, ref, folder / "p0" / ref.name, folder / "p1" / ref.name,
                                   folder / "judge" / f"{stem}.npy"))
        self.size = size

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, path: Path) -> torch.Tensor:
        x = read_image(path)
        return (resize(x, self.size) if self.size else x)[0]

    def __getitem__(self, i: int) -> dict:
        subset, ref, p0, p1, judge = self.items[i]
        return {"ref": self._read(ref), "p0": self._read(p0), "p1": self._read(p1),
                "judge": float(np.load(judge).reshape(-1)[0]), "subset": subset}


register(DatasetSpec(
    name="bapps",
    resources=(Resource("https://people.eecs.berkeley.edu/~rich.zhang/projects/2018_perceptual/dataset/twoafc_val.tar.gz",
                        "twoafc_val.tar.gz", None, extract=True, splits=("val",)),
               Resource("https://people.eecs.berkeley.edu/~rich.zhang/projects/2018_perceptual/dataset/twoafc_train.tar.gz",
                        "twoafc_train.tar.gz", None, extract=True, splits=("train",))),
    required=_bapps_required, reader=_bapps_reader, splits=("val", "train"),
    homepage="https://github.com/richzhang/PerceptualSimilarity",
    notes="Unpack so that 2afc/val/<subset>/{ref,p0,p1,judge}/ exist (the layout of the official tarballs). "
          "The authors publish no checksums, so none is verified",
))

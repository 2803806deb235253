"""Tests of perceptlab.data: bundled images, crops/patches, conversions and the dataset registry.

The registry is exercised on tiny stand-ins written in each dataset's real on-disk
format (IDX, Python-2 pickles, column-major binaries, JPEG/PNG folders), so nothing
is downloaded.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import socket
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import Py2Pickler, write_cifar_batch, write_mnist
from perceptlab import data, imaging
from perceptlab.data import datasets
from perceptlab.data.datasets import DataUnavailableError, Resource
from PIL import Image

# --------------------------------------------------------------------------- bundled images


@pytest.mark.parametrize(
    "name, shape",
    [("astronaut", (1, 3, 512, 512)), ("camera", (1, 1, 512, 512)), ("chelsea", (1, 3, 300, 451)),
     ("china", (1, 3, 427, 640))],
)
def test_load_image_shape_dtype_range(name, shape):
    image = data.load_image(name)
    assert tuple(image.shape) == shape
    assert image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0


def test_load_image_values_are_uint8_over_255():
    import skimage.data

    raw = skimage.data.chelsea()
    image = data.load_image("chelsea")
    expected = torch.from_numpy(raw.astype(np.float32) / 255).permute(2, 0, 1)[None]
    assert torch.equal(image, expected)


@pytest.mark.parametrize("name", ["astronaut", "china"])
def test_load_image_gray_matches_skimage_rgb2gray(name):
    from skimage.color import rgb2gray

    gray = data.load_image(name, gray=True)
    rgb = data.load_image(name)
    assert tuple(gray.shape) == (1, 1) + tuple(rgb.shape[-2:])
    expected = rgb2gray((rgb[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    np.testing.assert_allclose(gray[0, 0].numpy(), expected, atol=1e-6, rtol=0)


def test_load_image_gray_of_gray_image_is_unchanged():
    assert torch.equal(data.load_image("camera", gray=True), data.load_image("camera"))


def test_load_image_size_crops_centre_then_resizes():
    full = data.load_image("chelsea")  # 300 x 451
    square = data.load_image("chelsea", size=300)  # centre crop to 300 x 300, resize to the same size
    left = (451 - 300) // 2
    assert torch.allclose(square, full[..., :, left: left + 300], atol=1e-6)
    assert tuple(data.load_image("chelsea", size=64).shape) == (1, 3, 64, 64)
    assert tuple(data.load_image("astronaut", size=(32, 48), gray=True).shape) == (1, 1, 32, 48)


def test_center_crop_to_aspect():
    x = torch.arange(6 * 10, dtype=torch.float32).view(1, 1, 6, 10)
    assert torch.equal(imaging.center_crop_to_aspect(x, 4), x[..., :, 2:8])  # too wide: 6 x 6
    y = x.transpose(-1, -2)  # 10 x 6: too tall
    assert torch.equal(imaging.center_crop_to_aspect(y, (1, 2)), y[..., 3:6, :])  # 3 x 6 from the middle


def test_load_image_unknown_name_raises():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_image("lena")


def test_to_gray_uses_bt709_weights():
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.allclose(imaging.to_gray(x), torch.full((2, 1, 2, 2), 0.2125))
    ones = torch.ones(1, 3, 2, 2)
    assert torch.allclose(imaging.to_gray(ones), torch.ones(1, 1, 2, 2))


def test_resize_shape_and_constant_image():
    x = torch.full((2, 3, 20, 30), 0.25)
    out = imaging.resize(x, (7, 11))
    assert tuple(out.shape) == (2, 3, 7, 11)
    assert torch.allclose(out, torch.full_like(out, 0.25))


def test_load_digits_shape_and_values():
    from sklearn.datasets import load_digits

    images, labels = data.load_digits(32)
    assert tuple(images.shape) == (1797, 1, 32, 32) and images.dtype == torch.float32
    assert tuple(labels.shape) == (1797,) and labels.dtype == torch.int64
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    small, labels8 = data.load_digits(8)
    bunch = load_digits()
    assert torch.equal(small[:, 0], torch.from_numpy(bunch.images.astype(np.float32) / 16))
    assert torch.equal(labels8, torch.from_numpy(bunch.target).long())
    with pytest.raises(ValueError, match="size"):
        data.load_digits(0)


# --------------------------------------------------------------------------- crops and patches


def _locate(crop: torch.Tensor, images: torch.Tensor) -> list[tuple[int, int, int]]:
    """Every (image, top, left) where ``crop`` occurs exactly in ``images`` (exhaustive search)."""
    s = crop.shape[-1]
    windows = np.lib.stride_tricks.sliding_window_view(images.numpy(), (s, s), axis=(2, 3))  # N, C, H', W', s, s
    hits = np.all(windows == crop.numpy()[None, :, None, None], axis=(1, 4, 5))
    return [tuple(int(v) for v in idx) for idx in np.argwhere(hits)]


def test_random_crops_are_sub_arrays_and_seeded():
    images = torch.rand(2, 3, 12, 15, generator=torch.Generator().manual_seed(1))
    a = data.random_crops(images, 5, 20, torch.Generator().manual_seed(7))
    b = data.random_crops(images, 5, 20, torch.Generator().manual_seed(7))
    c = data.random_crops(images, 5, 20, torch.Generator().manual_seed(8))
    assert tuple(a.shape) == (20, 3, 5, 5)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    locations = [_locate(crop, images) for crop in a]
    assert all(len(loc) == 1 for loc in locations)  # each crop is a genuine window of one image
    assert len({loc[0][0] for loc in locations}) == 2  # both images are used


def test_random_crops_full_size_crop_is_the_image():
    images = torch.rand(1, 1, 6, 6)
    assert torch.equal(data.random_crops(images, 6, 3), images.expand(3, 1, 6, 6))


def test_random_crops_rejects_bad_arguments():
    images = torch.rand(1, 3, 8, 10)
    with pytest.raises(ValueError, match="size must be at most"):
        data.random_crops(images, 9, 1)
    with pytest.raises(ValueError, match="^n must be"):
        data.random_crops(images, 4, 0)
    with pytest.raises(ValueError, match="^images "):
        data.random_crops(images * 2, 4, 1)


def test_patch_dataset_length_and_determinism():
    a = data.PatchDataset(["camera"], size=16, n=12, seed=3, gray=True)
    b = data.PatchDataset(["camera"], size=16, n=12, seed=3, gray=True)
    c = data.PatchDataset(["camera"], size=16, n=12, seed=4, gray=True)
    assert len(a) == 12
    assert tuple(a[0].shape) == (1, 16, 16)
    assert all(torch.equal(a[i], b[i]) for i in range(len(a)))
    assert not torch.equal(a.patches, c.patches)
    camera = data.load_image("camera")
    assert all(len(_locate(a[i], camera)) >= 1 for i in (0, 5, 11))


def test_patch_dataset_gray_image_becomes_three_equal_channels():
    gray = data.PatchDataset(["camera"], size=16, n=4, seed=3, gray=True)
    rgb = data.PatchDataset(["camera"], size=16, n=4, seed=3)
    assert tuple(rgb[0].shape) == (3, 16, 16)
    assert torch.equal(rgb.patches, gray.patches.expand(-1, 3, -1, -1))


def test_patch_dataset_mixed_sizes_need_image_size():
    with pytest.raises(ValueError, match="image_size"):
        data.PatchDataset(["astronaut", "chelsea"], size=8, n=2)
    ds = data.PatchDataset(["astronaut", "chelsea"], size=8, n=4, image_size=32, gray=True)
    assert tuple(ds.patches.shape) == (4, 1, 8, 8)


def test_patch_dataset_from_tensor():
    images = torch.rand(3, 3, 10, 10)
    ds = data.PatchDataset(images, size=4, n=6, seed=0)
    assert len(ds) == 6 and all(len(_locate(ds[i], images)) >= 1 for i in range(6))


# --------------------------------------------------------------------------- conversions


def test_to_tensor_to_numpy_round_trip_rgb_uint8():
    arr = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    t = imaging.to_tensor(arr)
    assert tuple(t.shape) == (1, 3, 5, 7) and t.dtype == torch.float32
    assert t[0, 2, 4, 6].item() == pytest.approx(arr[4, 6, 2] / 255)
    back = imaging.to_numpy(t)
    assert back.shape == (5, 7, 3)
    np.testing.assert_array_equal((back * 255).round().astype(np.uint8), arr)
    np.testing.assert_array_equal(imaging.to_numpy(t[0]), back)


def test_to_tensor_to_numpy_round_trip_gray_float():
    arr = np.random.default_rng(1).random((4, 6))
    t = imaging.to_tensor(arr)
    assert tuple(t.shape) == (1, 1, 4, 6)
    back = imaging.to_numpy(t)
    assert back.shape == (4, 6)
    np.testing.assert_allclose(back, arr, atol=1e-7)


def test_to_tensor_other_dtypes():
    assert torch.equal(imaging.to_tensor(np.array([[True, False]])), torch.tensor([[[[1.0, 0.0]]]]))
    assert imaging.to_tensor(np.array([[65535, 0]], dtype=np.uint16))[0, 0, 0, 0].item() == 1.0
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    assert tuple(imaging.to_tensor(rgba).shape) == (1, 3, 2, 2)  # alpha dropped
    assert float(imaging.to_tensor(np.full((2, 2), 3.0)).max()) == 1.0  # clamped to [0, 1]
    with pytest.raises(ValueError, match="array must have shape"):
        imaging.to_tensor(np.zeros((1, 2, 2, 3)))
    with pytest.raises(ValueError, match="single image"):
        imaging.to_numpy(torch.zeros(2, 3, 4, 4))


# --------------------------------------------------------------------------- registry: real formats


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_reads_idx_files(tmp_path, split):
    arrays = write_mnist(tmp_path)
    x, y = arrays[split]
    ds = data.load_dataset("mnist", split, root=tmp_path, download_ok=False)
    assert len(ds) == len(x)
    image, label = ds[len(x) - 1]
    assert tuple(image.shape) == (1, 28, 28) and image.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy(x[-1].astype(np.float32) / 255))
    assert [ds[i][1] for i in range(len(ds))] == y.tolist()


def _make_cifar(folder: Path) -> dict:
    """The cifar-10-batches-py folder with 5 training batches of 2 images and a test batch of 3."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    out = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = 3 if name == "test_batch" else 2
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        write_cifar_batch(folder / name, images, labels, name.encode())
        split = "test" if name == "test_batch" else "train"
        out[split][0].append(images)
        out[split][1].extend(labels)
    return {k: (np.concatenate(v[0]), v[1]) for k, v in out.items()}


def test_cifar_batches_are_python2_pickles():
    # the stand-in has the real files' property: keys are bytes unless decoded with latin1
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]})
    assert set(pickle.loads(buf.getvalue(), encoding="bytes")) == {b"data", b"labels"}
    assert set(pickle.loads(buf.getvalue(), encoding="latin1")) == {"data", "labels"}


def test_cifar10_reads_pickle_batches(tmp_path):
    arrays = _make_cifar(tmp_path / "cifar-10-batches-py")
    train = data.load_dataset("cifar10", "train", root=tmp_path, download_ok=False)
    test = data.load_dataset("cifar10", "test", root=tmp_path, download_ok=False)
    assert len(train) == 10 and len(test) == 3
    x, y = arrays["train"]
    assert [train[i][1] for i in range(10)] == y
    for i in (0, 7):
        image, _ = train[i]
        assert tuple(image.shape) == (3, 32, 32)
        assert torch.equal(image, torch.from_numpy(x[i].astype(np.float32) / 255))
    assert torch.equal(test[2][0], torch.from_numpy(arrays["test"][0][2].astype(np.float32) / 255))


def test_cifar10_row_layout_is_rrr_ggg_bbb(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    row = np.zeros((1, 3072), dtype=np.uint8)
    row[0, 1024 + 5 * 32 + 7] = 200  # green channel, row 5, column 7
    row[0, 2 * 1024 + 31] = 100  # blue channel, row 0, column 31
    write_cifar_batch(folder / "test_batch", row.reshape(1, 3, 32, 32), [4], b"testing batch 1 of 1")
    image, label = data.load_dataset("cifar10", "test", root=tmp_path, download_ok=False)[0]
    assert label == 4
    assert image[1, 5, 7].item() == pytest.approx(200 / 255)
    assert image[2, 0, 31].item() == pytest.approx(100 / 255)
    assert int((image > 0).sum()) == 2


def _make_stl(folder: Path, split: str, images: np.ndarray, labels: np.ndarray | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    x_file, y_file = datasets._STL_FILES[split]
    # the official files store every channel column-major (as Octave/Matlab wrote them)
    (folder / x_file).write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())
    if y_file:
        (folder / y_file).write_bytes(labels.astype(np.uint8).tobytes())


def test_stl10_binary_transposes_column_major_images(tmp_path):
    images = np.zeros((3, 3, 96, 96), dtype=np.uint8)
    images[0, 0, 10, 80] = 255  # row 10, column 80: asymmetric, so a missing transpose is visible
    images[1] = np.arange(96, dtype=np.uint8)[None, None, :]  # horizontal ramp
    images[2] = np.random.default_rng(0).integers(0, 256, size=(3, 96, 96), dtype=np.uint8)
    labels = np.array([1, 10, 5])
    _make_stl(tmp_path / "stl10_binary", "train", images, labels)
    ds = data.load_dataset("stl10", "train", root=tmp_path, download_ok=False)
    assert len(ds) == 3
    assert [ds[i][1] for i in range(3)] == [0, 9, 4]  # labels 1..10 -> 0..9
    first, _ = ds[0]
    assert tuple(first.shape) == (3, 96, 96)
    assert first[0, 10, 80].item() == 1.0 and first[0, 80, 10].item() == 0.0
    assert torch.equal(ds[1][0][0, 50], torch.arange(96) / 255.0)  # the ramp runs along a row
    for i in range(3):
        assert torch.equal(ds[i][0], torch.from_numpy(images[i].astype(np.float32) / 255))


def test_stl10_unlabeled_split_has_no_labels(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(2, 3, 96, 96), dtype=np.uint8)
    _make_stl(tmp_path / "stl10_binary", "unlabeled", images, None)
    ds = data.load_dataset("stl10", "unlabeled", root=tmp_path, download_ok=False)
    assert len(ds) == 2 and ds[1][1] == 0
    assert torch.equal(ds[1][0], torch.from_numpy(images[1].astype(np.float32) / 255))


def _make_celeba(root: Path) -> None:
    """Four 178x218 JPEGs (white inside a box a little larger than the centre 108x108 crop, black outside)."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    h, w, c = 218, 178, 108
    top, left = (h - c) // 2, (w - c) // 2
    for i in range(1, 5):
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        arr[top - 8: top + c + 8, left - 8: left + c + 8] = 255
        Image.fromarray(arr).save(folder / f"{i:06d}.jpg", quality=95)
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")


@pytest.mark.parametrize("split, names", [("train", ["000001.jpg", "000002.jpg"]), ("valid", ["000003.jpg"]),
                                          ("test", ["000004.jpg"])])
def test_celeba_split_filtering_and_64px_centre_crop(tmp_path, split, names):
    _make_celeba(tmp_path)
    ds = data.load_dataset("celeba", split, root=tmp_path, download_ok=False)
    assert [Path(f).name for f in ds.files] == names
    image, target = ds[0]
    assert tuple(image.shape) == (3, 64, 64) and target == 0
    assert float(image.min()) > 0.9  # only the white centre survives the 108x108 crop


def test_bapps_reads_2afc_folders(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    for subset, stems in [("traditional", ["000000", "000001"]), ("cnn", ["000000"])]:
        base = tmp_path / "2afc" / "val" / subset
        for part in ("ref", "p0", "p1", "judge"):
            (base / part).mkdir(parents=True)
        for j, stem in enumerate(stems):
            for part in ("ref", "p0", "p1"):
                arr = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
                Image.fromarray(arr).save(base / part / f"{stem}.png")
                written[(subset, stem, part)] = arr
            np.save(base / "judge" / f"{stem}.npy", np.array([0.25 * (j + 1)], dtype=np.float32))
    ds = data.load_dataset("bapps", "val", root=tmp_path, download_ok=False)
    assert len(ds) == 3
    items = [ds[i] for i in range(3)]
    assert [it["subset"] for it in items] == ["cnn", "traditional", "traditional"]  # sorted subset folders
    assert [it["judge"] for it in items] == [0.25, 0.25, 0.5]
    for it, stem in zip(items, ["000000", "000000", "000001"]):
        for part in ("ref", "p0", "p1"):
            assert tuple(it[part].shape) == (3, 64, 64)
            expected = torch.from_numpy(written[(it["subset"], stem, part)].astype(np.float32) / 255).permute(2, 0, 1)
            assert torch.equal(it[part], expected)
    only = data.BAPPS2AFC(tmp_path / "2afc" / "val", subsets=("traditional",), size=32)
    assert len(only) == 2 and tuple(only[1]["p1"].shape) == (3, 32, 32)
    single = data.BAPPS2AFC(tmp_path / "2afc" / "val" / "cnn")
    assert len(single) == 1 and single[0]["subset"] == "cnn"
    with pytest.raises(DataUnavailableError, match="no BAPPS subset"):
        data.BAPPS2AFC(tmp_path / "2afc" / "val", subsets=("color",))


# --------------------------------------------------------------------------- registry: errors and downloads


@pytest.mark.parametrize("name, split", [("mnist", "train"), ("cifar10", "test"), ("stl10", "train"),
                                         ("celeba", "valid"), ("bapps", "val")])
def test_missing_data_without_download_raises_with_instructions(tmp_path, name, split):
    root = tmp_path / name
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        data.load_dataset(name, split, root=root, download_ok=False)
    assert time.monotonic() - start < 5
    message = str(info.value)
    spec = datasets.REGISTRY[name]
    assert str(root) in message
    assert "by hand" in message
    assert any(r.url in message for r in spec.resources)
    assert spec.homepage in message


def test_missing_data_uses_data_dir_by_default(empty_data_dir):
    with pytest.raises(DataUnavailableError) as info:
        data.load_dataset("cifar10", "train", download_ok=False)
    assert str(empty_data_dir / "cifar10" / "cifar-10-batches-py" / "data_batch_1") in str(info.value)


def test_manual_dataset_is_not_downloaded(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("download must not be attempted for a manual dataset")

    monkeypatch.setattr(datasets, "download", no_download)
    with pytest.raises(DataUnavailableError, match="cannot be downloaded automatically"):
        data.load_dataset("celeba", "train", root=tmp_path, download_ok=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_failed_download_raises_quickly_naming_url(tmp_path, monkeypatch):
    url = f"http://127.0.0.1:{_closed_port()}/cifar-10-python.tar.gz"
    spec = datasets.REGISTRY["cifar10"]
    monkeypatch.setitem(datasets.REGISTRY, "cifar10", dataclasses.replace(
        spec, resources=(dataclasses.replace(spec.resources[0], url=url),)))
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        data.load_dataset("cifar10", "train", root=tmp_path, download_ok=True, timeout=5)
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert f"Tried to download: {url} (URLError" in message
    assert str(tmp_path) in message and "by hand" in message
    assert not list(tmp_path.glob("*.tar.gz"))  # no half-downloaded file was kept as complete


def test_offline_download_of_real_url_fails_within_seconds(tmp_path):
    url = datasets.REGISTRY["mnist"].resources[0].url
    host = url.split("/")[2]
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        pass
    else:
        pytest.skip(f"{host} resolves: online, so the real download is not attempted in a unit test")
    start = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        data.load_dataset("mnist", "train", root=tmp_path, download_ok=True)
    assert time.monotonic() - start < 30
    assert f"Tried to download: {url}" in str(info.value)


def _gz_file(path: Path, payload: bytes) -> str:
    path.write_bytes(gzip.compress(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_file_url_verifies_md5_and_gunzips(tmp_path):
    src = tmp_path / "src" / "blob.bin.gz"
    src.parent.mkdir()
    md5 = _gz_file(src, b"0123456789" * 100)
    folder = tmp_path / "dest"
    target = data.download(Resource(src.as_uri(), "blob.bin.gz", md5, extract=True), folder)
    assert target == folder / "blob.bin.gz" and data.md5sum(target) == md5
    assert (folder / "blob.bin").read_bytes() == b"0123456789" * 100
    assert not list(folder.glob("*.part"))


def test_download_extracts_tar_gz(tmp_path):
    src = tmp_path / "archive.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        for name, payload in [("pkg/a.txt", b"alpha"), ("pkg/sub/b.txt", b"beta")]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    folder = tmp_path / "dest"
    data.download(Resource(src.as_uri(), "archive.tar.gz", md5, extract=True), folder)
    assert (folder / "pkg" / "a.txt").read_bytes() == b"alpha"
    assert (folder / "pkg" / "sub" / "b.txt").read_bytes() == b"beta"


def test_download_wrong_md5_raises_and_removes_file(tmp_path):
    src = tmp_path / "blob.gz"
    md5 = _gz_file(src, b"payload")
    folder = tmp_path / "dest"
    wrong = "0" * 32
    with pytest.raises(DataUnavailableError, match=f"expected md5 {wrong}, got {md5}"):
        data.download(Resource(src.as_uri(), "blob.gz", wrong, extract=True), folder)
    assert list(folder.iterdir()) == []


def test_download_uses_existing_file_without_fetching(tmp_path):
    folder = tmp_path / "dest"
    folder.mkdir()
    md5 = _gz_file(folder / "blob.gz", b"cached")
    missing_url = (tmp_path / "does-not-exist.gz").as_uri()
    data.download(Resource(missing_url, "blob.gz", md5, extract=True), folder)
    assert (folder / "blob").read_bytes() == b"cached"


def test_download_into_subfolder_of_resource_filename(tmp_path):
    src = tmp_path / "t10k-labels-idx1-ubyte.gz"
    md5 = _gz_file(src, struct.pack(">ii", 2049, 1) + b"\x07")
    folder = tmp_path / "mnist"
    data.download(Resource(src.as_uri(), "raw/t10k-labels-idx1-ubyte.gz", md5, extract=True), folder)
    assert (folder / "raw" / "t10k-labels-idx1-ubyte").exists()


def test_load_dataset_downloads_and_reads_cifar_from_file_url(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    arrays = _make_cifar(staging / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    spec = datasets.REGISTRY["cifar10"]
    resource = dataclasses.replace(spec.resources[0], url=archive.as_uri(), md5=data.md5sum(archive))
    monkeypatch.setitem(datasets.REGISTRY, "cifar10", dataclasses.replace(spec, resources=(resource,)))
    root = tmp_path / "root"
    ds = data.load_dataset("cifar10", "test", root=root, download_ok=True)
    assert (root / "cifar-10-python.tar.gz").exists()
    assert len(ds) == 3
    assert torch.equal(ds[0][0], torch.from_numpy(arrays["test"][0][0].astype(np.float32) / 255))


def test_load_dataset_downloads_and_reads_mnist_from_file_urls(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    arrays = write_mnist(staging)
    spec = datasets.REGISTRY["mnist"]
    resources = []
    for res in spec.resources:
        name = res.filename.split("/")[-1]  # e.g. train-images-idx3-ubyte.gz
        md5 = _gz_file(staging / name, (staging / "raw" / name[:-3]).read_bytes())
        resources.append(dataclasses.replace(res, url=(staging / name).as_uri(), md5=md5))
    monkeypatch.setitem(datasets.REGISTRY, "mnist", dataclasses.replace(spec, resources=tuple(resources)))
    ds = data.load_dataset("mnist", "test", root=tmp_path / "root", download_ok=True)
    assert [ds[i][1] for i in range(len(ds))] == arrays["test"][1].tolist()


def test_load_dataset_unknown_name_or_split_raises():
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_dataset("imagenet", "train", download_ok=False)
    with pytest.raises(ValueError, match="split must be one of .* for cifar10, got 'valid'"):
        data.load_dataset("cifar10", "valid", download_ok=False)


def test_extract_archive_unknown_format_raises(tmp_path):
    path = tmp_path / "file.rar"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="don't know how to extract"):
        data.extract_archive(path, tmp_path)


def test_data_unavailable_error_is_a_file_not_found_error():
    assert issubclass(DataUnavailableError, FileNotFoundError)


def test_a_hand_placed_file_that_does_not_match_is_kept_and_a_fresh_copy_used(tmp_path):
    src = tmp_path / "blob.gz"
    md5 = _gz_file(src, b"the real payload")
    folder = tmp_path / "dest"
    folder.mkdir()
    (folder / "blob.gz").write_bytes(b"the user's own, different file")
    target = data.download(Resource(src.as_uri(), "blob.gz", md5, extract=True), folder)
    assert (folder / "blob.gz").read_bytes() == b"the user's own, different file"  # kept, untouched
    assert target == folder / ".download" / "blob.gz" and data.md5sum(target) == md5
    assert (folder / "blob").read_bytes() == b"the real payload"  # extracted from the fresh copy


def test_a_hand_placed_file_that_does_not_match_is_kept_when_no_fresh_copy_can_be_fetched(tmp_path):
    folder = tmp_path / "dest"
    folder.mkdir()
    (folder / "blob.gz").write_bytes(b"not it")
    found = data.md5sum(folder / "blob.gz")
    missing_url = (tmp_path / "does-not-exist.gz").as_uri()
    with pytest.raises(DataUnavailableError, match=f"expected md5 {'1' * 32}, found {found}.*kept"):
        data.download(Resource(missing_url, "blob.gz", "1" * 32, extract=True), folder)
    assert (folder / "blob.gz").read_bytes() == b"not it"


def test_load_dataset_never_deletes_a_mismatching_stl10_tarball(tmp_path, monkeypatch):
    """The reported case: a hand-placed stl10_binary.tar.gz whose checksum does not match."""
    spec = datasets.REGISTRY["stl10"]
    unreachable = dataclasses.replace(spec.resources[0], url=(tmp_path / "offline.tar.gz").as_uri())
    monkeypatch.setitem(datasets.REGISTRY, "stl10", dataclasses.replace(spec, resources=(unreachable,)))
    root = tmp_path / "stl10"
    root.mkdir()
    tarball = root / "stl10_binary.tar.gz"
    tarball.write_bytes(b"a partial copy")
    with pytest.raises(DataUnavailableError, match=f"expected md5 {spec.resources[0].md5}, found .*it was kept"):
        data.load_dataset("stl10", "train", root=root)
    assert tarball.read_bytes() == b"a partial copy"


import numpy as np
import pytest
import torch

from perceptlab import imaging
from perceptlab import models
from perceptlab.experiments import superres

TINY = dict(image_size=96, patch=16, n_train=128, n_test=8, width=8, depth=3, steps=12, batch=4, ckpt_every=4,
            eval_every=5)


def test_downsample_is_block_average_and_checks_size():
    x = torch.rand(2, 3, 8, 12)
    lr = imaging.downsample(x, 4)
    assert lr.shape == (2, 3, 2, 3)
    assert torch.allclose(lr[0, 1, 1, 2], x[0, 1, 4:8, 8:12].mean())
    with pytest.raises(ValueError, match="multiples of scale"):
        imaging.downsample(torch.rand(1, 3, 10, 12), 4)


def test_bicubic_upsampling_keeps_constants():
    lr = torch.full((1, 3, 4, 4), 0.3)
    assert torch.allclose(imaging.upsample_bicubic(lr, 4), torch.full((1, 3, 16, 16), 0.3), atol=1e-6)


def test_srnet_output_shape():
    net = models.SRNet(channels=3, width=8, depth=3, scale=4)
    assert net(torch.rand(2, 3, 5, 6)).shape == (2, 3, 20, 24)


def test_quick_preset_trains_and_reports_metrics():
    result = superres.run_superres(superres.SRConfig.for_preset("quick", **TINY))
    m = result["metrics"]
    assert set(m) >= {"psnr_bicubic", "psnr_network", "sharpness_bicubic", "sharpness_network"}
    assert all(np.isfinite(v) for v in m.values())
    assert result["images"]["output"].shape == (8, 3, 16, 16)
    assert len(result["history"].records) == TINY["steps"]


def test_history_records_held_out_psnr_and_sharpness_every_eval_every_and_at_the_end():
    result = superres.run_superres(superres.SRConfig.for_preset("quick", **TINY))
    history, m = result["history"], result["metrics"]
    for key in ("test_psnr", "test_sharpness"):
        steps, values = history.series(key)
        assert steps == [5, 10, 12]
        assert all(np.isfinite(values))
    # the last evaluation is the final network on the same held-out patches: the reported metrics
    assert history.last("test_psnr") == pytest.approx(m["psnr_network"], abs=1e-9)
    assert history.last("test_sharpness") == pytest.approx(m["sharpness_network"], abs=1e-9)
    # held-out PSNR is one MSE over the whole set, in dB: recompute it from the images
    out, hr = result["images"]["output"].double(), result["images"]["hr"].double()
    assert m["psnr_network"] == pytest.approx(float(-10 * torch.log10(((out - hr) ** 2).mean())), abs=1e-4)


@pytest.mark.parametrize("loss", ["l1", "vgg-random"])
def test_the_same_network_trains_with_l1_and_with_a_feature_loss(loss):
    result = superres.run_superres(superres.SRConfig.for_preset("quick", **(TINY | dict(loss=loss, steps=3))))
    assert len(result["history"].records) == 3 and np.isfinite(result["metrics"]["psnr_network"])


def test_a_loss_function_can_be_passed_instead_of_a_name():
    calls = []

    def loss(x, y):
        calls.append(x.shape)
        return ((x - y) ** 2).mean()

    superres.run_superres(superres.SRConfig.for_preset("quick", **(TINY | dict(loss=loss, steps=2))))
    assert calls == [(4, 3, 16, 16)] * 2


def test_resume_after_interruption_is_exact(tmp_path):
    config = superres.SRConfig.for_preset("quick", **TINY)
    whole = superres.run_superres(config)
    superres.run_superres(config, out_dir=tmp_path, stop_after=6)  # "the session dies" after step 6
    resumed = superres.run_superres(config, out_dir=tmp_path)
    for a, b in zip(whole["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert whole["history"].records == resumed["history"].records
    assert whole["metrics"] == resumed["metrics"]


def test_full_preset_code_path_runs_on_an_stl10_stand_in(tmp_path, stl10_stand_in):
    stl10_stand_in()
    config = superres.SRConfig.for_preset("full", n_train=6, n_test=4, width=4, depth=3, steps=2, batch=2)
    assert config.data == "stl10" and config.patch == 96
    result = superres.run_superres(config, out_dir=tmp_path / "run")
    assert result["images"]["hr"].shape == (4, 3, 96, 96)
    assert (tmp_path / "run" / "checkpoint.pt").exists()


def test_full_preset_without_data_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    from perceptlab.data.datasets import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="by hand"):
        superres.make_patches(superres.SRConfig.for_preset("full", n_train=2))


def test_unknown_data_source_raises():
    with pytest.raises(ValueError, match="config.data"):
        superres.make_patches(superres.SRConfig(data="imagenet"))


def test_div2k_patches_come_from_every_image_in_order_and_from_valid_for_the_test(tmp_path, monkeypatch):
    from conftest import write_div2k
    from perceptlab.data import load_dataset

    write_div2k(tmp_path, n_train=3, n_valid=2)
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    train_set = load_dataset("div2k", "train", download_ok=False)
    assert len(train_set) == 3 and train_set[2][0].shape == (3, 56, 64)  # PNGs of different sizes
    config = superres.SRConfig(data="div2k", patch=32, n_train=5, n_test=3)
    train, test = superres.make_patches(config)
    assert train.shape == (5, 3, 32, 32) and test.shape == (3, 3, 32, 32)
    assert 0 <= float(train.min()) and float(train.max()) <= 1
    # two crops from each training image, in order: each crop is a window of its image
    g = torch.Generator().manual_seed(config.seed)
    again = superres.crops_per_image(train_set, 32, 5, g)
    assert torch.equal(again, train)
    first = train_set[0][0]
    windows = first.unfold(1, 32, 1).unfold(2, 32, 1)  # (3, H-31, W-31, 32, 32)
    assert any(torch.equal(windows[:, i, j], train[0]) for i in range(windows.shape[1]) for j in range(windows.shape[2]))


def test_div2k_missing_fails_fast_naming_the_zip_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTLAB_DATA", str(tmp_path))
    from perceptlab.data.datasets import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="DIV2K_train_HR"):
        superres.make_patches(superres.SRConfig(data="div2k"))

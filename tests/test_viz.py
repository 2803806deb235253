"""Tests of the plotting helpers in perceptlab.viz."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from perceptlab import viz


def _features():
    g = torch.Generator().manual_seed(0)
    return {"relu1": 5 * torch.randn(2, 16, 8, 8, generator=g) - 3,
            "relu2": torch.randn(2, 4, 4, 4, generator=g)}


def test_show_feature_maps_one_row_per_layer_labelled_with_shape():
    fig = viz.show_feature_maps(_features(), n_channels=6, title="untrained")
    axes = fig.axes
    assert len(axes) == 2 * 6
    labels = [ax.get_ylabel() for ax in axes if ax.get_ylabel()]
    assert labels == ["relu1\n16×8×8", "relu2\n4×4×4"]
    assert fig._suptitle.get_text() == "untrained"
    # the second layer has only 4 channels: its last 2 cells stay empty
    assert [len(ax.images) for ax in axes[6:]] == [1, 1, 1, 1, 0, 0]
    plt.close(fig)


def test_show_feature_maps_scales_each_channel_to_unit_range():
    feats = _features()
    feats["relu2"][0, 1] = 7.0  # a constant channel
    fig = viz.show_feature_maps(feats, n_channels=2)
    first = fig.axes[0].images[0].get_array()
    assert float(first.min()) == 0.0 and float(first.max()) == pytest.approx(1.0)
    expected = feats["relu1"][0, 0]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    assert torch.allclose(torch.as_tensor(first.data), expected, atol=1e-6)
    assert float(abs(fig.axes[3].images[0].get_array()).max()) == 0.0
    plt.close(fig)


def test_show_feature_maps_columns_capped_by_channels():
    fig = viz.show_feature_maps({"conv1": torch.rand(1, 3, 5, 5)}, n_channels=8)
    assert len(fig.axes) == 3
    plt.close(fig)


@pytest.mark.parametrize("features, kwargs, match", [
    ({}, {}, "non-empty"),
    ({"a": torch.rand(1, 2, 4)}, {}, "shape"),
    ({"a": torch.rand(1, 2, 4, 4)}, {"n_channels": 0}, "n_channels"),
    ({"a": torch.rand(1, 2, 4, 4)}, {"index": 1}, "index"),
])
def test_show_feature_maps_rejects_bad_input(features, kwargs, match):
    with pytest.raises(ValueError, match=match):
        viz.show_feature_maps(features, **kwargs)

"""SROCC and the BAPPS JND score against scipy and the lpips package's own functions."""
import lpips
import numpy as np
import pytest
import torch
from scipy import stats

from perceptlab.metrics import average_precision, bootstrap_srocc, grouped_srocc, jnd_map, srocc


def test_srocc_is_scipys():
    rng = np.random.default_rng(0)
    d, s = rng.random(40), rng.integers(1, 6, 40).astype(float)
    assert srocc(d, s) == pytest.approx(stats.spearmanr(d, s).statistic)
    assert srocc([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert srocc([4, 3, 2, 1], [10, 20, 30, 40]) == pytest.approx(-1.0)
    assert np.isnan(srocc([1, 1, 1], [1, 2, 3]))


def test_grouped_srocc_and_its_bootstrap():
    d = [1, 2, 3, 1, 3, 2]
    s = [1, 2, 3, 1, 2, 3]
    g = ["a", "a", "a", "b", "b", "b"]
    out = grouped_srocc(d, s, g)
    assert out["a"] == pytest.approx(1.0) and out["b"] == pytest.approx(0.5) and out["mean"] == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    score = np.tile(np.arange(1, 6), 10).astype(float)
    dist = score + rng.normal(0, 1, 50)
    clusters = np.repeat(np.arange(10), 5)
    lo, hi = bootstrap_srocc(dist, score, clusters, n_boot=200)
    value = srocc(dist, score)
    assert lo <= value <= hi and hi - lo < 0.5


def test_average_precision_is_lpips_voc_ap():
    rng = np.random.default_rng(2)
    for _ in range(5):
        rec = np.sort(rng.random(20))
        prec = rng.random(20)
        assert average_precision(rec, prec) == pytest.approx(lpips.voc_ap(rec, prec))


def test_jnd_map_is_lpips_score_jnd():
    rng = np.random.default_rng(3)
    d = rng.random(60)
    same = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], 60)
    order = np.argsort(d)
    tp = np.cumsum(same[order])
    fp = np.cumsum(1 - same[order])
    fn = same.sum() - tp
    expected = lpips.voc_ap(tp / (tp + fn), tp / (tp + fp))  # the lpips code's score_jnd_dataset
    assert jnd_map(torch.tensor(d), torch.tensor(same)) == pytest.approx(expected)
    assert jnd_map([1, 2, 3, 4], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_quality_inputs_are_checked():
    with pytest.raises(ValueError, match="same length"):
        srocc([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="same must be fractions"):
        jnd_map([1, 2], [0, 2])
    with pytest.raises(ValueError, match="distances"):
        srocc([1.0, float("nan")], [1, 2])

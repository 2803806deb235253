"""Tests of perceptlab.matching against scikit-image and brute-force loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import maximum_filter
from skimage.feature import match_template as sk_match_template

from perceptlab import matching
from perceptlab.data.images import load_image
from perceptlab.matching import correlate
from perceptlab.matching import detections
from perceptlab.matching import find_peaks
from perceptlab.matching import match_template
from perceptlab.matching import window_sum


def _rand(*shape, seed=0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _brute_force(image: np.ndarray, template: np.ndarray, method: str) -> np.ndarray:
    """The definitions of the module docstring, one window at a time (inputs (C, H, W))."""
    _, H, W = image.shape
    _, h, w = template.shape
    out = np.zeros((H - h + 1, W - w + 1))
    g0 = template - template.mean()
    for m in range(H - h + 1):
        for n in range(W - w + 1):
            f = image[:, m: m + h, n: n + w]
            if method == "corr":
                out[m, n] = (template * f).sum()
            elif method == "zero_mean":
                out[m, n] = (g0 * f).sum()
            elif method == "ssd":
                out[m, n] = ((template - f) ** 2).sum()
            else:
                f0 = f - f.mean()
                den = np.sqrt((g0 ** 2).sum() * (f0 ** 2).sum())
                out[m, n] = (g0 * f0).sum() / den if den > 0 else 0.0
    return out


# --------------------------------------------------------------------------- NCC vs scikit-image


@pytest.fixture(scope="module")
def astronaut_gray() -> torch.Tensor:
    return load_image("astronaut", gray=True)[0, 0]


def test_ncc_matches_skimage_on_astronaut(astronaut_gray):
    image = astronaut_gray.double()
    template = image[100:140, 200:260]  # 40 x 60: the FFT path
    ours = match_template(image, template, "ncc")
    expected = sk_match_template(image.numpy(), template.numpy(), pad_input=False)
    assert ours.dtype == torch.float64 and tuple(ours.shape) == expected.shape == (473, 453)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4, rtol=0)
    assert ours[100, 200].item() == pytest.approx(1.0, abs=1e-6)
    assert find_peaks(ours, k=1)[0][:2] == (100, 200)


def test_ncc_float32_input_computed_in_float64_matches_skimage(astronaut_gray):
    image = astronaut_gray  # float32
    template = image[300:340, 50:110]
    ours = match_template(image, template, "ncc")
    assert ours.dtype == torch.float32
    expected = sk_match_template(image.double().numpy(), template.double().numpy(), pad_input=False)
    np.testing.assert_allclose(ours.double().numpy(), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("tshape", [(7, 9), (20, 20)], ids=["direct", "fft"])
def test_ncc_matches_skimage_on_random_inputs(tshape):
    image = _rand(50, 70, seed=1)
    template = _rand(*tshape, seed=2)
    ours = match_template(image, template, "ncc")
    expected = sk_match_template(image.numpy(), template.numpy(), pad_input=False)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4, rtol=0)
    assert float(ours.abs().max()) <= 1 + 1e-9


def test_ncc_three_channels_matches_skimage_3d():
    image = _rand(3, 30, 40, seed=3)
    template = _rand(3, 6, 8, seed=4)
    ours = match_template(image, template, "ncc")
    expected = sk_match_template(image.permute(1, 2, 0).numpy(), template.permute(1, 2, 0).numpy(), pad_input=False)
    np.testing.assert_allclose(ours.numpy(), expected[..., 0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours.numpy(), _brute_force(image.numpy(), template.numpy(), "ncc"), atol=1e-9)


def test_ncc_constant_image_scores_zero_like_skimage():
    image = torch.full((20, 25), 0.5, dtype=torch.float64)
    template = _rand(5, 6, seed=5)
    ours = match_template(image, template, "ncc")
    expected = sk_match_template(image.numpy(), template.numpy(), pad_input=False)
    assert torch.equal(ours, torch.zeros_like(ours))
    assert np.array_equal(expected, np.zeros_like(expected))


def test_ncc_constant_region_scores_near_zero_like_skimage():
    image = _rand(40, 40, seed=6)
    image[5:25, 5:25] = 0.3
    template = _rand(6, 6, seed=7)
    ours = match_template(image, template, "ncc")
    expected = sk_match_template(image.numpy(), template.numpy(), pad_input=False)
    assert float(ours[5:20, 5:20].abs().max()) < 1e-6  # windows inside the flat square
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4, rtol=0)


def test_ncc_constant_template_scores_zero():
    image = _rand(15, 15, seed=8)
    ours = match_template(image, torch.full((4, 4), 0.7, dtype=torch.float64), "ncc")
    assert torch.equal(ours, torch.zeros(12, 12, dtype=torch.float64))


# --------------------------------------------------------------------------- other measures vs brute force


@pytest.mark.parametrize("method", ["corr", "zero_mean", "ssd", "ncc"])
@pytest.mark.parametrize("channels", [None, 3], ids=["gray", "rgb"])
def test_measures_equal_brute_force_loops(method, channels):
    shape_i, shape_t = ((12, 15), (4, 5)) if channels is None else ((channels, 12, 15), (channels, 4, 5))
    image, template = _rand(*shape_i, seed=10), _rand(*shape_t, seed=11)
    ours = match_template(image, template, method)
    expected = _brute_force(image.numpy().reshape(-1, 12, 15), template.numpy().reshape(-1, 4, 5), method)
    assert tuple(ours.shape) == (9, 11)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("method", ["corr", "zero_mean", "ssd", "ncc"])
def test_float32_output_close_to_float64(method):
    image, template = _rand(3, 30, 33, seed=12), _rand(3, 16, 16, seed=13)  # FFT path
    ours32 = match_template(image.float(), template.float(), method)
    ours64 = match_template(image, template, method)
    assert ours32.dtype == torch.float32
    np.testing.assert_allclose(ours32.double().numpy(), ours64.numpy(), atol=1e-4, rtol=1e-5)


def test_fft_and_direct_correlation_agree():
    image = torch.randn(3, 40, 37, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for shape in [(3, 1, 1), (3, 5, 4), (3, 16, 18), (3, 40, 37)]:
        template = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        direct = correlate(image, template, use_fft=False)
        fft = correlate(image, template, use_fft=True)
        assert direct.shape == fft.shape == (41 - shape[1], 38 - shape[2])
        torch.testing.assert_close(fft, direct, atol=1e-10, rtol=1e-10)
        assert torch.equal(correlate(image, template), fft if shape[1] * shape[2] >= matching._FFT_MIN_TEMPLATE else direct)


def test_window_sum_equals_convolution_with_ones():
    image = _rand(2, 13, 17, seed=14)
    for h, w in [(1, 1), (3, 4), (13, 17), (5, 1)]:
        expected = F.conv2d(image.sum(0)[None, None], torch.ones(1, 1, h, w, dtype=torch.float64))[0, 0]
        torch.testing.assert_close(window_sum(image, h, w), expected, atol=1e-12, rtol=1e-12)


def test_ssd_nonnegative_and_zero_at_template_location():
    image = _rand(3, 40, 50, seed=15)
    template = image[:, 12:22, 30:41].clone()
    ssd = match_template(image, template, "ssd")
    assert float(ssd.min()) >= 0
    assert ssd[12, 30].item() < 1e-9
    assert divmod(int(ssd.argmin()), ssd.shape[1]) == (12, 30)
    assert find_peaks(ssd, k=1, lower_is_better=True)[0][:2] == (12, 30)


def test_ncc_is_invariant_to_affine_intensity_change_ssd_is_not():
    image = _rand(30, 36, seed=16)
    template = image[5:13, 20:29].clone()
    a, b = 0.6, 0.3
    changed = a * image + b
    ncc, ncc_changed = match_template(image, template, "ncc"), match_template(changed, template, "ncc")
    torch.testing.assert_close(ncc_changed, ncc, atol=1e-5, rtol=0)
    ssd, ssd_changed = match_template(image, template, "ssd"), match_template(changed, template, "ssd")
    assert float((ssd_changed - ssd).abs().max()) > 0.1
    assert ssd_changed[5, 20].item() > 0.1  # no longer a perfect SSD match


# --------------------------------------------------------------------------- peaks and detections


def _reference_peaks(score: np.ndarray, k: int, d: int, threshold=None):
    """Points that are the maximum of their (2d+1)^2 window (outside counts as -inf), best first."""
    pooled = maximum_filter(score, size=2 * d + 1, mode="constant", cval=-np.inf)
    mask = score >= pooled
    if threshold is not None:
        mask &= score >= threshold
    rows, cols = np.nonzero(mask)
    order = np.argsort(-score[rows, cols], kind="stable")[:k]
    return [(int(rows[i]), int(cols[i])) for i in order]


def test_find_peaks_planted_template_is_top1():
    image = _rand(60, 80, seed=17)
    template = _rand(9, 11, seed=18)
    image[33:42, 47:58] = template
    score = match_template(image, template, "ncc")
    (row, col, value), *rest = find_peaks(score, k=3)
    assert (row, col) == (33, 47) and value == pytest.approx(1.0, abs=1e-9)
    assert len(rest) == 2 and all(v < value for *_, v in rest)


def test_find_peaks_nms_keeps_peaks_apart_and_matches_reference():
    score = _rand(40, 50, seed=19)
    for d in (1, 3, 6):
        peaks = find_peaks(score, k=15, min_distance=d)
        assert [(r, c) for r, c, _ in peaks] == _reference_peaks(score.numpy(), 15, d)
        values = [v for *_, v in peaks]
        assert values == sorted(values, reverse=True)
        for i, (r1, c1, _) in enumerate(peaks):
            for r2, c2, _ in peaks[i + 1:]:
                assert max(abs(r1 - r2), abs(c1 - c2)) > d


def test_find_peaks_threshold_and_lower_is_better():
    score = torch.zeros(20, 20)
    score[3, 4], score[15, 15], score[10, 2] = 0.9, 0.6, 0.3
    assert [p[:2] for p in find_peaks(score, k=5, threshold=0.5)] == [(3, 4), (15, 15)]
    inverted = 1 - score
    best = find_peaks(inverted, k=2, lower_is_better=True, threshold=0.5)
    assert [p[:2] for p in best] == [(3, 4), (15, 15)]
    assert best[0][2] == pytest.approx(0.1)  # the original (not negated) score is reported


def test_detections_finds_every_planted_copy():
    image = _rand(70, 90, seed=20)
    template = _rand(8, 10, seed=21)
    places = [(5, 7), (40, 60), (55, 12)]
    for r, c in places:
        image[r: r + 8, c: c + 10] = template
    ncc = match_template(image, template, "ncc")
    assert sorted(p[:2] for p in detections(ncc, threshold=0.99)) == sorted(places)
    ssd = match_template(image, template, "ssd")
    assert sorted(p[:2] for p in detections(ssd, threshold=1e-6, lower_is_better=True)) == sorted(places)
    assert detections(ncc, threshold=1.5) == []


def test_find_peaks_plateau_gives_one_peak_per_neighbourhood():
    # binary images give integer SSD scores, so exact ties are common: a 10-pixel bar in the image and
    # an 8-pixel bar in the template match equally well at three vertical offsets
    image = torch.zeros(60, 60)
    image[20:30, 20:24] = 1
    template = torch.zeros(12, 8)
    template[2:10, 2:6] = 1
    ssd = match_template(image, template, "ssd")
    found = detections(ssd, threshold=10, min_distance=5, lower_is_better=True)
    assert len(found) == 1, found  # the library returns [(18, 18, 8.0), (19, 18, 8.0), (20, 18, 8.0)]


def test_local_maxima_and_normalize_map():
    score = torch.tensor([[0.0, 1.0, 0.0], [0.5, 0.2, 0.4], [0.0, 0.0, 0.9]])
    mask = matching.local_maxima(score, 1)
    assert mask.tolist() == [[False, True, False], [False, False, False], [False, False, True]]
    norm = matching.normalize_map(score * 3 + 1)
    assert float(norm.min()) == 0.0 and float(norm.max()) == 1.0
    torch.testing.assert_close(norm, score / 1.0)
    assert torch.equal(matching.normalize_map(torch.full((2, 2), 5.0)), torch.zeros(2, 2))


# --------------------------------------------------------------------------- errors


def test_bad_method_raises():
    with pytest.raises(ValueError, match="^method must be one of .* got 'sad'"):
        match_template(torch.rand(10, 10), torch.rand(3, 3), "sad")


def test_template_larger_than_image_raises():
    with pytest.raises(ValueError, match=r"^template must be no larger than the image \(10, 10\), got \(11, 3\)"):
        match_template(torch.rand(10, 10), torch.rand(11, 3))


def test_channel_mismatch_raises():
    with pytest.raises(ValueError, match="^template must have the image's 3 channel"):
        match_template(torch.rand(3, 10, 10), torch.rand(3, 3))


@pytest.mark.parametrize("which", ["image", "template"])
def test_four_dimensional_input_raises_naming_argument(which):
    image, template = torch.rand(10, 10), torch.rand(3, 3)
    args = {"image": image, "template": template}
    args[which] = args[which][None, None]
    with pytest.raises(ValueError, match=rf"^{which} must have shape \(H, W\) or \(C, H, W\)"):
        match_template(**args)


def test_out_of_range_input_raises_naming_argument():
    with pytest.raises(ValueError, match=r"^image must have values in \[0.0, 1.0\]"):
        match_template(torch.rand(10, 10) + 1, torch.rand(3, 3))
    with pytest.raises(ValueError, match="^template must be a floating-point"):
        match_template(torch.rand(10, 10), torch.ones(3, 3, dtype=torch.uint8))


def test_local_maxima_rejects_non_2d_score():
    with pytest.raises(ValueError, match="^score must be a 2-D map"):
        matching.local_maxima(torch.rand(1, 5, 5))

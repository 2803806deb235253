"""Gratings, CSFs, mu1 / mu2 / PE and subsets on closed forms, and the batched probe of a layer."""
import math

import numpy as np
import pytest
import torch

from perceptlab import probing as pr
from perceptlab.models import backbone


# ---------------------------------------------------------------- stimuli
@pytest.mark.parametrize("cpd, ppd, size", [(2.0, 32.0, 64), (4.0, 32.0, 64), (8.0, 32.0, 64), (5.0, 40.0, 80)])
@pytest.mark.parametrize("theta", [0.0, math.pi / 2])
def test_the_measured_frequency_of_an_oriented_grating_is_the_requested_one(cpd, ppd, size, theta):
    g = pr.oriented_grating(size, cpd, ppd, theta)
    assert g.shape == (3, size, size)
    assert pr.dominant_frequency(g, ppd) == pytest.approx(cpd, abs=1e-9)


@pytest.mark.parametrize("cpd", [2.0, 4.0, 8.0, 12.0])
def test_a_concentric_grating_peaks_at_its_frequency(cpd):
    ppd, size = 32.0, 128
    freqs, amp = pr.radial_amplitude(pr.concentric_grating(size, cpd, ppd), ppd, n_bins=64)
    bin_width = ppd / 2 / 64
    assert abs(freqs[amp.argmax()].item() - cpd) <= bin_width


def test_grating_values_contrast_phase_and_orientation():
    g = pr.oriented_grating(64, 4.0, 32.0, 0.0)
    assert 0 <= g.min() and g.max() <= 1 and g.mean().item() == pytest.approx(0.5, abs=1e-3)
    assert torch.allclose(g[:, 0], g[:, 17])  # theta = 0: vertical stripes, constant down each column
    assert torch.allclose(pr.oriented_grating(64, 4.0, 32.0, math.pi / 2)[:, :, 0],
                          pr.oriented_grating(64, 4.0, 32.0, math.pi / 2)[:, :, 33])  # horizontal stripes
    half = pr.oriented_grating(64, 4.0, 32.0, 0.3, contrast=0.5)
    assert (half - 0.5).abs().max().item() == pytest.approx(0.25, abs=2e-3)  # amplitude = contrast x mean
    flipped = pr.oriented_grating(64, 4.0, 32.0, 0.3, phase=math.pi)
    assert torch.allclose(flipped - 0.5, -(pr.oriented_grating(64, 4.0, 32.0, 0.3) - 0.5), atol=1e-6)
    assert pr.concentric_grating(33, 2.0, 16.0, channels=1).shape == (1, 33, 33)


@pytest.mark.parametrize("modulation", ["red-green", "blue-yellow"])
def test_chromatic_gratings_keep_the_luminance_constant(modulation):
    g = pr.oriented_grating(64, 4.0, 32.0, 0.0, contrast=0.8, modulation=modulation).double()
    luminance = torch.einsum("c,chw->hw", torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64), g)
    assert luminance.std() < 1e-6 and g.std(dim=(1, 2)).max() > 0.05


@pytest.mark.parametrize("kwargs, name", [(dict(cpd=17.0), "cpd"), (dict(contrast=0.0), "contrast"),
                                          (dict(contrast=-0.5), "contrast"), (dict(size=0), "size"),
                                          (dict(ppd=-1.0), "ppd"), (dict(cpd=0.0), "cpd")])
def test_bad_grating_arguments_raise_naming_the_argument(kwargs, name):
    args = dict(size=64, cpd=4.0, ppd=32.0, contrast=1.0) | kwargs
    with pytest.raises(ValueError, match=name):
        pr.concentric_grating(**args)
    with pytest.raises(ValueError, match=name):
        pr.oriented_grating(theta=0.0, **args)


def test_the_nyquist_message_says_the_limit():
    with pytest.raises(ValueError, match=r"ppd / 2 = 16"):
        pr.concentric_grating(64, 20.0, 32.0)


# ---------------------------------------------------------------- CSF
def test_mannos_sakrison_closed_form_and_peak():
    f = torch.tensor([1.0, 8.0, 30.0], dtype=torch.float64)
    expected = 2.6 * (0.0192 + 0.114 * f) * torch.exp(-(0.114 * f) ** 1.1)
    assert torch.allclose(pr.csf(f), expected)
    assert 7.5 < pr.csf_peak() < 8.5 and pr.csf(pr.csf_peak()).item() == pytest.approx(1.0, abs=0.02)


def test_barten_is_positive_and_band_pass():
    f = torch.logspace(-1, 1.7, 50, dtype=torch.float64)
    s = pr.csf(f, "barten")
    assert (s > 0).all() and s[0] < s.max() and s[-1] < s.max() and 2 < pr.csf_peak("barten") < 6
    assert pr.csf(4.0, "barten", luminance=10.0) < pr.csf(4.0, "barten", luminance=100.0)  # dimmer, less sensitive


def test_csf_rejects_bad_input():
    with pytest.raises(ValueError, match="model"):
        pr.csf(1.0, "watson")
    with pytest.raises(ValueError, match="f must be non-negative"):
        pr.csf([-1.0, 2.0])


# ---------------------------------------------------------------- mu1, mu2, PE, subsets
def test_mu1_of_linear_and_quadratic_tuning_curves():
    f = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0, 16.0], dtype=torch.float64)  # unevenly spaced
    w = pr.csf(f)
    k = torch.tensor([[2.0], [-3.0], [0.0]], dtype=torch.float64)
    responses = k * f + 1.0  # slopes 2, -3, 0
    assert torch.allclose(pr.mu1(responses, f, w), k.abs().flatten() * w.sum())
    quad = (f ** 2)[None]  # |d/df| = 2 f, exact for second-order differences inside, one-sided at the ends
    slope = torch.gradient(quad, spacing=(f,), dim=1)[0]
    assert torch.allclose(slope[0, 1:-1], 2 * f[1:-1])
    assert torch.allclose(pr.mu1(quad, f, w), (w * slope.abs()).sum(1))


def test_mu2_closed_forms():
    responses = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 4.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(pr.mu2(responses), torch.tensor([0.0, 48.0, 14.0], dtype=torch.float64))


def test_perceptual_efficacy_is_eq_5():
    m1, m2 = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 0.0, 2.0])
    assert torch.allclose(pr.perceptual_efficacy(m1, m2), torch.tensor([4.0, 0.0, 6.0], dtype=torch.float64) / 36)
    with pytest.raises(ValueError, match="mu1 and mu2"):
        pr.perceptual_efficacy([1.0, 2.0], [1.0])


def test_channel_subsets_by_percentile():
    pe = torch.arange(1, 101, dtype=torch.float64)  # channel i has PE i + 1
    assert pr.channel_subset(pe, "H", 10).tolist() == list(range(90, 100))
    assert pr.channel_subset(pe, "L", 10).tolist() == list(range(0, 10))
    assert pr.channel_subset(pe, "H", 100).tolist() == list(range(100))
    shuffled = pe[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    top = pr.channel_subset(shuffled, "H", 5)
    assert sorted(shuffled[top].tolist()) == [96.0, 97.0, 98.0, 99.0, 100.0]
    assert np.array_equal(pr.channel_subset(shuffled, "L", 50).numpy(),
                          np.flatnonzero(shuffled.numpy() <= np.percentile(shuffled.numpy(), 50)))
    for bad in (0, -5, 101):
        with pytest.raises(ValueError, match="percent"):
            pr.channel_subset(pe, "H", bad)
    with pytest.raises(ValueError, match="which"):
        pr.channel_subset(pe, "M", 10)
    w = pr.channel_weights(pe)
    assert w.mean().item() == pytest.approx(1.0) and torch.allclose(w / w[0], pe / pe[0])


def test_mu_inputs_are_checked():
    with pytest.raises(ValueError, match="responses"):
        pr.mu2(torch.ones(3))
    with pytest.raises(ValueError, match="freqs"):
        pr.mu1(torch.ones(2, 3), [1.0, 3.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="responses"):
        pr.mu2(torch.tensor([[1.0, float("nan")]]))


# ---------------------------------------------------------------- the probe
def small_stimuli():
    return pr.Stimuli(size=32, ppd=16.0, freqs=(0.5, 1.0, 2.0, 4.0, 8.0), thetas=(0.0, math.pi / 4, math.pi / 2),
                      phases=(0.0, math.pi))


def test_the_batched_probe_equals_one_stimulus_at_a_time():
    net = backbone("vgg16", "random")
    stim = small_stimuli()
    r = pr.probe(net, ["relu1_2", "relu2_2"], stim, batch=7)
    for layer in ("relu1_2", "relu2_2"):
        freq = torch.stack([torch.stack([net(pr.concentric_grating(32, f, 16.0, phase=p)[None], [layer])[layer]
                                         .double().mean((2, 3))[0] for p in stim.phases]).mean(0) for f in stim.freqs], 1)
        assert torch.allclose(r[layer]["frequency"], freq, atol=1e-6)
        assert r[layer]["orientation"].shape == (freq.shape[0], 3)
        assert torch.allclose(r[layer]["pe"], pr.perceptual_efficacy(r[layer]["mu1"], r[layer]["mu2"]))
    assert r["relu1_2"]["orient_cpd"] == pytest.approx(pr.csf_peak())


def test_probe_rejects_unknown_layers_and_stimuli_above_nyquist():
    with pytest.raises(ValueError, match="layers"):
        pr.probe(backbone("vgg16", "random"), "relu9_9", small_stimuli())
    with pytest.raises(ValueError, match="cpd"):
        pr.Stimuli(size=32, ppd=8.0, freqs=(1.0, 8.0))

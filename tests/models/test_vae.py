"""The convolutional VAE of Chapter 6: shapes, the reparameterisation, the KL term, the latent grid, bad input."""
import math

import pytest
import torch

from perceptlab.models import ConvVAE, latent_grid, sample_latent, vae_widths


def test_shapes_and_output_range():
    torch.manual_seed(0)
    for channels, size, widths, latent in ((1, 32, (4, 8, 8), 2), (3, 64, (4, 4, 8, 8), 16)):
        model = ConvVAE(channels, size, latent, widths)
        x = torch.rand(3, channels, size, size)
        mu, logvar = model.encode(x)
        assert mu.shape == logvar.shape == (3, latent)
        y = model(x)
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        assert model.decode(torch.zeros(5, latent)).shape == (5, channels, size, size)


def test_eval_mode_decodes_the_mean_and_training_mode_samples():
    torch.manual_seed(0)
    model = ConvVAE(1, 32, 2, (4, 8, 8))
    x = torch.rand(4, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
        assert torch.equal(a, b) and torch.equal(a, model.decode(model.encode(x)[0]))
        model.train()
        c, d = model(x), model(x)
    assert not torch.equal(c, d)


def test_kl_is_the_closed_form_of_a_diagonal_gaussian_against_the_standard_normal():
    torch.manual_seed(0)
    model = ConvVAE(1, 32, 2, (4, 8, 8)).eval()
    x = torch.rand(6, 1, 32, 32)
    with torch.no_grad():
        model(x)
        mu, logvar = model.encode(x)
    expected = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
    assert model.kl.item() == pytest.approx(expected.item(), rel=1e-5)


def test_latent_grid_covers_the_square_row_by_row():
    z = latent_grid(12, 1.5)
    assert z.shape == (144, 2)
    assert torch.equal(z[0], torch.tensor([-1.5, 1.5])) and torch.equal(z[-1], torch.tensor([1.5, -1.5]))
    assert torch.allclose(z[:12, 1], torch.full((12,), 1.5))  # the first row is the top one
    assert torch.equal(sample_latent(4, 3, seed=1), sample_latent(4, 3, seed=1))


def test_widths_follow_the_image_size():
    assert vae_widths(32) == (32, 64, 128) and vae_widths(64, 16) == (16, 32, 64, 128)
    with pytest.raises(ValueError, match="image_size"):
        vae_widths(48)
    with pytest.raises(ValueError, match="image_size"):
        ConvVAE(1, 48, 2, (4, 8, 8))
    with pytest.raises(ValueError, match="latent_dim"):
        ConvVAE(1, 32, 0, (4, 8, 8))


def test_bad_input_names_the_argument():
    model = ConvVAE(1, 32, 2, (4, 8, 8))
    with pytest.raises(ValueError, match="x"):
        model.encode(torch.rand(2, 3, 32, 32))  # wrong channel count
    with pytest.raises(ValueError, match="x must be 32x32"):
        model.encode(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="x"):
        model.encode(torch.full((2, 1, 32, 32), math.nan))

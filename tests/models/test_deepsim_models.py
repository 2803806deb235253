"""Tests of perceptlab.models.deepsim: the networks of DeePSiM (Dosovitskiy & Brox 2016) against the paper's
Tables 1, 2 and 5, the bed-of-nails up-convolution, the VAE's KL term (eq. 7) and the frozen comparator C."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from perceptlab.losses.deepsim import make_comparator
from perceptlab.models.backbones import HEAD_LAYERS, backbone, backbone_head
from perceptlab.models.deepsim import (
    LRELU_SLOPE,
    AutoEncoder,
    Comparator,
    Discriminator,
    InversionGenerator,
    UpConv,
    bed_of_nails,
    kl_divergence,
    layer_table,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # toy networks: one thread is faster (conftest)


def _columns(rows: list[dict]) -> dict[str, list]:
    return {key: [r[key] for r in rows] for key in ("type", "in_size", "out_ch", "kernel", "stride")}


def test_layer_table_leaves_the_training_mode_as_it_was():
    d = Discriminator(3, 32, width=0.25).train()
    layer_table(d, torch.zeros(1, 3, 32, 32))
    assert d.training and all(m.training for m in d.modules())  # dropout still on for the next training step
    d.eval()
    layer_table(d, torch.zeros(1, 3, 32, 32))
    assert not d.training


# --------------------------------------------------------------------------- Table 1: the discriminator


def test_discriminator_at_64_pixels_is_table_1():
    rows = layer_table(Discriminator(3, 64), torch.zeros(2, 3, 64, 64))
    # Table 1 row by row: Type, InSize, OutCh, Kernel, Stride
    assert _columns(rows) == {
        "type": ["conv", "conv", "conv", "conv", "conv", "pool", "fc", "fc"],
        "in_size": [64, 29, 25, 12, 10, 4, None, None],
        "out_ch": [32, 64, 128, 256, 256, 256, 512, 2],
        "kernel": [7, 5, 3, 3, 3, 4, None, None],
        "stride": [2, 1, 2, 1, 2, 4, None, None],
    }
    assert rows[5]["out_size"] == 1  # global average pooling


def test_discriminator_has_dropout_half_after_pooling_and_after_the_first_fc():
    head = list(Discriminator(3, 64).head)
    kinds = [type(m) for m in head]
    assert kinds == [nn.Dropout, nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear]
    assert head[0].p == 0.5 and head[3].p == 0.5


def test_discriminator_for_large_imagenet_images_has_stride_4_in_the_first_layer():
    rows = layer_table(Discriminator(3, 227), torch.zeros(1, 3, 227, 227))
    assert rows[0]["stride"] == 4 and rows[0]["kernel"] == 7 and rows[0]["out_size"] == (227 - 7) // 4 + 1
    assert [r["stride"] for r in rows[1:5]] == [1, 2, 1, 2]  # only the first layer changes
    assert [r["out_ch"] for r in rows] == [32, 64, 128, 256, 256, 256, 512, 2]
    # the default at 64 pixels is 2, and the stride can be forced
    assert layer_table(Discriminator(3, 64), torch.zeros(1, 3, 64, 64))[0]["stride"] == 2
    assert layer_table(Discriminator(3, 227, first_stride=2), torch.zeros(1, 3, 227, 227))[0]["stride"] == 2


def test_discriminator_feature_branch_is_fc1024_fc512_concatenated_with_the_pooled_features():
    d = Discriminator(3, 64, feature_dim=100)
    rows = layer_table(d, (torch.zeros(2, 3, 64, 64), torch.zeros(2, 100)))
    assert [r["type"] for r in rows] == ["conv"] * 5 + ["pool", "fc", "fc", "fc", "fc"]
    assert [r["out_ch"] for r in rows[6:]] == [1024, 512, 512, 2]
    branch = [m for m in d.feature_branch if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in branch] == [(100, 1024), (1024, 512)]
    first_fc = [m for m in d.head if isinstance(m, nn.Linear)][0]
    assert first_fc.in_features == 256 + 512  # pooled image features ++ processed features
    # the features really change the logit
    d.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert not torch.equal(d(x, torch.zeros(2, 100)), d(x, torch.ones(2, 100)))


def test_discriminator_returns_one_logit_per_image_the_difference_of_the_two_way_softmax_logits():
    torch.manual_seed(0)
    d = Discriminator(3, 64).eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        logit = d(x)
        z = d.head(d.pool(d.convs(x)).flatten(1))
    assert logit.shape == (3,)
    assert torch.allclose(logit, z[:, 1] - z[:, 0])
    # sigmoid of the logit is the 2-way softmax's probability of class 1 ("real")
    assert torch.allclose(torch.sigmoid(logit), torch.softmax(z, 1)[:, 1], atol=1e-6)


def test_discriminator_below_64_pixels_pads_and_still_works():
    d = Discriminator(3, 32, width=0.25)
    assert d.padded
    rows = layer_table(d, torch.zeros(2, 3, 32, 32))
    assert [r["in_size"] for r in rows[:5]] == [32, 16, 16, 8, 8]
    assert [r["out_ch"] for r in rows[:5]] == [8, 16, 32, 64, 64]


# --------------------------------------------------------------------------- Table 2: the autoencoder


def test_autoencoder_at_64_pixels_is_table_2_exactly():
    ae = AutoEncoder(3, 64)
    rows = layer_table(ae, torch.zeros(2, 3, 64, 64))
    encoder, decoder = rows[:8], rows[8:]
    assert _columns(encoder) == {
        "type": ["conv"] * 8,
        "in_size": [64, 32, 32, 16, 16, 8, 8, 8],
        "out_ch": [32, 32, 64, 64, 128, 128, 64, 8],
        "kernel": [5, 3, 5, 3, 3, 3, 3, 3],
        "stride": [2, 1, 2, 1, 2, 1, 1, 1],
    }
    assert _columns(decoder) == {
        "type": ["conv", "conv", "uconv", "conv", "uconv", "conv", "uconv", "conv"],
        "in_size": [8, 8, 8, 16, 16, 32, 32, 64],
        "out_ch": [64, 128, 64, 64, 32, 32, 16, 3],
        "kernel": [3, 3, 4, 3, 4, 3, 4, 3],
        "stride": [1, 1, 2, 1, 2, 1, 2, 1],  # uconv: upsampling x2
    }
    assert [r["out_size"] for r in decoder] == [8, 8, 16, 16, 32, 32, 64, 64]


def test_autoencoder_code_is_8_channels_8_times_smaller_and_the_output_has_the_input_shape():
    ae = AutoEncoder(3, 64).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        code = ae.encode(x)
        out = ae(x)
        assert torch.equal(ae.decode(code), out)
    assert code.shape == (2, 8, 8, 8)
    assert out.shape == x.shape


def _activations_and_linear_output(seq: nn.Sequential) -> None:
    """Every layer but the last is followed by LeakyReLU(0.3); the last one is linear (nothing follows)."""
    mods = list(seq)
    layers = [i for i, m in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.Linear, UpConv))]
    assert layers[-1] == len(mods) - 1, "the output layer must be linear (no activation after it)"
    for i in layers[:-1]:
        assert isinstance(mods[i + 1], nn.LeakyReLU), f"layer {i} ({mods[i]}) is not followed by LeakyReLU"


def test_leaky_relu_slope_is_0_3_everywhere_and_no_other_nonlinearity():
    assert LRELU_SLOPE == 0.3
    nets = [Discriminator(3, 64), Discriminator(3, 64, feature_dim=16), AutoEncoder(3, 64),
            AutoEncoder(3, 32, variational=True), InversionGenerator(64, 32, width=0.125),
            InversionGenerator(16, 16, "conv", in_spatial=4, width=0.125)]
    for net in nets:
        acts = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
        assert acts and all(m.negative_slope == 0.3 for m in acts)
        others = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.PReLU,
                                                             nn.BatchNorm2d))]
        assert others == []


def test_generators_have_linear_output_layers():
    ae = AutoEncoder(3, 32, width=0.25)
    _activations_and_linear_output(ae.decoder)
    _activations_and_linear_output(ae.encoder)  # the code too
    gen = InversionGenerator(64, 32, width=0.125)
    _activations_and_linear_output(gen.body)
    assert isinstance(list(gen.body)[-1], UpConv) and list(gen.body)[-1].conv.out_channels == 3
    disc = Discriminator(3, 32, width=0.25)  # D's fc 2 gives the softmax's logits: no activation either
    _activations_and_linear_output(nn.Sequential(*[m for m in disc.head if not isinstance(m, nn.Dropout)]))
    # linear outputs are not squashed into [0, 1]: a large bias goes straight through
    with torch.no_grad():
        list(ae.decoder)[-1].bias.fill_(5.0)
        list(ae.decoder)[-1].weight.zero_()
    assert torch.allclose(ae.eval()(torch.rand(1, 3, 32, 32)), torch.full((1, 3, 32, 32), 5.0))


# --------------------------------------------------------------------------- Table 5: the inversion generator


def test_inversion_generator_fc_mode_at_256_is_table_5_exactly():
    gen = InversionGenerator(4096, 256, "fc")
    rows = layer_table(gen, torch.zeros(1, 4096))
    fc, body = rows[:3], rows[3:]
    assert [r["type"] for r in fc] == ["fc"] * 3 and [r["out_ch"] for r in fc] == [4096, 4096, 4096]
    assert _columns(body) == {
        "type": ["uconv", "conv", "uconv", "conv", "uconv", "conv", "uconv", "uconv", "uconv"],
        "in_size": [4, 8, 8, 16, 16, 32, 32, 64, 128],
        "out_ch": [256, 512, 256, 256, 128, 128, 64, 32, 3],
        "kernel": [4, 3, 4, 3, 4, 3, 4, 4, 4],
        "stride": [2, 1, 2, 1, 2, 1, 2, 2, 2],
    }
    assert body[-1]["out_size"] == 256
    # the third fc layer's 4096 units are reshaped to 256 x 4 x 4
    assert list(gen.stem)[-2].out_features == 256 * 4 * 4


def test_inversion_generator_smaller_output_keeps_the_first_stages_and_the_final_layer():
    gen = InversionGenerator(4096, 64, "fc", width=0.25)
    rows = layer_table(gen, torch.zeros(2, 4096))
    body = rows[3:]
    assert [r["type"] for r in body] == ["uconv", "conv", "uconv", "conv", "uconv", "conv", "uconv"]
    assert [r["in_size"] for r in body] == [4, 8, 8, 16, 16, 32, 32]
    assert body[-1]["out_ch"] == 3 and body[-1]["out_size"] == 64
    assert gen(torch.zeros(2, 4096)).shape == (2, 3, 64, 64)


def test_inversion_generator_conv_mode_replaces_the_fc_layers_by_convolutions():
    gen = InversionGenerator(256, 48, "conv", in_spatial=6, width=0.25)  # AlexNet pool5 is 256 x 6 x 6
    rows = layer_table(gen, torch.zeros(2, 256, 6, 6))
    assert all(r["type"] != "fc" for r in rows)
    assert [r["type"] for r in rows[:3]] == ["conv"] * 3 and [r["in_size"] for r in rows[:3]] == [6, 6, 6]
    assert [r["kernel"] for r in rows[:3]] == [3, 3, 3] and [r["out_ch"] for r in rows[:3]] == [64] * 3
    assert rows[-1]["type"] == "uconv" and rows[-1]["out_ch"] == 3 and rows[-1]["out_size"] == 48
    assert sum(r["type"] == "uconv" for r in rows) == 3  # 6 -> 12 -> 24 -> 48


# --------------------------------------------------------------------------- up-convolution


def test_bed_of_nails_puts_samples_on_the_even_grid_and_zeros_elsewhere():
    x = torch.randn(2, 3, 4, 5)
    out = bed_of_nails(x)
    assert out.shape == (2, 3, 8, 10)
    expected = torch.zeros(2, 3, 8, 10)
    for i in range(4):
        for j in range(5):
            expected[..., 2 * i, 2 * j] = x[..., i, j]
    assert torch.equal(out, expected)
    assert torch.equal(out[..., 1::2, :], torch.zeros(2, 3, 4, 10)) and torch.equal(out[..., :, 1::2],
                                                                                    torch.zeros(2, 3, 8, 5))
    # factor 3: the grid of multiples of 3
    out3 = bed_of_nails(x, 3)
    assert out3.shape == (2, 3, 12, 15) and torch.equal(out3[..., ::3, ::3], x)
    assert float(out3.abs().sum()) == pytest.approx(float(x.abs().sum()), rel=1e-6)


def test_bed_of_nails_is_not_nearest_neighbour_upsampling():
    x = torch.ones(1, 1, 2, 2)
    assert torch.equal(bed_of_nails(x)[0, 0], torch.tensor([[1., 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]))


@pytest.mark.parametrize("kernel", [2, 3, 4, 5])
def test_upconv_forward_equals_the_explicit_bed_of_nails_then_convolution(kernel):
    torch.manual_seed(kernel)
    up = UpConv(3, 5, kernel)
    x = torch.randn(2, 3, 6, 7)
    fast, explicit = up(x), up.forward_explicit(x)
    assert fast.shape == explicit.shape == (2, 5, 12, 14)
    assert torch.allclose(fast, explicit, atol=1e-5)
    # and the gradients agree too
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(up(x1).pow(2).sum(), x1)
    (g2,) = torch.autograd.grad(up.forward_explicit(x2).pow(2).sum(), x2)
    assert torch.allclose(g1, g2, atol=1e-4)


def test_upconv_4_is_a_transposed_convolution_with_flipped_and_transposed_weights():
    torch.manual_seed(0)
    up = UpConv(3, 5, 4)
    deconv = nn.ConvTranspose2d(3, 5, 4, stride=2, padding=1)
    with torch.no_grad():
        deconv.weight.copy_(up.conv.weight.flip(-1, -2).transpose(0, 1))
        deconv.bias.copy_(up.conv.bias)
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(deconv(x), up(x), atol=1e-5)
    assert torch.allclose(deconv(x), up.forward_explicit(x), atol=1e-5)


def test_bed_of_nails_rejects_bad_inputs():
    with pytest.raises(ValueError, match="x must have shape"):
        bed_of_nails(torch.zeros(3, 4, 4))
    with pytest.raises(ValueError, match="factor"):
        bed_of_nails(torch.zeros(1, 1, 4, 4), 0)


# --------------------------------------------------------------------------- VAE variant and eq. 7


def test_kl_divergence_equals_the_closed_form_kl_of_diagonal_gaussians():
    torch.manual_seed(0)
    mu, logvar = torch.randn(4, 8, 2, 2, dtype=torch.float64), torch.randn(4, 8, 2, 2, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).flatten(1).sum(1).mean()
    assert torch.allclose(kl_divergence(mu, logvar), expected)
    # eq. 7 (per sample: (||mu||^2 + ||sigma||^2 - <log sigma^2, 1>) / 2) differs by the constant d / 2
    d = mu[0].numel()
    eq7 = (0.5 * (mu.pow(2).flatten(1).sum(1) + logvar.exp().flatten(1).sum(1) - logvar.flatten(1).sum(1))).mean()
    assert torch.allclose(kl_divergence(mu, logvar), eq7 - d / 2)


def test_kl_divergence_is_zero_for_the_prior():
    assert float(kl_divergence(torch.zeros(3, 8, 4, 4), torch.zeros(3, 8, 4, 4))) == 0.0
    assert float(kl_divergence(torch.ones(3, 8, 4, 4), torch.zeros(3, 8, 4, 4))) > 0


def test_vae_samples_in_training_uses_the_mean_in_eval_and_records_the_kl():
    torch.manual_seed(0)
    vae = AutoEncoder(3, 32, width=0.25, variational=True)
    assert list(vae.encoder)[-1].out_channels == 16  # mu and log sigma^2, 8 channels each
    x = torch.rand(2, 3, 32, 32)
    h = vae.encoder(x)
    mu, logvar = h[:, :8], h[:, 8:]
    vae.eval()
    with torch.no_grad():
        out = vae(x)
        assert torch.equal(out, vae.decode(mu))
        assert torch.equal(vae.encode(x), mu)
        assert vae.encode(x).shape == (2, 8, 4, 4)
    assert torch.allclose(vae.kl, kl_divergence(mu, logvar))
    vae.train()
    torch.manual_seed(1)
    a = vae(x)
    torch.manual_seed(2)
    b = vae(x)
    assert not torch.equal(a, b)  # z = mu + sigma * eps
    torch.manual_seed(1)
    eps = torch.randn_like(mu)
    assert torch.allclose(a, vae.decode(mu + eps * torch.exp(0.5 * logvar)), atol=1e-6)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("size", [60, 36, 0, -8])
def test_autoencoder_image_size_must_be_a_positive_multiple_of_8(size):
    with pytest.raises(ValueError, match="image_size"):
        AutoEncoder(3, size)


def test_network_sizes_must_be_positive():
    with pytest.raises(ValueError, match="in_channels"):
        AutoEncoder(0, 64)
    with pytest.raises(ValueError, match="code_channels"):
        AutoEncoder(3, 64, code_channels=0)
    with pytest.raises(ValueError, match="image_size"):
        Discriminator(3, 0)
    with pytest.raises(ValueError, match="in_channels"):
        Discriminator(-1, 64)
    with pytest.raises(ValueError, match="feature_dim"):
        Discriminator(3, 64, feature_dim=0)
    with pytest.raises(ValueError, match="in_features"):
        InversionGenerator(0, 64)
    with pytest.raises(ValueError, match="out_size"):
        InversionGenerator(16, 0)


@pytest.mark.parametrize("out_size", [4, 48, 100])
def test_inversion_out_size_must_be_4_times_a_power_of_2(out_size):
    with pytest.raises(ValueError, match="out_size"):
        InversionGenerator(16, out_size, "fc")


def test_inversion_mode_and_in_spatial_are_checked():
    with pytest.raises(ValueError, match="mode"):
        InversionGenerator(16, 64, "deconv")
    with pytest.raises(ValueError, match="in_spatial"):
        InversionGenerator(16, 64, "conv")
    with pytest.raises(ValueError, match="out_size"):
        InversionGenerator(16, 40, "conv", in_spatial=6)


def test_wrong_input_shapes_raise_naming_the_argument():
    gen = InversionGenerator(16, 16, "fc", width=0.125)
    with pytest.raises(ValueError, match="features"):
        gen(torch.zeros(2, 15))
    conv = InversionGenerator(8, 16, "conv", in_spatial=4, width=0.125)
    with pytest.raises(ValueError, match="features"):
        conv(torch.zeros(2, 8, 5, 5))
    with pytest.raises(ValueError, match="features"):
        conv(torch.zeros(2, 7, 4, 4))
    with pytest.raises(ValueError, match="features"):
        Discriminator(3, 32, feature_dim=4, width=0.25)(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="x must have shape"):
        Discriminator(3, 32, width=0.25)(torch.zeros(3, 32, 32))
    ae = AutoEncoder(3, 32, width=0.25)
    with pytest.raises(ValueError, match="x must have shape"):
        ae(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="x must have shape"):
        ae.encode(torch.zeros(3, 32, 32))


def test_discriminator_features_of_the_wrong_shape_raise_naming_features():
    d = Discriminator(3, 32, feature_dim=10, width=0.25)
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="features"):
        d(x, torch.zeros(2, 9))  # wrong length
    with pytest.raises(ValueError, match="features"):
        d(x, torch.zeros(3, 10))  # another batch size


def test_discriminator_without_a_feature_branch_rejects_features_instead_of_ignoring_them():
    with pytest.raises(ValueError, match="features"):
        Discriminator(3, 32, width=0.25)(torch.rand(2, 3, 32, 32), torch.zeros(2, 10))


# --------------------------------------------------------------------------- the comparator


@pytest.fixture(scope="module")
def alexnet_fc6() -> Comparator:
    return make_comparator("alexnet-random", "fc6")


def test_comparator_unknown_layer_raises():
    net = backbone("alexnet", "random")
    with pytest.raises(ValueError, match="layer"):
        Comparator(net, "fc6")  # fc layers need the head
    with pytest.raises(ValueError, match="layer"):
        Comparator(net, "conv9")
    with pytest.raises(ValueError, match="layer"):
        make_comparator("alexnet-random", "relu9")


def test_alexnet_random_fc6_equals_torchvision_alexnet_seeded_identically(alexnet_fc6):
    torch.manual_seed(0)
    full = torchvision.models.alexnet(weights=None).eval()
    torch.manual_seed(123)
    x = torch.rand(2, 3, 96, 96)
    out = alexnet_fc6(x)
    assert out.shape == (2, 4096)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        h = torch.flatten(full.avgpool(full.features((x - mean) / std)), 1)
        relu6 = full.classifier[:3](h)  # dropout (off in eval), fc6, relu6
    assert torch.allclose(out, relu6, atol=1e-5, rtol=1e-4)
    assert (out >= 0).all() and (out > 0).any()  # after the ReLU


def test_backbone_head_random_weights_are_those_of_the_full_seeded_torchvision_model():
    torch.manual_seed(0)
    full = torchvision.models.alexnet(weights=None)
    head = backbone_head("alexnet", "random", seed=0)
    linears = [m for m in head if isinstance(m, nn.Linear)]
    ref = [m for m in full.classifier if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for a, b in zip(linears, ref):
        assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    net = backbone("alexnet", "random", seed=0)
    assert torch.equal(net.features[0].weight, full.features[0].weight)
    assert dict(HEAD_LAYERS["alexnet"]) == {"fc6": 3, "fc7": 6, "fc8": 7}
    assert isinstance(head[2 + 3 - 1], nn.ReLU) and isinstance(head[2 + 6 - 1], nn.ReLU)
    assert isinstance(head[2 + 7 - 1], nn.Linear) and head[2 + 7 - 1].out_features == 1000


def test_comparator_gradients_flow_to_the_input_not_to_its_weights(alexnet_fc6):
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    alexnet_fc6(x).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in alexnet_fc6.parameters())
    alexnet_fc6.train()
    assert not alexnet_fc6.training and not any(m.training for m in alexnet_fc6.modules())


def test_comparator_is_deterministic_and_takes_values_outside_0_1(alexnet_fc6):
    x = torch.rand(2, 3, 64, 64) * 1.4 - 0.2  # a generator's linear output
    assert torch.equal(alexnet_fc6(x), alexnet_fc6(x))
    with pytest.raises(ValueError, match="x must be a float tensor"):
        alexnet_fc6(torch.zeros(2, 1, 64, 64))


def test_alexnet_imagenet_comparator_loads_features_and_fc_layers_from_the_hub_cache(empty_torch_home):
    """The "alexnet-imagenet" entry with a stand-in weights file where torch's hub cache expects it
    (any state dict with AlexNet's keys and shapes): conv layers and the fc head both come from it."""
    from perceptlab.models.weights import imagenet_weights_path

    torch.manual_seed(5)
    stand_in = torchvision.models.alexnet(weights=None).eval()
    path = imagenet_weights_path("alexnet")
    path.parent.mkdir(parents=True)
    torch.save(stand_in.state_dict(), path)
    comp = make_comparator("alexnet-imagenet", "fc7")
    assert "imagenet" in comp.label and "fc7" in comp.label
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        relu7 = stand_in.classifier[:6](torch.flatten(stand_in.avgpool(stand_in.features((x - mean) / std)), 1))
        assert torch.allclose(comp(x), relu7, atol=1e-5, rtol=1e-4)


def test_comparator_conv_layer_and_gap():
    net = backbone("alexnet", "random")
    x = torch.rand(2, 3, 64, 64)
    relu2 = Comparator(net, "relu2")(x)
    assert relu2.shape[:2] == (2, 192) and relu2.dim() == 4
    gap = Comparator(net, "gap")(x)
    pool5 = net(x, ["pool5"])["pool5"]
    assert torch.allclose(gap, pool5.mean(dim=(2, 3)))

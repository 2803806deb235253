"""The networks of DeePSiM (Dosovitskiy & Brox 2016): up-convolution, discriminator, autoencoder, inversion generator.

Faithful to the paper's Section 3.1 and Tables 1, 2 and 5:

- an *up-convolution* is 'bed of nails' x2 upsampling (each sample placed on the even grid,
  zeros in between; not nearest or bilinear) followed by a convolution;
- every non-linearity is a leaky ReLU with slope 0.3, LReLU(x) = max(x, 0) + 0.3 min(x, 0);
- generators (the decoder, the inversion generator) have linear output layers.

``width`` scales every channel count except the code and the output (the quick preset uses
narrower networks and 32 x 32 images; the defaults build the tables exactly).
:func:`layer_table` lists a network's layers as the paper's tables do, so tests can check them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perceptlab.validate import check_image, check_positive_int

#: Slope of the leaky ReLU on the negative side, alpha in LReLU(x) = max(x, 0) + alpha min(x, 0) (Sec. 3.1).
LRELU_SLOPE = 0.3

#: Table 1: (out channels, kernel, stride) of the five convolutions of the discriminator.
DISCRIMINATOR_CONVS = ((32, 7, 2), (64, 5, 1), (128, 3, 2), (256, 3, 1), (256, 3, 2))
#: Table 2 (top): (out channels, kernel, stride) of the encoder; the last layer gives the code.
ENCODER_LAYERS = ((32, 5, 2), (32, 3, 1), (64, 5, 2), (64, 3, 1), (128, 3, 2), (128, 3, 1), (64, 3, 1))
#: Table 2 (bottom): (kind, out channels, kernel) of the decoder; "up" = up-convolution x2; last = the image.
DECODER_LAYERS = (("conv", 64, 3), ("conv", 128, 3), ("up", 64, 4), ("conv", 64, 3), ("up", 32, 4),
                  ("conv", 32, 3), ("up", 16, 4))
#: Table 5: hidden units of the three fully connected layers, then the 256 x 4 x 4 reshape.
INVERSION_FC = (4096, 4096, 4096)
#: Table 5: (kind, out channels, kernel) after the reshape; the last up-convolution to 3 channels follows.
INVERSION_LAYERS = (("up", 256, 4), ("conv", 512, 3), ("up", 256, 4), ("conv", 256, 3), ("up", 128, 4),
                    ("conv", 128, 3), ("up", 64, 4), ("up", 32, 4))


def lrelu() -> nn.LeakyReLU:
    """LeakyReLU(0.3), the paper's non-linearity everywhere."""
    return nn.LeakyReLU(LRELU_SLOPE)


#: Weight initialisations: "he" (:func:`init_weights`) or "default" (PyTorch's layer defaults).
INITS = ("he", "default")


def init_weights(module: nn.Module, init: str = "he") -> nn.Module:
    """Initialise every convolution and linear layer of ``module``; returns it.

    ``"he"``: He initialisation for leaky ReLUs with slope 0.3 (He et al. 2015), zero biases.
    ``"default"``: leave PyTorch's defaults.  The paper (caffe) does not state its init.  Measured
    in the quick preset: "he" trains the autoencoder markedly faster (normalized error 37 % after
    400 SE steps against 44 % with the defaults), while the inversion generator trained worse with
    it, so the experiments choose per network (``AEConfig.init``, ``InversionConfig.init``).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if init == "default":
        return module
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=LRELU_SLOPE, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def bed_of_nails(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """'Bed of nails' upsampling: (N, C, H, W) -> (N, C, factor H, factor W) with x[i, j] at
    (factor i, factor j) and zeros everywhere else (Dosovitskiy et al. 2015b; DeePSiM Sec. 3.1)."""
    if x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
    check_positive_int(factor, "factor")
    n, c, h, w = x.shape
    out = x.new_zeros(n, c, h * factor, w * factor)
    out[..., ::factor, ::factor] = x
    return out


class UpConv(nn.Module):
    """Up-convolution: :func:`bed_of_nails` x2, then a ``kernel`` x ``kernel`` convolution, output 2H x 2W.

    The convolution pads k // 2 before and k - 1 - k // 2 after.  Three quarters of the upsampled
    input are zeros, so ``forward`` computes the same numbers as a transposed convolution with
    the kernel flipped and its in/out axes swapped (a 'deconvolution' is exactly this), which
    skips the multiplications by zero; :meth:`forward_explicit` is the literal definition, and
    tests check that the two agree.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 4):
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Conv2d(in_channels, out_channels, kernel)

    def forward_explicit(self, x: torch.Tensor) -> torch.Tensor:
        """Bed of nails, pad, convolve: the definition."""
        k = self.kernel
        return self.conv(F.pad(bed_of_nails(x), (k // 2, k - 1 - k // 2, k // 2, k - 1 - k // 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        weight = self.conv.weight.flip(-1, -2).transpose(0, 1)
        return F.conv_transpose2d(x, weight, self.conv.bias, stride=2, padding=k - 1 - k // 2, output_padding=k % 2)


class Discriminator(nn.Module):
    """The discriminator of Table 1: five convolutions, global average pooling, fc 512, fc 2.

    conv7/2 32 - conv5 64 - conv3/2 128 - conv3 256 - conv3/2 256, each followed by LReLU(0.3),
    then global average pooling, dropout 0.5, fc 512 + LReLU, dropout 0.5, fc 2 (a 2-way softmax).

    Args:
        in_channels: image channels.
        image_size: input side. Table 1's convolutions are unpadded (64 -> 29 -> 25 -> 12 -> 10 -> 4);
            below 64 pixels they are padded by k // 2 so that small quick-preset images fit.
        feature_dim: if given, the inversion variant: features (N, feature_dim) go through
            fc 1024 - fc 512 and are concatenated with the pooled image features (Sec. 3.1).
        first_stride: stride of the first convolution; default 2, or 4 for images larger than
            128 pixels ("large ImageNet images").
        width: scales every hidden channel count (1 = the paper).
        init: weight initialisation, "he" or "default" (:func:`init_weights`).

    ``forward(x, features=None)`` returns one logit per image, (N,): the 2-way softmax's
    probability of "real" is sigmoid(z_real - z_fake), so the logit is z_real - z_fake and
    the adversarial losses of :mod:`perceptlab.losses.adversarial` apply unchanged.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 64, feature_dim: int | None = None,
                 first_stride: int | None = None, width: float = 1.0, init: str = "he"):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(image_size, "image_size")
        if feature_dim is not None:
            check_positive_int(feature_dim, "feature_dim")
        self.image_size, self.feature_dim = image_size, feature_dim
        self.padded = image_size < 64
        layers: list[nn.Module] = []
        c = in_channels
        for i, (out, k, s) in enumerate(DISCRIMINATOR_CONVS):
            if i == 0:
                s = first_stride or (4 if image_size > 128 else 2)
            layers += [nn.Conv2d(c, _ch(out, width), k, s, padding=k // 2 if self.padded else 0), lrelu()]
            c = _ch(out, width)
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            side = self.convs(torch.zeros(1, in_channels, image_size, image_size)).shape[-1]
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for the discriminator")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_branch = None
        joint = c
        if feature_dim is not None:
            self.feature_branch = nn.Sequential(nn.Linear(feature_dim, _ch(1024, width)), lrelu(),
                                                nn.Linear(_ch(1024, width), _ch(512, width)), lrelu())
            joint += _ch(512, width)
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(joint, _ch(512, width)), lrelu(), nn.Dropout(0.5),
                                  nn.Linear(_ch(512, width), 2))
        init_weights(self, init)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must have shape (N, C, H, W), got shape {tuple(x.shape)}")
        h = self.pool(self.convs(x)).flatten(1)
        if self.feature_branch is not None:
            if features is None:
                raise ValueError("features must be given: this discriminator was built with feature_dim")
            if features.dim() < 2 or features.shape[0] != x.shape[0] or features[0].numel() != self.feature_dim:
                raise ValueError(f"features must have shape (N, {self.feature_dim}) with the N = {x.shape[0]} of x, "
                                 f"got shape {tuple(features.shape)}")
            h = torch.cat([h, self.feature_branch(features.flatten(1))], 1)
        elif features is not None:
            raise ValueError("features must be None: this discriminator was built without feature_dim")
        z = self.head(h)
        return z[:, 1] - z[:, 0]


def _check_divisible(image_size: int, factor: int, name: str = "image_size") -> None:
    check_positive_int(image_size, name)
    if image_size % factor:
        raise ValueError(f"{name} must be divisible by {factor} (the code is {factor}x smaller than the image), "
                         f"got {image_size}")


class AutoEncoder(nn.Module):
    """The autoencoder of Table 2: an 8-channel code 8 times smaller than the image, all layers convolutional.

    Encoder: conv5/2 32 - conv3 32 - conv5/2 64 - conv3 64 - conv3/2 128 - conv3 128 - conv3 64 -
    conv3 ``code_channels`` (linear: the code).  Decoder: conv3 64 - conv3 128 - upconv4 64 -
    conv3 64 - upconv4 32 - conv3 32 - upconv4 16 - conv3 ``in_channels`` (linear output).
    Every hidden layer is followed by LReLU(0.3); convolutions pad k // 2.

    ``variational=True`` makes the VAE variant of Sec. 4.2: the encoder's last layer predicts
    mean and log-variance (2 x code_channels), ``forward`` samples z = mu + sigma * eps in
    training mode (the mean in eval mode) and stores ``self.kl`` (:func:`kl_divergence`, eq. 7).

    ``forward(x)`` maps (N, C, H, W) with H, W divisible by 8 to the reconstruction (same shape,
    not clamped: the output layer is linear).  ``encode``/``decode`` expose the code (N, 8, H/8, W/8).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 64, code_channels: int = 8, width: float = 1.0,
                 variational: bool = False, init: str = "he"):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(code_channels, "code_channels")
        _check_divisible(image_size, 8)
        self.image_size, self.code_channels, self.variational = image_size, code_channels, variational
        enc: list[nn.Module] = []
        c = in_channels
        for out, k, s in ENCODER_LAYERS:
            enc += [nn.Conv2d(c, _ch(out, width), k, s, padding=k // 2), lrelu()]
            c = _ch(out, width)
        enc.append(nn.Conv2d(c, code_channels * (2 if variational else 1), 3, padding=1))
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = []
        c = code_channels
        for kind, out, k in DECODER_LAYERS:
            dec += [UpConv(c, _ch(out, width), k) if kind == "up" else nn.Conv2d(c, _ch(out, width), k, padding=k // 2),
                    lrelu()]
            c = _ch(out, width)
        dec.append(nn.Conv2d(c, in_channels, 3, padding=1))
        self.decoder = nn.Sequential(*dec)
        self.kl: torch.Tensor | None = None
        init_weights(self, init)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"x must have shape (N, C, H, W) with H and W divisible by 8, got shape {tuple(x.shape)}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code (N, code_channels, H/8, W/8); for the VAE, the mean mu."""
        self._check(x)
        h = self.encoder(x)
        return h[:, : self.code_channels] if self.variational else h

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        h = self.encoder(x)
        if not self.variational:
            return self.decoder(h)
        mu, logvar = h[:, : self.code_channels], h[:, self.code_channels:]
        self.kl = kl_divergence(mu, logvar)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. 7, averaged over the batch: (1/2) (||mu||^2 + ||sigma||^2 - <log sigma^2, 1>) - d/2 per sample.

    This is KL(N(mu, diag sigma^2) || N(0, I)) (Kingma & Welling 2014); the paper's eq. 7 omits
    the constant -d/2, which changes no gradient.  ``mu`` and ``logvar`` (log sigma^2) have shape
    (N, ...); returns a scalar.
    """
    per = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).flatten(1).sum(1)
    return per.mean()


class InversionGenerator(nn.Module):
    """The generator of Table 5 that inverts a network's features (Sec. 4.3).

    ``mode="fc"`` (features are vectors, e.g. AlexNet FC6): fc 4096 - fc 4096 - fc 4096, reshape to
    256 x 4 x 4, then up-convolutions doubling the side up to ``out_size``; the first three are each
    followed by a conv3, and the last one outputs 3 channels (linear).  With ``out_size=256`` this
    is Table 5 exactly: uconv 256 - conv 512 - uconv 256 - conv 256 - uconv 128 - conv 128 - uconv 64 -
    uconv 32 - uconv 3.  Smaller outputs keep the table's first stages and its final layer.

    ``mode="conv"`` (features are maps, e.g. AlexNet CONV5): the fc layers are replaced by
    convolutions (three conv3 with 256 channels at the map's resolution, LReLU), and
    ``out_size`` must be ``in_spatial`` times a power of 2.

    Args:
        in_features: feature length (fc) or channels (conv).
        out_size: side of the generated square image.
        in_spatial: side of the feature map (conv mode; 4 in fc mode, after the reshape).
        width: scales every hidden width (1 = Table 5).
        init: weight initialisation, "default" (PyTorch's) or "he" (:func:`init_weights`).
    """

    def __init__(self, in_features: int, out_size: int = 256, mode: str = "fc", in_spatial: int | None = None,
                 width: float = 1.0, out_channels: int = 3, init: str = "default"):
        super().__init__()
        check_positive_int(in_features, "in_features")
        check_positive_int(out_size, "out_size")
        if mode not in ("fc", "conv"):
            raise ValueError(f"mode must be 'fc' or 'conv', got {mode!r}")
        start = 4 if mode == "fc" else check_positive_int(in_spatial, "in_spatial")
        n_up = math.log2(out_size / start) if out_size >= start else -1
        if n_up < 1 or n_up != int(n_up):
            raise ValueError(f"out_size must be {start} times a power of 2 (at least x2), got {out_size}")
        n_up = int(n_up)
        self.mode, self.in_features, self.in_spatial, self.out_size = mode, in_features, start, out_size
        if mode == "fc":
            fc: list[nn.Module] = []
            c = in_features
            for i, units in enumerate(INVERSION_FC):
                units = _ch(units, width) if i < len(INVERSION_FC) - 1 else 16 * _ch(256, width)
                fc += [nn.Linear(c, units), lrelu()]
                c = units
            self.stem = nn.Sequential(*fc)
            c = _ch(256, width)
        else:
            convs: list[nn.Module] = []
            c = in_features
            for _ in INVERSION_FC:
                convs += [nn.Conv2d(c, _ch(256, width), 3, padding=1), lrelu()]
                c = _ch(256, width)
            self.stem = nn.Sequential(*convs)
        stages = self._stages(n_up)
        body: list[nn.Module] = []
        for kind, out, k in stages:
            body += [UpConv(c, _ch(out, width), k) if kind == "up" else nn.Conv2d(c, _ch(out, width), k, padding=k // 2),
                     lrelu()]
            c = _ch(out, width)
        body.append(UpConv(c, out_channels, 4))
        self.body = nn.Sequential(*body)
        init_weights(self, init)

    @staticmethod
    def _stages(n_up: int) -> list[tuple[str, int, int]]:
        """Table 5's stages before the final up-convolution, for ``n_up`` up-convolutions in all."""
        ups = [i for i, (kind, _, _) in enumerate(INVERSION_LAYERS) if kind == "up"]
        if n_up - 1 >= len(ups):  # larger than the table: repeat its last stage
            return list(INVERSION_LAYERS) + [INVERSION_LAYERS[-1]] * (n_up - 1 - len(ups))
        end = ups[n_up - 1] if n_up - 1 < len(ups) else len(INVERSION_LAYERS)
        return list(INVERSION_LAYERS[:end])

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.mode == "fc":
            if features.dim() < 2 or features[0].numel() != self.in_features:
                raise ValueError(f"features must have shape (N, {self.in_features}), got shape {tuple(features.shape)}")
            h = self.stem(features.flatten(1)).view(features.shape[0], -1, 4, 4)
        else:
            if features.dim() != 4 or features.shape[1] != self.in_features or features.shape[-1] != self.in_spatial:
                raise ValueError(f"features must have shape (N, {self.in_features}, {self.in_spatial}, "
                                 f"{self.in_spatial}), got shape {tuple(features.shape)}")
            h = self.stem(features)
        return self.body(h)


def layer_table(model: nn.Module, example: torch.Tensor | Sequence[torch.Tensor]) -> list[dict]:
    """The layers of ``model`` as the paper's tables list them, from one forward pass of ``example``.

    One row per convolution, up-convolution, pooling and fully connected layer, in forward order:
    ``type`` ("conv", "uconv", "pool", "fc"), ``in_size`` (input side; None for fc), ``out_ch``,
    ``kernel``, ``stride`` (for uconv: the upsampling factor 2), ``out_size``.
    """
    rows: list[dict] = []
    hooks = []

    def hook(module, inputs, output):
        x = inputs[0]
        if isinstance(module, UpConv):
            rows.append(dict(type="uconv", in_size=x.shape[-1], out_ch=output.shape[1], kernel=module.kernel,
                             stride=2, out_size=output.shape[-1]))
        elif isinstance(module, nn.Conv2d):
            rows.append(dict(type="conv", in_size=x.shape[-1], out_ch=output.shape[1], kernel=module.kernel_size[0],
                             stride=module.stride[0], out_size=output.shape[-1]))
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            rows.append(dict(type="pool", in_size=x.shape[-1], out_ch=output.shape[1], kernel=x.shape[-1],
                             stride=x.shape[-1], out_size=output.shape[-1]))
        elif isinstance(module, nn.Linear):
            rows.append(dict(type="fc", in_size=None, out_ch=output.shape[-1], kernel=None, stride=None,
                             out_size=None))

    for m in model.modules():
        if isinstance(m, UpConv):
            hooks.append(m.register_forward_hook(hook))
        elif isinstance(m, (nn.Conv2d, nn.AdaptiveAvgPool2d, nn.Linear)) and not _inside_upconv(model, m):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()
            model(*(example if isinstance(example, (list, tuple)) else [example]))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return rows


def _inside_upconv(model: nn.Module, module: nn.Module) -> bool:
    return any(isinstance(m, UpConv) and m.conv is module for m in model.modules())


def check_generator_output(x: torch.Tensor, name: str = "output") -> torch.Tensor:
    """A generator's image (N, C, H, W): finite, floating point, any range (the output layer is linear)."""
    return check_image(x, name, value_range=None)


class Comparator(nn.Module):
    """C(x) of eq. 2: the activations of one layer of a frozen network (the 'comparator', Sec. 3.1).

    ``net`` is a :class:`~perceptlab.models.Backbone`; ``layer`` one of its layer names, or, with a
    ``head`` (:func:`~perceptlab.models.backbone_head`), "fc6"/"fc7"/"fc8", or "gap" for the global
    average of the backbone's last layer (a position-free vector, like an fc layer's).

    ``forward(x)`` takes images (N, 3, H, W) on the [0, 1] scale, *not* range-checked: a
    generator's linear output may leave [0, 1] and must still be compared. ImageNet
    normalisation is applied when the backbone does it. Returns (N, C, h, w) or (N, F).
    The comparator's weights get no gradients; its input does.
    """

    def __init__(self, net: nn.Module, layer: str, head: nn.Sequential | None = None):
        super().__init__()
        from perceptlab.models.backbones import HEAD_LAYERS

        self.net, self.head = net, head
        heads = dict(HEAD_LAYERS.get(net.name, ())) if head is not None else {}
        names = list(net.layer_names) + list(heads) + ["gap"]
        if layer not in names:
            raise ValueError(f"layer must be one of the {net.name} layers {names}, got {layer!r}")
        self.layer, self._head_index = layer, heads.get(layer)
        self.label = f"{net.name} ({net.weights_label}), layer {layer}"
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> Comparator:  # always frozen, dropout off
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
            raise ValueError(f"x must be a float tensor of shape (N, 3, H, W), got {tuple(x.shape)} {x.dtype}")
        h = (x - self.net.mean) / self.net.std if self.net.normalize else x
        if self.layer == "gap":
            return self.net.run(h, [self.net.layer_names[-1]])[self.net.layer_names[-1]].mean(dim=(2, 3))
        if self._head_index is None:
            return self.net.run(h, [self.layer])[self.layer]
        last = self.net.layer_names[-1]
        return self.head[: 2 + self._head_index](self.net.run(h, [last])[last])

"""Losses: pixel (MSE, L1, PSNR, SSIM), deep features, LPIPS, adversarial, DeePSiM, patch MMD and the
random S-CNN, each a function and an
``nn.Module`` twin; and the metric registry that builds every named distance.
"""
from perceptlab.losses.pixel import (
    mse,
    l1,
    MSELoss,
    L1Loss,
    psnr_from_mse,
    psnr,
    PSNR,
    SSIM_K1,
    SSIM_K2,
    SSIM_TRUNCATE,
    ssim_map,
    ssim,
    ssim_loss,
    SSIM,
    SSIMLoss,
)
from perceptlab.losses.features import (
    unit_normalize_channels,
    layer_distances,
    feature_distance,
    feature_loss,
    pre_activation_layer,
    FeatureLoss,
)
from perceptlab.losses.lpips import (
    LPIPS_NETS,
    LPIPS_SHIFT,
    LPIPS_SCALE,
    lpips_weights_path,
    LPIPS,
    lpips,
)
from perceptlab.losses.adversarial import (
    GENERATOR_LOSSES,
    discriminator_loss,
    generator_loss,
    value_estimate,
    DiscriminatorLoss,
    GeneratorLoss,
)
from perceptlab.losses.patch_mmd import (
    SIGMA,
    gaussian_kernel,
    window_mmd,
    patch_mmd,
    PatchMMD,
    random_fourier_filters,
    pooled_fourier_features,
    PatchMMDRFF,
)
from perceptlab.losses.scnn import (
    SCNNLoss,
)
from perceptlab.losses.registry import (
    VGG_LAYERS,
    EXEMPLAR_LAYERS,
)
from perceptlab.losses import registry
from perceptlab.losses.deepsim import (
    PAUSE_THRESHOLD,
    make_comparator,
    deepsim_terms,
    deepsim_loss,
    should_update_discriminator,
    DeePSiMLoss,
    deepsim_step,
)


__all__ = [
    "mse",
    "l1",
    "MSELoss",
    "L1Loss",
    "psnr_from_mse",
    "psnr",
    "PSNR",
    "SSIM_K1",
    "SSIM_K2",
    "SSIM_TRUNCATE",
    "ssim_map",
    "ssim",
    "ssim_loss",
    "SSIM",
    "SSIMLoss",
    "unit_normalize_channels",
    "layer_distances",
    "feature_distance",
    "feature_loss",
    "pre_activation_layer",
    "FeatureLoss",
    "LPIPS_NETS",
    "LPIPS_SHIFT",
    "LPIPS_SCALE",
    "lpips_weights_path",
    "LPIPS",
    "lpips",
    "GENERATOR_LOSSES",
    "discriminator_loss",
    "generator_loss",
    "value_estimate",
    "DiscriminatorLoss",
    "GeneratorLoss",
    "SIGMA",
    "gaussian_kernel",
    "window_mmd",
    "patch_mmd",
    "PatchMMD",
    "random_fourier_filters",
    "pooled_fourier_features",
    "PatchMMDRFF",
    "SCNNLoss",
    "VGG_LAYERS",
    "EXEMPLAR_LAYERS",
    "registry",
    "PAUSE_THRESHOLD",
    "make_comparator",
    "deepsim_terms",
    "deepsim_loss",
    "should_update_discriminator",
    "DeePSiMLoss",
    "deepsim_step",
]

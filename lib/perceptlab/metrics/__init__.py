"""Metrics: FID/KID and the Frechet distance, 2AFC scoring, bootstrap and calibration, sharpness measures,
pixel-distribution distances.
"""
from perceptlab.metrics.distributions import (
    NO_LABEL,
    trace_sqrt_product,
    frechet_distance,
    FeatureStats,
    Score,
    extractor_label,
    iter_features,
    feature_stats,
    features,
    fid_from_stats,
    fid_from_features,
    fid,
    polynomial_kernel,
    mmd2_unbiased,
    kid_from_features,
    kid,
)
from perceptlab.metrics.twoafc import (
    choice,
    score,
    bootstrap_ci,
    component_distances,
    combine,
    distances,
    agreement_row,
    agreement,
    ranking_probability,
    calibration_loss,
    Calibration,
    calibrate,
)
from perceptlab.metrics.sharpness import (
    high_frequency_fraction,
    relative_sharpness,
)
from perceptlab.metrics.pixels import (
    pixel_w1,
)
from perceptlab.metrics.reconstruction import (
    mean_pairwise_distance,
    normalized_euclidean_error,
)


__all__ = [
    "NO_LABEL",
    "trace_sqrt_product",
    "frechet_distance",
    "FeatureStats",
    "Score",
    "extractor_label",
    "iter_features",
    "feature_stats",
    "features",
    "fid_from_stats",
    "fid_from_features",
    "fid",
    "polynomial_kernel",
    "mmd2_unbiased",
    "kid_from_features",
    "kid",
    "choice",
    "score",
    "bootstrap_ci",
    "component_distances",
    "combine",
    "distances",
    "agreement_row",
    "agreement",
    "ranking_probability",
    "calibration_loss",
    "Calibration",
    "calibrate",
    "high_frequency_fraction",
    "relative_sharpness",
    "pixel_w1",
    "mean_pairwise_distance",
    "normalized_euclidean_error",
]

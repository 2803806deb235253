"""Probing CNN channels with gratings (Tariq, Tursun, Kim & Didyk 2020): stimuli with explicit
viewing geometry, contrast sensitivity functions, tuning curves, mu1, mu2, perceptual efficacy and
the H-x / L-x channel subsets (Chapter 7)."""
from perceptlab.probing.csf import CSF_MODELS, barten, csf, csf_peak, mannos_sakrison
from perceptlab.probing.efficacy import channel_subset, channel_weights, mu1, mu2, perceptual_efficacy
from perceptlab.probing.stimuli import (
    MODULATIONS,
    check_grating,
    concentric_grating,
    dominant_frequency,
    grating_batch,
    oriented_grating,
    radial_amplitude,
)
from perceptlab.probing.tuning import Stimuli, geometric_frequencies, mean_activations, probe

__all__ = [
    "CSF_MODELS", "barten", "csf", "csf_peak", "mannos_sakrison",
    "channel_subset", "channel_weights", "mu1", "mu2", "perceptual_efficacy",
    "MODULATIONS", "check_grating", "concentric_grating", "dominant_frequency", "grating_batch",
    "oriented_grating", "radial_amplitude",
    "Stimuli", "geometric_frequencies", "mean_activations", "probe",
]

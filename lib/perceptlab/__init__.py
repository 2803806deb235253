"""perceptlab: the shared library of the course *Perceptual Losses for Image Synthesis*.

Images everywhere are float tensors of shape (N, C, H, W) with values in [0, 1].
Modules (one idea each):

- :mod:`perceptlab.data`      bundled images, crops/patches, registry of real datasets
- :mod:`perceptlab.nets`      backbones by name with an explicit weights policy, feature extraction
- :mod:`perceptlab.train`     seeded training loop with checkpoints and exact resume
- :mod:`perceptlab.viz`       image grids, comparisons, curves
- :mod:`perceptlab.matching`  template matching (Chapter 1)
- :mod:`perceptlab.gim`       the Generalized Image Mean and sharpness measures (Chapters 1, 2)
- :mod:`perceptlab.superres`  x4 super-resolution regressed with a pixel loss (Chapter 1)
- :mod:`perceptlab.losses`    pixel losses, PSNR, SSIM, the feature (perceptual) loss, LPIPS (Chapter 2)
- :mod:`perceptlab.twoafc`    2AFC triplets (BAPPS, synthetic), scores, bootstrap, calibration (Chapter 2)
- :mod:`perceptlab.comparators` an Exemplar-CNN the library trains itself (Chapter 2)
- :mod:`perceptlab.distances` image distances by name, for experiments (Chapter 2)
- :mod:`perceptlab.gan`       DCGAN, GAN losses, resumable GAN training (Chapter 3)
- :mod:`perceptlab.gan1d`     the 1-D GAN toy: D*, JSD and C(G) (Chapter 3)
- :mod:`perceptlab.metrics`   Frechet distance, streaming FID and KID (Chapter 3)
- :mod:`perceptlab.extractors` feature extractors for FID/KID: Inception pool3, a digits classifier (Chapter 3)
- :mod:`perceptlab.experiments` every experiment by name, for ``python -m perceptlab run``
- :mod:`perceptlab.grading`   release and grade homework notebooks with nbval
"""
from __future__ import annotations

from . import _tvhook

_tvhook.install_import_hook()  # before anything imports torchvision (see perceptlab.tvcompat)

from .config import default_device, preset  # noqa: E402
from .validate import check_image  # noqa: E402

__version__ = "0.1.0"
__all__ = ["preset", "default_device", "check_image", "__version__"]

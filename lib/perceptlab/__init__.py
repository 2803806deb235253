"""perceptlab: the shared library of the course *Perceptual Losses for Image Synthesis*.

Images everywhere are float tensors of shape (N, C, H, W) with values in [0, 1].
Modules (one idea each):

- :mod:`perceptlab.data`      bundled images, crops/patches, registry of real datasets
- :mod:`perceptlab.nets`      backbones by name with an explicit weights policy, feature extraction
- :mod:`perceptlab.train`     seeded training loop with checkpoints and exact resume
- :mod:`perceptlab.viz`       image grids, comparisons, curves
- :mod:`perceptlab.matching`  template matching (Chapter 1)
- :mod:`perceptlab.gim`       the Generalized Image Mean and sharpness measures (Chapter 1)
- :mod:`perceptlab.grading`   release and grade homework notebooks with nbval
"""
from __future__ import annotations

from . import _tvhook

_tvhook.install_import_hook()  # before anything imports torchvision (see perceptlab.tvcompat)

from .config import default_device, preset  # noqa: E402
from .validate import check_image  # noqa: E402

__version__ = "0.1.0"
__all__ = ["preset", "default_device", "check_image", "__version__"]

"""The torchvision import hook itself (standard library only at import time).

See :mod:`perceptlab.course.tvcompat` for why it exists and how it is installed. This
file is copied verbatim into site-packages as ``_perceptlab_tvcompat.py`` by
``python -m perceptlab.course.tvcompat install``.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from pathlib import Path

#: Operators that torchvision registers fake kernels for unconditionally.
MISSING_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_LIBRARIES: list = []  # keep torch.library.Library objects alive


def _extension_loads() -> bool:
    """Try to load torchvision's ``_C`` extension without importing torchvision."""
    import torch  # noqa: F401  (needed by the extension and by load_library)

    # PathFinder, not importlib.util.find_spec: the latter would re-enter our own finder.
    spec = importlib.machinery.PathFinder.find_spec("torchvision", sys.path)
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to fix
    for folder in spec.submodule_search_locations:
        for candidate in Path(folder).glob("_C*"):
            if candidate.suffix in (".so", ".pyd", ".dylib"):
                try:
                    torch.ops.load_library(str(candidate))
                    return True
                except (OSError, ImportError, RuntimeError):
                    return False
    return False


def define_missing_schemas() -> bool:
    """Define the torchvision operator schemas if the extension cannot provide them.

    Returns True when schemas were defined, False when nothing had to be done.
    Idempotent.
    """
    import torch

    if _LIBRARIES or _extension_loads():
        return False
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for schema in MISSING_SCHEMAS:
        try:
            lib.define(schema)
        except RuntimeError:  # already defined by someone else
            pass
    _LIBRARIES.append(lib)
    return True


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Runs :func:`define_missing_schemas` once, right before torchvision is imported."""

    done = False

    def find_spec(self, fullname, path=None, target=None):  # noqa: D401
        if fullname == "torchvision" and not self.done:
            type(self).done = True
            try:
                define_missing_schemas()
            except Exception as exc:  # never break an import because of the hook
                print(f"perceptlab tvcompat hook failed: {exc!r}", file=sys.stderr)
        return None  # let the normal finders import torchvision


def install_import_hook() -> None:
    """Put the finder on ``sys.meta_path`` (idempotent). Called by the .pth file."""
    if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())

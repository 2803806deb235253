"""Compatibility hook: make ``import torchvision`` work when its C++ extension cannot load.

Why this exists
---------------
On the course's CPU machines the only torchvision wheel that matches the pinned
CPU build of torch (``torch==2.13.0`` with ``torchvision==0.28.0``) is a CUDA
build.  Its ``_C`` extension fails to load against CPU torch, torchvision then
carries on without its custom operators, but ``torchvision/_meta_registrations.py``
unconditionally registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms``; registering a kernel for an operator whose *schema* was never
defined raises ``RuntimeError: operator torchvision::nms does not exist`` and
``import torchvision`` fails.

What the hook does
------------------
Just before torchvision is imported, it tries to load torchvision's ``_C``
extension exactly as torchvision would.  If that works (Colab, any matching
install) the hook does nothing.  If it fails, it defines the two missing operator
*schemas* (no kernels) so torchvision's import succeeds.  Models, datasets and
transforms work; the detection ops (``torchvision.ops.nms``, ``roi_align``, ...)
still raise torchvision's own "Couldn't load custom C++ ops" error if called, and
``torchvision.io`` image decoding is unavailable (the course reads images with PIL).

How it is installed
-------------------
``make`` runs ``python -m perceptlab.course.tvcompat install``, which checks whether a
plain ``import torchvision`` works in a fresh interpreter and, only if it does not,
writes two files into site-packages: this module (as ``_perceptlab_tvcompat.py``)
and ``perceptlab_tvcompat.pth`` that imports it at interpreter start-up.  The
hook is a ``sys.meta_path`` finder, so nothing heavy happens at start-up: torch is
touched only when something imports torchvision.  Every Python process of the
virtual environment (Jupyter kernels, nbval, the book build) gets it.
``python -m perceptlab.course.tvcompat uninstall`` removes both files; ``status`` reports.

This module imports only the standard library at import time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from perceptlab import _tvhook
from perceptlab._tvhook import (  # noqa: F401 (public API)
    MISSING_SCHEMAS,
    define_missing_schemas,
    install_import_hook,
)

HOOK_MODULE = "_perceptlab_tvcompat"
PTH_NAME = "perceptlab_tvcompat.pth"


def plain_import_works(python: str = sys.executable) -> bool:
    """Whether ``import torchvision`` works in a fresh interpreter *without* the hook."""
    env = dict(os.environ, PERCEPTLAB_TVCOMPAT_DISABLE="1")
    proc = subprocess.run([python, "-c", "import torchvision"], capture_output=True, env=env)
    return proc.returncode == 0


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def install() -> str:
    """Install the start-up hook into this interpreter's site-packages if it is needed."""
    site = _site_packages()
    if plain_import_works():
        uninstall()
        return "import torchvision works without help: no hook installed"
    (site / f"{HOOK_MODULE}.py").write_text(Path(_tvhook.__file__).read_text())
    (site / PTH_NAME).write_text(
        "import os; 'PERCEPTLAB_TVCOMPAT_DISABLE' in os.environ or "
        f"__import__('{HOOK_MODULE}').install_import_hook()\n"
    )
    return f"installed {PTH_NAME} and {HOOK_MODULE}.py into {site}"


def uninstall() -> None:
    site = _site_packages()
    for name in (PTH_NAME, f"{HOOK_MODULE}.py"):
        (site / name).unlink(missing_ok=True)


def status() -> str:
    installed = (_site_packages() / PTH_NAME).exists()
    return f"hook installed: {installed}; plain import works: {plain_import_works()}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "status"
    if command == "install":
        print(install())
    elif command == "uninstall":
        uninstall()
        print("removed")
    elif command == "status":
        print(status())
    else:
        print("usage: python -m perceptlab.course.tvcompat [install|uninstall|status]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

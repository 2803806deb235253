"""Runs inside a grading kernel: restores the builtins and perceptlab's functions before each check cell.

The grader imports this module silently when the kernel starts, before any student cell
runs (:func:`snapshot` records the builtins and every function and class of perceptlab's
public subpackages), and calls :func:`restore` silently before each check cell, so that a
check prints with the real ``print`` and tests the library's own functions even if the
submission redefined or monkeypatched them.

This is a guard against accidents and casual cheating, not a sandbox: code that replaces
``__import__``, edits this module's snapshot, or rewrites files on disk is not stopped.
Grade untrusted submissions in a container.
"""
from __future__ import annotations

import builtins
import inspect
import sys

_BUILTINS: dict = dict(vars(builtins))
_LIBRARY: dict[str, dict] = {}
#: names IPython itself puts into the user namespace over builtins
_IPYTHON_NAMES = {"exit", "quit", "get_ipython", "display", "In", "Out"}


def snapshot() -> None:
    """Record the functions and classes of every loaded perceptlab module (the public subpackages are imported)."""
    import perceptlab.data  # noqa: F401
    import perceptlab.imaging  # noqa: F401
    import perceptlab.losses  # noqa: F401
    import perceptlab.metrics  # noqa: F401
    import perceptlab.models  # noqa: F401

    for name, module in list(sys.modules.items()):
        if name == "perceptlab" or name.startswith("perceptlab."):
            _LIBRARY[name] = {k: v for k, v in vars(module).items() if inspect.isfunction(v) or inspect.isclass(v)}


def restore(user_ns: dict) -> list[str]:
    """Put back the builtins, remove user names that shadow them, and put back perceptlab's functions.

    Returns what was restored (for tests and logs).
    """
    changed = []
    for key, value in _BUILTINS.items():
        if vars(builtins).get(key, None) is not value:
            setattr(builtins, key, value)
            changed.append(f"builtins.{key}")
    for key in [k for k in user_ns if k in _BUILTINS and not k.startswith("_") and k not in _IPYTHON_NAMES]:
        if user_ns[key] is not _BUILTINS[key]:
            del user_ns[key]
            changed.append(key)
    for name, attributes in _LIBRARY.items():
        module = sys.modules.get(name)
        if module is None:
            continue
        for key, value in attributes.items():
            if vars(module).get(key, None) is not value:
                setattr(module, key, value)
                changed.append(f"{name}.{key}")
    return changed

"""Tests of perceptlab.course.tvcompat: ``import torchvision`` works with and without a loadable C++ extension.

Subprocesses run with ``PERCEPTLAB_TVCOMPAT_DISABLE=1`` (or ``python -S``) so that a hook
already installed in this environment's site-packages does not hide what is tested.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch

import perceptlab  # noqa: F401  (installs the import hook before torchvision is imported)
from perceptlab.course import tvcompat

import torchvision  # noqa: E402  (after perceptlab, as everywhere in the course)

LIB = str(Path(perceptlab.__file__).resolve().parents[1])
PURELIB = sysconfig.get_paths()["purelib"]
#: the module holding the hook itself (the file that ``install`` copies into site-packages)
HOOK = sys.modules[tvcompat.install_import_hook.__module__]
HAS_OPS = torchvision.extension._has_ops()


def run_python(code: str, *args: str, disable_site_hook: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this environment."""
    env = {k: v for k, v in os.environ.items() if k != "PERCEPTLAB_TVCOMPAT_DISABLE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (LIB, env.get("PYTHONPATH")) if p)
    if disable_site_hook:
        env["PERCEPTLAB_TVCOMPAT_DISABLE"] = "1"
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, timeout=timeout)


@pytest.fixture(scope="module")
def plain_import_ok() -> bool:
    return tvcompat.plain_import_works()


def test_plain_import_works_returns_bool(plain_import_ok):
    assert isinstance(plain_import_ok, bool)
    if not plain_import_ok:  # consistent with the C++ extension failing to load here
        assert not HAS_OPS


def test_import_perceptlab_then_torchvision_builds_vgg16_in_fresh_interpreter():
    proc = run_python("""
        import perceptlab
        import torch, torchvision
        net = torchvision.models.vgg16(weights=None)
        print("params", sum(p.numel() for p in net.parameters()))
        if torchvision.extension._has_ops():
            print("nms", "HAS_OPS")
        else:
            try:
                torchvision.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)
            except RuntimeError:
                print("nms", "RUNTIME_ERROR")
    """)
    assert proc.returncode == 0, proc.stderr  # no ImportError, and nms did not crash the interpreter
    lines = dict(line.split() for line in proc.stdout.splitlines())
    assert int(lines["params"]) == 138_357_544  # VGG16's parameter count
    assert lines["nms"] == ("HAS_OPS" if HAS_OPS else "RUNTIME_ERROR")


def test_nms_raises_runtime_error_when_extension_missing():
    if HAS_OPS:
        pytest.skip("torchvision's C++ extension loads here; the detection ops work")
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.1]])
    with pytest.raises(RuntimeError, match="Couldn't load custom C\\+\\+ ops"):
        torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)


def test_define_missing_schemas_after_import_does_nothing():
    assert tvcompat.define_missing_schemas() is False
    assert tvcompat.define_missing_schemas() is False
    if HAS_OPS:
        assert HOOK._LIBRARIES == []
    else:
        assert str(torch.ops.torchvision.nms.default._schema).startswith("torchvision::nms(Tensor dets")
        assert str(torch.ops.torchvision.qnms.default._schema).startswith("torchvision::qnms(Tensor dets")


def test_define_missing_schemas_is_idempotent_in_fresh_interpreter():
    proc = run_python("""
        import sys
        from perceptlab.course import tvcompat
        first, second = tvcompat.define_missing_schemas(), tvcompat.define_missing_schemas()
        import torchvision  # the hook runs here and must find nothing left to do
        libraries = sys.modules[tvcompat.define_missing_schemas.__module__]._LIBRARIES
        print(first, second, len(libraries), torchvision.extension._has_ops())
    """)
    assert proc.returncode == 0, proc.stderr
    first, second, n_libraries, has_ops = proc.stdout.split()
    if has_ops == "True":
        assert (first, second, n_libraries) == ("False", "False", "0")
    else:
        assert (first, second, n_libraries) == ("True", "False", "1")


def test_install_import_hook_is_idempotent():
    before = sum(isinstance(f, HOOK._TorchvisionFinder) for f in sys.meta_path)
    tvcompat.install_import_hook()
    tvcompat.install_import_hook()
    assert sum(isinstance(f, HOOK._TorchvisionFinder) for f in sys.meta_path) == before == 1


def test_finder_only_reacts_to_torchvision_and_imports_nothing_itself():
    finder = HOOK._TorchvisionFinder()
    assert finder.find_spec("numpy") is None
    assert finder.find_spec("torchvision") is None  # it never provides the module itself


@pytest.fixture
def fake_site(tmp_path, monkeypatch) -> Path:
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(tvcompat, "_site_packages", lambda: site)
    return site


def _plain_import(works: bool):
    return lambda python=sys.executable: works


def test_install_writes_hook_files_when_plain_import_fails(fake_site, monkeypatch):
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    message = tvcompat.install()
    assert str(fake_site) in message
    pth = fake_site / tvcompat.PTH_NAME
    hook = fake_site / f"{tvcompat.HOOK_MODULE}.py"
    assert pth.read_text().count("\n") == 1  # a .pth runs single lines that start with "import"
    assert pth.read_text().startswith("import ")
    assert "PERCEPTLAB_TVCOMPAT_DISABLE" in pth.read_text()
    assert hook.read_text() == Path(HOOK.__file__).read_text()
    assert "hook installed: True" in tvcompat.status()


def test_install_removes_hook_when_plain_import_works(fake_site, monkeypatch):
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    tvcompat.install()
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(True))
    assert "no hook installed" in tvcompat.install()
    assert list(fake_site.iterdir()) == []


def test_uninstall_removes_files_and_tolerates_absence(fake_site, monkeypatch):
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    tvcompat.install()
    (fake_site / "other.pth").write_text("")
    tvcompat.uninstall()
    assert [p.name for p in fake_site.iterdir()] == ["other.pth"]
    tvcompat.uninstall()  # nothing left to remove: no error
    assert tvcompat.status() == "hook installed: False; plain import works: False"


def test_main_commands(fake_site, monkeypatch, capsys):
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    assert tvcompat.main(["install"]) == 0
    assert (fake_site / tvcompat.PTH_NAME).exists()
    assert tvcompat.main(["status"]) == 0
    assert tvcompat.main(["uninstall"]) == 0
    assert not (fake_site / tvcompat.PTH_NAME).exists()
    assert tvcompat.main(["bogus"]) == 2
    assert "usage" in capsys.readouterr().err


# ``python -S``: no site-packages .pth file runs (neither an installed hook nor the editable
# perceptlab); the site dir under test is processed with site.addsitedir (which runs its .pth),
# then the environment's packages are put on sys.path without processing their .pth files.
_PROBE = """
    import site, sys
    site.addsitedir({site!r})
    sys.path.append({purelib!r})
    import torchvision
    net = torchvision.models.alexnet(weights=None)
    print("perceptlab imported:", any(m == "perceptlab" or m.startswith("perceptlab.") for m in sys.modules))
    print("hook from:", sys.modules[{hook!r}].__file__)
"""


def test_installed_hook_makes_plain_import_work_without_perceptlab(fake_site, monkeypatch):
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    tvcompat.install()
    probe = _PROBE.format(site=str(fake_site), purelib=PURELIB, hook=tvcompat.HOOK_MODULE)
    proc = run_python(probe, "-S", disable_site_hook=False)
    assert proc.returncode == 0, proc.stderr
    assert "perceptlab imported: False" in proc.stdout
    assert f"hook from: {fake_site / tvcompat.HOOK_MODULE}.py" in proc.stdout


def test_installed_hook_respects_disable_variable(fake_site, monkeypatch, plain_import_ok):
    """Also the control of the test above: without the hook, the same import fails here."""
    if plain_import_ok:
        pytest.skip("plain import torchvision works here; disabling the hook changes nothing visible")
    monkeypatch.setattr(tvcompat, "plain_import_works", _plain_import(False))
    tvcompat.install()
    probe = _PROBE.format(site=str(fake_site), purelib=PURELIB, hook=tvcompat.HOOK_MODULE)
    proc = run_python(probe, "-S", disable_site_hook=True)
    assert proc.returncode != 0
    assert "torchvision::nms" in proc.stderr

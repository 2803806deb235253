"""The library's layering: lower layers never import upper ones, and there is no import circle.

Every ``import`` statement of every module of ``perceptlab`` is read from the source (module
level and inside functions), resolved to the ``perceptlab`` module it names, and checked
against the layer order of the README: config/validate -> train/imaging -> data/matching ->
models/viz -> losses -> metrics/gim -> experiments -> course.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import perceptlab

PACKAGE = Path(perceptlab.__file__).resolve().parent
LAYERS = {  # module prefix -> layer; a module may import its own layer and the ones below
    "perceptlab._tvhook": 0, "perceptlab.config": 0, "perceptlab.validate": 0,
    "perceptlab.train": 1, "perceptlab.imaging": 1,
    "perceptlab.data": 2, "perceptlab.matching": 2,
    "perceptlab.models": 3, "perceptlab.viz": 3,
    "perceptlab.losses": 4, "perceptlab.probing": 4,
    "perceptlab.metrics": 5, "perceptlab.gim": 5,
    "perceptlab.experiments": 6,
    "perceptlab.course": 7,
    "perceptlab.__main__": 8,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    matches = [prefix for prefix in LAYERS if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README's layer order)")
    return LAYERS[max(matches, key=len)]


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported perceptlab module, line, at module level) for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("perceptlab")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if not base.startswith("perceptlab"):
                continue
            # "from perceptlab.x import y" imports the submodule perceptlab.x.y when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        out += [(name, node.lineno, id(node) in top) for name in names]
    return out


def test_every_module_is_in_a_layer():
    for module in MODULES:
        if module != "perceptlab":
            layer(module)


@pytest.mark.parametrize("module", [m for m in MODULES if m != "perceptlab"])
def test_no_module_imports_a_higher_layer(module):
    upward = [f"line {line}: {target} (layer {layer(target)})" for target, line, _ in imports(module)
              if target != "perceptlab" and layer(target) > layer(module)]
    assert upward == [], f"{module} (layer {layer(module)}) imports upward: {upward}"


def test_the_package_root_imports_only_the_lowest_layer():
    assert {t for t, _, _ in imports("perceptlab")} <= {"perceptlab._tvhook", "perceptlab.config", "perceptlab.validate"}


def test_there_is_no_import_circle():
    """Module-level imports between perceptlab's modules form no cycle (function-level imports,
    which run later, are left out; the layer test covers them)."""
    graph = {m: {t for t, _, top in imports(m) if top and t in MODULES and t != m} for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk itself works: a synthetic module importing upwards is caught."""
    fake = tmp_path / "perceptlab" / "imaging" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from perceptlab.experiments import dcgan\n")
    monkeypatch.setitem(MODULES, "perceptlab.imaging.bad", fake)
    assert imports("perceptlab.imaging.bad") == [("perceptlab.experiments.dcgan", 2, False)]
    assert layer("perceptlab.experiments.dcgan") > layer("perceptlab.imaging.bad")

"""Small fixtures shared by the library tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``PERCEPTLAB_DATA`` and ``PERCEPTLAB_CACHE`` at an empty temporary folder."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("PERCEPTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PERCEPTLAB_DATA", str(data))
    return data


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``TORCH_HOME`` at an empty temporary folder, so no cached weights are found."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home

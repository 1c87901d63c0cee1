import pytest

from pml import paths


@pytest.fixture
def build_tmp(tmp_path, monkeypatch):
    """Redirect everything pml writes under _build/ to a temporary folder."""
    monkeypatch.setattr(paths, "build_dir", lambda: tmp_path / "_build")
    return tmp_path / "_build"

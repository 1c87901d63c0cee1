import signal

import pytest
import torch

from pml import paths


@pytest.fixture
def build_tmp(tmp_path, monkeypatch):
    """Redirect everything pml writes under _build/ to a temporary folder."""
    monkeypatch.setattr(paths, "build_dir", lambda: tmp_path / "_build")
    return tmp_path / "_build"


@pytest.fixture
def one_thread():
    """torch on one thread for the test, restored afterwards: small models run far faster on one thread (OpenMP
    spins on a loaded 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_configure(config):
    """Ctrl-C as in a terminal, even when the suite was started in the background: a shell without job control
    starts background commands with SIGINT ignored, which children inherit, and the Ctrl-C tests need it delivered."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest
import torch
from threadpoolctl import threadpool_info

from pml.threads import limit_threads


def blas_threads():
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_limits_torch_and_blas_and_restores():
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS)

    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        assert all(n == 1 for n in blas_threads())
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


def test_none_changes_nothing_and_bad_values_fail():
    before = torch.get_num_threads()
    with limit_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="positive integer"):
        with limit_threads(0):
            pass


def test_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom pml.threads import limit_threads\nwith limit_threads(1):\n    pass\n"
            "assert 'torch' not in sys.modules, 'limit_threads imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)

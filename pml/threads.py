"""Thread limits for small dense work on few cores: :func:`limit_threads` sets torch's intra-op pool and every loaded
BLAS (``threadpoolctl``) for one block and restores both. Tiny networks and small factorisations run fastest on one
thread (measured 10-20x slower with two on a shared 2-core machine). torch is limited only if already imported."""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator


@contextlib.contextmanager
def limit_threads(num_threads: int | None = 1) -> Iterator[None]:
    """Run the block with ``num_threads`` torch and BLAS threads; ``None`` changes nothing."""
    if num_threads is None:
        yield
        return
    if int(num_threads) < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(int(num_threads))
    try:
        with threadpool_limits(limits=int(num_threads), user_api="blas"):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)

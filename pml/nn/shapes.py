"""The network shapes of the paper's scaling figures (Figs. 2, 5 and 6a), shared by the sweeps that train them and
the benchmark that times their training step."""

from __future__ import annotations

__all__ = ["PAPER_WIDTHS"]

PAPER_WIDTHS = {  # the paper's widths per depth, chosen so that N ~ 256 * 4^k at d = 3 (config feynman-network-8)
    2: (51, 204, 819, 3276, 13107, 52428),
    3: (13, 29, 61, 125, 253, 509),
    4: (9, 20, 43, 88, 179, 360),
}

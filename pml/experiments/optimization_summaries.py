"""Chapter 4's numbers, for a build from the results store as for any other: each returns the
:class:`pml.engine.NotComputed` it is given instead of failing. They wrap :mod:`pml.experiments.optimization`
rather than change it, because its source is part of its tasks' cache keys."""

from __future__ import annotations

from typing import Any, Mapping

from pml.engine import partial
from pml.experiments import optimization as opt

__all__ = ["claim_values", "learning_numbers", "part", "quintic_numbers", "spectrum", "spectrum_numbers"]

learning_numbers = partial.passes_missing(opt.learning_numbers)
quintic_numbers = partial.passes_missing(opt.quintic_numbers)


@partial.passes_missing
def spectrum(adam_result):
    """Fig. 7's Hessian spectrum of the teacher-student Adam sweep (``adam_result.spectrum``)."""
    return adam_result.spectrum


@partial.passes_missing
def spectrum_numbers(adam_result, top_fraction: float = 0.1) -> dict[str, Any]:
    """:func:`pml.experiments.optimization.spectrum_numbers` of the sweep's spectrum."""
    return opt.spectrum_numbers(adam_result.spectrum, top_fraction)


def part(group_result: Any, name: str) -> Any:
    """One part (``"adam"``, ``"bfgs"``, ``"combined"``) of a step that assembles to a dict, or its NotComputed."""
    return group_result if partial.is_missing(group_result) else group_result[name]


def claim_values(spectrum_: Mapping[str, Any], learning: Mapping[str, Any], quintic: Mapping[str, Any]) -> Any:
    """:func:`pml.experiments.optimization.claim_values`, or what its inputs lack (every claim then reads "not
    computed")."""
    missing = partial.combine(spectrum_, quintic, *learning.values())
    return missing if missing is not None else opt.claim_values(spectrum_, learning, quintic)

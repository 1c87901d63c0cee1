"""Chapter 1's numbers, for a build from the results store as for any other: each summary returns the named numbers
the chapter glues, or the same names with the step's :class:`pml.engine.NotComputed`. They live apart from
:mod:`pml.experiments.introduction` because that module's source is part of its tasks' cache keys."""

from __future__ import annotations

from typing import Any

import numpy as np

from pml import scaling
from pml.engine import partial

__all__ = ["claim_values", "decomposition_numbers", "floor_numbers", "piecewise_numbers"]


@partial.passes_missing
def floor_numbers(floors) -> dict[str, float]:
    """``floor_<dtype>`` (storage floor) and ``eval_floor_<dtype>`` (evaluation floor) of each floating-point type of
    a :class:`pml.experiments.introduction.FloorResult`; the NotComputed itself when the step is not stored."""
    out = {f"floor_{dtype}": value for dtype, value in zip(floors.dtypes, floors.storage_floor)}
    out.update({f"eval_floor_{dtype}": value for dtype, value in zip(floors.dtypes, floors.evaluation_floor)})
    return out


def _nonnegative_terms(dec) -> np.ndarray:
    """Optimization error, generalization gap and architecture error (every term but the sampling luck), each
    relative to the total loss."""
    return np.delete(dec.terms, 1, axis=2) / dec.terms.sum(axis=2, keepdims=True)


def _luck_fit(dec, n_fit_last: int):
    return scaling.fit_power_law(dec.n_train, dec.std()[:, 1], last=n_fit_last)


DECOMPOSITION_KEYS = ("min_nonneg_term", "luck_exponent", "luck_exponent_err", "luck_mean_over_std")


def decomposition_numbers(dec, n_fit_last: int) -> dict[str, Any]:
    """Eq. (6)'s numbers (smallest non-negative term, the sampling luck's exponent against |D| and its mean over std),
    or NotComputed values when the step is not stored."""
    if partial.is_missing(dec):
        return {key: dec for key in DECOMPOSITION_KEYS}
    luck = _luck_fit(dec, n_fit_last)
    return {"min_nonneg_term": float(_nonnegative_terms(dec).min()), "luck_exponent": luck.exponent,
            "luck_exponent_err": luck.exponent_stderr,
            "luck_mean_over_std": float(abs(dec.mean()[-1, 1]) / dec.std()[-1, 1])}


def piecewise_numbers(pw) -> dict[str, Any]:
    """``exponent_gap``: the largest |fitted - theoretical| exponent of the piecewise polynomials."""
    if partial.is_missing(pw):
        return {"exponent_gap": pw}
    return {"exponent_gap": float(np.max(np.abs(pw.exponent - pw.theory())))}


def claim_values(floors, dec, pw, n_fit_last: int) -> dict[str, Any]:
    """The measured value of every claim C1.1-C1.4; a claim whose step is not stored gets its NotComputed."""
    return {
        "C1.1": floors if partial.is_missing(floors)
        else floors.storage_floor[list(floors.dtypes).index("float64")],
        "C1.2": dec if partial.is_missing(dec) else _nonnegative_terms(dec).min(),
        "C1.3": dec if partial.is_missing(dec) else _luck_fit(dec, n_fit_last).exponent,
        "C1.4": piecewise_numbers(pw)["exponent_gap"],
    }

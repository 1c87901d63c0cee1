"""The user-facing fitting tool: ``fit`` (the User's Guide to Precision, Fig. 10), the model file, the guide's
rules and the atomic table writers. Paper: Section 5, Fig. 10.

Modules: :mod:`~pml.fitting.core` (``fit`` and the choice among candidates), :mod:`~pml.fitting.checks` (input
checks), :mod:`~pml.fitting.methods` (the methods), :mod:`~pml.fitting.report` (the precision report),
:mod:`~pml.fitting.model` (the fitted model and its file), :mod:`~pml.fitting.guide` (the rules),
:mod:`~pml.fitting.commands` (``pml fit`` / ``pml predict``), :mod:`~pml.fitting.tables` (CSV/.npz tables).
"""

from pml.fitting.checks import FitError
from pml.fitting.core import fit
from pml.fitting.methods import INNER_FRACTION, MAX_SELECTION_ROWS, METHODS
from pml.fitting.model import FittedModel, ModelFileError, load
from pml.fitting.report import PrecisionReport, diagnose, float64_floor

__all__ = ["INNER_FRACTION", "MAX_SELECTION_ROWS", "METHODS", "FitError", "FittedModel", "ModelFileError",
           "PrecisionReport", "diagnose", "fit", "float64_floor", "load"]

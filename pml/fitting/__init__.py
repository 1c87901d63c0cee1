"""The user-facing fitting tool: ``fit`` (the User's Guide to Precision, paper Section 5, Fig. 10), the model file,
the guide's rules and the table readers and writers."""

from pml.fitting.checks import FitError
from pml.fitting.core import fit
from pml.fitting.methods import INNER_FRACTION, MAX_SELECTION_ROWS, METHODS
from pml.fitting.model import FittedModel, ModelFileError, load
from pml.fitting.report import PrecisionReport, diagnose, float64_floor

__all__ = ["INNER_FRACTION", "MAX_SELECTION_ROWS", "METHODS", "FitError", "FittedModel", "ModelFileError",
           "PrecisionReport", "diagnose", "fit", "float64_floor", "load"]

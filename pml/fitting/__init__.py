"""The user-facing fitting tool: ``fit`` (the User's Guide to Precision, Fig. 10), the model file, the guide's
rules and the atomic table writers. Paper: Section 5, Fig. 10."""

from pml.fitting.core import (  # noqa: F401
    INNER_FRACTION,
    MAX_SELECTION_ROWS,
    METHODS,
    FitError,
    FittedModel,
    ModelFileError,
    PrecisionReport,
    diagnose,
    fit,
    float64_floor,
    load,
)

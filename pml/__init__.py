"""pml: Precision Machine Learning (Michaud, Liu & Tegmark 2022) as a tested library.

The package exports ``__version__`` and :func:`fit`, a thin entry point to :mod:`pml.fitting` that imports it
only when called: import the module you need (``from pml import data, metrics``). No module has side effects at
import.
"""

__version__ = "0.1.0"


def fit(X, y, method="auto", **kwargs):
    """Fit y = f(X) to high precision and report how precise the fit is: ``pml.fitting.fit`` (see its docs).

    ``model = pml.fit(X, y)``; ``print(model.report)``; ``model.predict(X_new)``; ``model.save("model.npz")``.
    """
    from pml import fitting

    return fitting.fit(X, y, method, **kwargs)

"""pml: Precision Machine Learning (Michaud, Liu & Tegmark 2022) as a tested library.

The package exports ``__version__``, :func:`fit` and :func:`load`, thin entry points to :mod:`pml.fitting` that import
it only when called: import the module you need (``from pml import data, metrics``). No module has side effects at
import."""

__version__ = "0.1.0"


def fit(X, y, method="auto", **kwargs):
    """Fit y = f(X) to high precision and report how precise the fit is: :func:`pml.fitting.fit`.

    ``model = pml.fit(X, y)``; ``print(model.report)``; ``model.predict(X_new)``; ``model.save("model.npz")``.

    Parameters
    ----------
    X, y : array_like
        (n, d) inputs, or (n,) for d = 1, and (n,) targets.
    method : str, optional
        ``"auto"`` (default: the User's Guide rules) or a method's name.
    **kwargs
        The other arguments of :func:`pml.fitting.fit` (``validation``, ``seed``, ``smooth``, method options, ...).

    Returns
    -------
    pml.fitting.FittedModel
        The model and its precision report.

    Raises
    ------
    pml.fitting.FitError
        For bad data or an unknown method or option.
    """
    from pml import fitting

    return fitting.fit(X, y, method, **kwargs)


def load(path):
    """Read a model saved with ``model.save(path)``: :func:`pml.fitting.load`.

    Parameters
    ----------
    path : str or pathlib.Path
        A file written by ``FittedModel.save``.

    Returns
    -------
    pml.fitting.FittedModel
        The saved model; ``model.report`` is its precision report.

    Raises
    ------
    pml.fitting.ModelFileError
        If the file is not a model of this pml version.
    """
    from pml import fitting

    return fitting.load(path)

"""A fitted model (:class:`FittedModel`): predict, save to one ``.npz`` file, :func:`load` it back.

A fitted model is saved as one ``.npz`` file (arrays plus a JSON metadata entry with the pml version and the file
format version); the file is written to a temporary name and renamed, so an error or Ctrl-C never leaves a
half-written model. Loading a file from another pml version, another format version, or a file that is not a pml
model raises :class:`ModelFileError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from pml import __version__
from pml.fitting.checks import check_inputs
from pml.fitting.methods import METHODS, rebuild_predictor
from pml.fitting.report import PrecisionReport
from pml.fitting.tables import NPZ_ERRORS
from pml.fitting.transforms import from_dict

FORMAT = "pml-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read as a model of this pml version."""


class FittedModel:
    """A fitted model: predict, save to one ``.npz`` file, load back; ``report`` says how precise it is.

    Made by :func:`fit` or :func:`load`, not by hand. Used in :doc:`/book/05_users_guide`.

    Parameters
    ----------
    method : str
        The method's name (a key of ``pml.fitting.METHODS``).
    state : dict of str to numpy.ndarray
        The fitted numbers (coefficients, weights, nodes).
    params : dict
        The method's settings needed to predict.
    input_names : sequence of str
        The names of the d inputs.
    target_name : str
        The name of the target.
    report : PrecisionReport
        How the model was chosen and how precise it is.
    predictor : callable, optional
        Maps (n, d) inputs to predictions; rebuilt from ``state`` and ``params`` when omitted.
    """

    def __init__(self, method: str, state: dict[str, np.ndarray], params: dict, input_names: Sequence[str],
                 target_name: str, report: PrecisionReport, predictor=None):
        self.method = method
        self.state = {k: np.asarray(v) for k, v in state.items()}
        self.params = dict(params)
        self.input_names = tuple(input_names)
        self.target_name = str(target_name)
        self.report = report
        self._predict = predictor

    @property
    def dim(self) -> int:
        return len(self.input_names)

    def __repr__(self) -> str:
        return (f"FittedModel(method={self.method!r}, inputs={list(self.input_names)}, target={self.target_name!r}, "
                f"val_rel_rmse={self.report.val_rel_rmse:.2e})")

    def predict(self, X) -> np.ndarray:
        """Predictions at ``X``.

        Parameters
        ----------
        X : array_like
            (n, d) inputs, or (n,) when d = 1.

        Returns
        -------
        numpy.ndarray
            (n,) float64 predictions; NaN where the method has no prediction (simplex: outside the training data's convex
            hull).

        Raises
        ------
        FitError
            If ``X`` is not numeric and finite or has the wrong number of columns.
        """
        X = check_inputs(X, self.input_names, what="X")
        if self._predict is None:
            self._predict = rebuild_predictor(METHODS[self.method], self.state, self.params)
        return np.asarray(self._predict(X), dtype=np.float64).reshape(-1)

    def _meta(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "pml_version": __version__,
                "method": self.method, "params": self.params, "input_names": list(self.input_names),
                "target_name": self.target_name, "report": self.report.to_dict(), "state_keys": sorted(self.state)}

    def save(self, path) -> Path:
        """Write the model to one ``.npz`` file, atomically.

        A temporary file in the same folder is renamed over ``path`` only when complete, so nothing half-written is ever
        left.

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write (the name is used as given).

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        path = Path(path)
        arrays = {f"state.{k}": v for k, v in self.state.items()}
        meta = json.dumps(self._meta(), default=_json_default)
        arrays["__meta__"] = np.array(meta)
        from pml.fitting.tables import atomic_write

        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "FittedModel":
        """Read a model written by :meth:`save` (the same as :func:`load`).

        Parameters
        ----------
        path : str or pathlib.Path
            The model file.

        Returns
        -------
        FittedModel
            The model, its report included.
        """
        return load(path)


def _json_default(o):
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    raise TypeError(f"cannot store {type(o).__name__} in a model file")


def load(path) -> FittedModel:
    """Read a model written by :meth:`FittedModel.save`.

    Parameters
    ----------
    path : str or pathlib.Path
        The model file (``.npz``).

    Returns
    -------
    FittedModel
        The model, its report included.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is not a pml model, is truncated or damaged, holds non-finite numbers, or comes from another pml
        or model-format version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such model file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files") or "__meta__" not in z.files:
                raise ModelFileError(f"{path} is not a pml model file (no pml metadata)")
            meta = json.loads(str(z["__meta__"]))
            arrays = {k[len("state."):]: z[k] for k in z.files if k.startswith("state.")}
    except ModelFileError:
        raise
    except (*NPZ_ERRORS, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a pml model file, or it is truncated or corrupted "
                             f"({type(exc).__name__}: {exc}); fit the model again (`pml fit`)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a pml model file")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("pml_version") != __version__:
        raise ModelFileError(f"{path} was saved by pml {meta.get('pml_version')} (model format "
                             f"{meta.get('format_version')}); this is pml {__version__} (model format "
                             f"{FORMAT_VERSION}): fit the model again with this version (`pml fit`)")
    method = meta.get("method")
    if method not in METHODS or set(arrays) != set(meta.get("state_keys", [])):
        raise ModelFileError(f"{path} is damaged or incomplete (method {method!r}, arrays {sorted(arrays)})")
    broken = sorted(k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.all(np.isfinite(v)))
    if broken:
        raise ModelFileError(f"{path} holds non-finite numbers (nan or inf) in {', '.join(broken)}: the model is "
                             "unusable (its fit overflowed float64); fit it again on rescaled data")
    try:
        if meta["params"].get("transform") is not None:
            from_dict(meta["params"]["transform"])
        report = PrecisionReport.from_dict(meta["report"])
        return FittedModel(method, arrays, meta["params"], meta["input_names"], meta["target_name"], report)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} is damaged or incomplete ({type(exc).__name__}: {exc})") from None

"""A fitted model (:class:`FittedModel`): predict, save to one ``.npz`` file, :func:`load` it back.

The file holds arrays plus JSON metadata with the pml and format versions, written to a temporary name and renamed. A
model file is data, checked before anything is built from it: uncompressed members whose sizes add up to the file's (so
reading it never takes more memory than its size), metadata capped in size and nesting, and every parameter and array
checked against what the method can have produced; the first problem raises :class:`ModelFileError` naming the field."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pml import __version__
from pml.fitting.checks import check_inputs, not_a_regular_file
from pml.fitting.datafiles import NPZ_ERRORS
from pml.fitting.methods import METHODS, rebuild_predictor
from pml.fitting.report import PrecisionReport
from pml.fitting.transforms import from_dict

FORMAT = "pml-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read as a model of this pml version."""


class FittedModel:
    """A fitted model: predict, save to one ``.npz`` file, load back; ``report`` says how precise it is.

    Made by :func:`fit` or :func:`load`, not by hand.

    Parameters
    ----------
    method : str
        The method's name (a key of ``pml.fitting.METHODS``).
    state : dict of str to numpy.ndarray
        The fitted numbers (coefficients, weights, nodes).
    params : dict
        The method's settings needed to predict.
    input_names, target_name : sequence of str, str
        The names of the d inputs and of the target.
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
        ModelFileError
            If the predictor of a loaded model cannot be rebuilt from its arrays.
        """
        X = check_inputs(X, self.input_names, what="X")
        if self._predict is None:
            try:
                self._predict = rebuild_predictor(METHODS[self.method], self.state, self.params)
            except (ValueError, ArithmeticError, IndexError, KeyError, TypeError, np.linalg.LinAlgError) as exc:
                raise ModelFileError(f"the saved {self.method} model cannot be rebuilt ({type(exc).__name__}: "
                                     f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}); fit it "
                                     "again") from None
        return np.asarray(self._predict(X), dtype=np.float64).reshape(-1)

    def _meta(self) -> dict:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "pml_version": __version__,
                "method": self.method, "params": self.params, "input_names": list(self.input_names),
                "target_name": self.target_name, "report": self.report.to_dict(), "state_keys": sorted(self.state)}

    def save(self, path) -> Path:
        """Write the model to one ``.npz`` file, atomically (a temporary file renamed over ``path`` when complete).

        Parameters
        ----------
        path : str or pathlib.Path
            The file to write (the name is used as given).

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        FileExistsError
            If ``path`` exists and is not a regular file (a folder, a link, a FIFO, a device).
        """
        path = Path(path)
        kind = not_a_regular_file(path)
        if kind:
            raise FileExistsError(errno.EEXIST, f"exists and is {kind}, not a regular file; pml replaces only "
                                                "regular files", str(path))
        arrays = {f"state.{k}": v for k, v in self.state.items()}
        meta = json.dumps(self._meta(), default=_json_default)
        arrays["__meta__"] = np.array(meta)
        from pml.fitting.datafiles import atomic_write

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


def _read_model_file(path: Path) -> tuple[Any, dict]:
    """The metadata (parsed JSON, unchecked) and the state arrays of a model file; :class:`ModelFileError` where it
    is not a regular file or not an intact ``.npz`` of the members a model has."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"no such model file: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"cannot read the model file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise ModelFileError(f"{path} is {not_a_regular_file(path) or 'not a regular file'}, not a model file")
    try:
        _check_members(path)
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files") or "__meta__" not in z.files:
                raise ModelFileError(f"{path} is not a pml model file (no pml metadata)")
            raw = z["__meta__"]
            if raw.dtype.kind != "U" or raw.ndim != 0:
                raise _Bad("__meta__", f"holds a {raw.dtype} array of shape {raw.shape}, not one JSON text")
            meta = json.loads(str(raw))
            arrays = {k[len("state."):]: z[k] for k in z.files if k.startswith("state.")}
    except ModelFileError:
        raise
    except _Bad as bad:
        raise _model_error(path, bad) from None
    except RecursionError:
        raise _model_error(path, _Bad("__meta__", f"the JSON nests deeper than {MAX_META_DEPTH} levels")) from None
    except (*NPZ_ERRORS, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not a pml model file, or it is truncated or corrupted "
                             f"({type(exc).__name__}: {exc}); fit the model again (`pml fit`)") from None
    return meta, arrays


def _check_header(path: Path, meta: Any, arrays: dict) -> str:
    """The method of a model file whose format, versions, array names and finite numbers are those pml writes;
    :class:`ModelFileError` saying which is not."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a pml model file")
    if meta.get("format_version") != FORMAT_VERSION or meta.get("pml_version") != __version__:
        raise ModelFileError(f"{path} was saved by pml {str(meta.get('pml_version'))[:40]} (model format "
                             f"{str(meta.get('format_version'))[:40]}); this is pml {__version__} (model format "
                             f"{FORMAT_VERSION}): fit the model again with this version (`pml fit`)")
    method = meta.get("method")
    keys = meta.get("state_keys")
    if (method not in METHODS or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys)
            or set(arrays) != set(keys)):
        raise ModelFileError(f"{path} is damaged or incomplete (method {str(method)[:40]!r}, arrays "
                             f"{sorted(arrays)[:10]})")
    broken = sorted(k for k, v in arrays.items() if v.dtype.kind in "fc" and not np.all(np.isfinite(v)))
    if broken:
        raise ModelFileError(f"{path} holds non-finite numbers (nan or inf) in {', '.join(broken)}: the model is "
                             "unusable (its fit overflowed float64); fit it again on rescaled data")
    return method


def load(path) -> FittedModel:
    """Read a model written by :meth:`FittedModel.save`; nothing in the file is trusted (the module's checks).

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
        If the file is not a pml model of this version, is damaged, or holds numbers the method cannot have produced
        (the message names the field).
    """
    path = Path(path)
    meta, arrays = _read_model_file(path)
    method = _check_header(path, meta, arrays)
    try:
        names, target = _check_meta(meta)
        params = meta["params"]
        _VALIDATORS[method](arrays, params, len(names))
        report = PrecisionReport.from_dict(_check_report(meta["report"], method, names, target))
        return FittedModel(method, arrays, params, names, target, report)
    except _Bad as bad:
        raise _model_error(path, bad) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} is damaged or incomplete ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------------- checks of a model file
MAX_META_CHARS = 1_000_000  # a model's metadata (report and parameters) is a few kB
MAX_META_DEPTH = 8  # it nests 4 levels: metadata > report > candidates > one candidate
# An interpolant's predictor is rebuilt from its stored rows (RBF: a dense n x n solve; simplex: a triangulation):
# a model holds at most the method's max_rows training rows, plus the held-out rows of a refit on all rows.
MAX_ROWS_FACTOR = 2


class _Bad(Exception):
    """One field of a model file that the method cannot have produced: ``field`` and why."""

    def __init__(self, field: str, why: str):
        super().__init__(f"{field}: {why}")


def _model_error(path: Path, bad: _Bad) -> ModelFileError:
    return ModelFileError(f"{path} is not a model pml can have written ({bad}); fit the model again (`pml fit`)")


def _check_members(path: Path) -> None:
    """Every zip member is one np.savez writes (``__meta__.npy``, ``state.*.npy``), stored uncompressed, and their
    sizes add up to at most the file's: reading the arrays then takes no more memory than the file's size."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ModelFileError(f"{path} is not a pml model file, or it is truncated or corrupted "
                             f"({type(exc).__name__}: {exc}); fit the model again (`pml fit`)") from None
    for info in members:
        name = info.filename
        if name != "__meta__.npy" and not (name.startswith("state.") and name.endswith(".npy")):
            raise _Bad(f"member {name[:60]!r}", "is not part of a pml model file")
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise _Bad(f"member {name[:60]!r}", f"is compressed ({info.compress_size} bytes for {info.file_size}); "
                                                "pml stores model arrays uncompressed")
        if name == "__meta__.npy" and info.file_size > 4 * MAX_META_CHARS + 1024:  # 4 bytes a character, a header
            raise _Bad("__meta__", f"takes {info.file_size} bytes; a pml model's metadata takes at most "
                                   f"{MAX_META_CHARS} characters")
    total = sum(m.compress_size for m in members)
    if total > path.stat().st_size:
        raise _Bad("zip members", f"declare {total} bytes of data in a file of {path.stat().st_size} bytes (members "
                                  "overlap)")


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest in a JSON value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if level > MAX_META_DEPTH:
                break
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_meta(meta: dict) -> tuple[list[str], str]:
    """The metadata's nesting, input names and target name (what every method shares)."""
    if _depth(meta) > MAX_META_DEPTH:
        raise _Bad("__meta__", f"the JSON nests deeper than {MAX_META_DEPTH} levels")
    names = meta.get("input_names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise _Bad("input_names", "must be a non-empty list of non-empty column names")
    if len(set(names)) != len(names):
        raise _Bad("input_names", "names a column more than once")
    target = meta.get("target_name")
    if not isinstance(target, str):
        raise _Bad("target_name", f"must be a column name, got {type(target).__name__}")
    params = meta.get("params")
    if not isinstance(params, dict):
        raise _Bad("params", f"must be a JSON object of the method's settings, got {type(params).__name__}")
    if "transform" in params:
        transform = params["transform"]
        if not (isinstance(transform, dict) and set(transform) == {"log_inputs", "target", "sign"}
                and isinstance(transform["log_inputs"], bool) and isinstance(transform["target"], str)
                and _is_number(transform["sign"])):
            raise _Bad("params.transform", "must be {log_inputs: true/false, target: name, sign: 1.0 or -1.0}")
        try:
            from_dict(transform)
        except ValueError as exc:
            raise _Bad("params.transform", str(exc)) from None
    return names, target


# The report's fields by their annotation in PrecisionReport: what JSON value each may hold.
_REPORT_KINDS: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "str | None": lambda v: v is None or isinstance(v, str),
    "float": _is_number,
    "float | None": lambda v: v is None or _is_number(v),
    "int": _is_int,
    "bool": lambda v: isinstance(v, bool),
    "tuple[str, ...]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "tuple[dict, ...]": lambda v: isinstance(v, list) and all(
        isinstance(x, dict) and isinstance(x.get("method"), str)
        and all(x is None or isinstance(x, (bool, int, float, str)) for x in x.values())
        and all(x.get(k) is None or _is_number(x[k]) for k in ("inner_rel_rmse", "seconds")) for x in v),
}


def _check_report(report: Any, method: str, names: list[str], target: str) -> dict:
    """The report's fields have the types PrecisionReport declares and agree with the model they describe."""
    if not isinstance(report, dict):
        raise _Bad("report", f"must be a JSON object, got {type(report).__name__}")
    for f in dataclasses.fields(PrecisionReport):
        if f.name not in report:
            if f.default is dataclasses.MISSING:
                raise _Bad(f"report.{f.name}", "is missing")
            continue
        ok = _REPORT_KINDS.get(str(f.type), lambda v: True)  # a field of another type: plain JSON, depth capped
        if not ok(report[f.name]):
            raise _Bad(f"report.{f.name}", f"{str(report[f.name])[:40]!r} is not a {f.type}")
    agree = {"method": method, "input_names": names, "target_name": target, "dim": len(names)}
    for key, value in agree.items():
        if report[key] != value:
            raise _Bad(f"report.{key}", f"{str(report[key])[:40]!r} disagrees with the model's {str(value)[:40]!r}")
    return report


def _params(params: dict, allowed: set[str]) -> None:
    extra = sorted(set(params) - allowed - {"transform"})
    missing = sorted(allowed - set(params))
    if extra or missing:
        raise _Bad("params", f"holds {sorted(params)}; the method stores {sorted(allowed)}")


def _int_param(params: dict, key: str, low: int) -> int:
    value = params[key]
    if not _is_int(value) or value < low:
        raise _Bad(f"params.{key}", f"{str(value)[:40]} is not an integer >= {low}")
    return value


def _array(state: dict, key: str, shape: tuple) -> np.ndarray:
    """``state[key]`` as float64 of ``shape`` (None: any size along that axis)."""
    a = state.get(key)
    if a is None:
        raise _Bad(f"state.{key}", "is missing")
    if a.dtype.kind != "f" or a.dtype.itemsize != 8:
        raise _Bad(f"state.{key}", f"holds {a.dtype} numbers, not float64")
    if a.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, a.shape)):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise _Bad(f"state.{key}", f"has shape {a.shape}, not {want}")
    return a


def _state_keys(state: dict, allowed: set[str]) -> None:
    if set(state) != allowed:
        raise _Bad("state", f"holds {sorted(state)[:10]}; the method stores {sorted(allowed)}")


def _positive(a: np.ndarray, key: str) -> None:
    if not np.all(a > 0):
        raise _Bad(f"state.{key}", "must be positive everywhere (it divides the inputs)")


def _rows(spec_name: str, n: int, key: str = "state.X") -> None:
    limit = METHODS[spec_name].max_rows
    if limit is not None and n > MAX_ROWS_FACTOR * limit:
        raise _Bad(key, f"holds {n} rows; {spec_name} models hold at most {MAX_ROWS_FACTOR * limit} (the method "
                        f"fits at most {limit} training rows)")


def _check_poly(state: dict, params: dict, d: int) -> None:
    _params(params, {"degree", "rcond"})
    _state_keys(state, {"coef", "centre", "half"})
    coef = _array(state, "coef", (None,))
    degree = _int_param(params, "degree", 0)
    if not (_is_number(params["rcond"]) and 0 <= params["rcond"] < 1):
        raise _Bad("params.rcond", f"{str(params['rcond'])[:40]} is not a number in [0, 1)")
    # C(d + k, k) coefficients: at least k + 1, so a degree beyond the stored coefficients is refused before the count
    if degree >= coef.size or math.comb(d + degree, degree) != coef.size:
        raise _Bad("params.degree", f"{degree} does not match the {coef.size} coefficients stored (state.coef): a "
                                    f"polynomial of total degree k in d = {d} inputs has C(d + k, k)")
    _array(state, "centre", (d,))
    _positive(_array(state, "half", (d,)), "half")


def _check_spline(state: dict, params: dict, d: int) -> None:
    _params(params, {"order"})
    _state_keys(state, {"t", "c"})
    if d != 1:
        raise _Bad("input_names", f"a spline model has one input, this file names {d}")
    t, c = _array(state, "t", (None,)), _array(state, "c", (None,))
    order = _int_param(params, "order", 0)
    if c.size != t.size - order - 1 or c.size < order + 1:
        raise _Bad("params.order", f"{order} does not match {t.size} knots (state.t) and {c.size} coefficients "
                                   "(state.c): a B-spline of order k has (knots - k - 1) >= k + 1 coefficients")
    if np.any(np.diff(t) < 0):
        raise _Bad("state.t", "the knots must not decrease")


def _check_mlp(activation: str, scaled: bool) -> Callable[[dict, dict, int], None]:
    """A feed-forward network's layers chain from d inputs to one output; ``scaled``: it stores the input map."""

    def check(state: dict, params: dict, d: int) -> None:
        _params(params, {"activation"})
        if params["activation"] != activation:
            raise _Bad("params.activation", f"{str(params['activation'])[:40]!r}; this method's networks use "
                                            f"{activation!r}")
        n_layers = sum(1 for k in state if k.startswith("W"))
        if n_layers < 1:
            raise _Bad("state", "holds no layer (W0, b0)")
        keys = {f"{p}{i}" for i in range(n_layers) for p in "Wb"} | ({"input_mean", "input_std"} if scaled else set())
        _state_keys(state, keys)
        width = d
        for i in range(n_layers):
            W = _array(state, f"W{i}", (None, width))
            width = W.shape[0]
            _array(state, f"b{i}", (width,))
        if width != 1:
            raise _Bad(f"state.W{n_layers - 1}", f"the last layer has {width} outputs, not 1")
        if scaled:
            _array(state, "input_mean", (d,))
            std = _array(state, "input_std", (d,))
            if not np.all(std != 0):
                raise _Bad("state.input_std", "must be nonzero (it divides the inputs)")

    return check


def _check_rbf(state: dict, params: dict, d: int) -> None:
    from pml.approx.classical import RBF

    _params(params, {"kernel", "degree"})
    _state_keys(state, {"X", "y", "box"})
    X = _array(state, "X", (None, d))
    n = X.shape[0]
    _array(state, "y", (n,))
    box = _array(state, "box", (d, 2))
    if not np.all(box[:, 1] > box[:, 0]):
        raise _Bad("state.box", "each row must be (low, high) with low < high")
    _rows("rbf", n)
    degree = _int_param(params, "degree", 0)
    try:
        RBF(params["kernel"], degree)
    except (ValueError, TypeError) as exc:
        raise _Bad("params.kernel" if "kernel must" in str(exc) else "params.degree", str(exc)) from None
    if degree >= n or math.comb(d + degree, degree) >= n:
        raise _Bad("params.degree", f"a degree-{degree} tail in d = {d} inputs needs more than the {n} rows stored")


def _check_simplex(state: dict, params: dict, d: int) -> None:
    _params(params, set())
    _state_keys(state, {"X", "y"})
    if d > METHODS["simplex"].d_max:
        raise _Bad("input_names", f"a simplex model has at most {METHODS['simplex'].d_max} inputs, this file names {d}")
    X = _array(state, "X", (None, d))
    _array(state, "y", (X.shape[0],))
    if X.shape[0] < d + 1:
        raise _Bad("state.X", f"holds {X.shape[0]} rows; a simplex in d = {d} needs at least {d + 1}")
    _rows("simplex", X.shape[0])


def _check_kernel(state: dict, params: dict, d: int) -> None:
    from pml.approx.kernel import KERNELS

    _params(params, {"kernel"})
    if params["kernel"] not in KERNELS:
        raise _Bad("params.kernel", f"{str(params['kernel'])[:40]!r} is not one of {list(KERNELS)}")
    _state_keys(state, {"lengths", "centre", "half", "X", "alpha", "scalars"})
    _positive(_array(state, "lengths", (d,)), "lengths")
    _array(state, "centre", (d,))
    _positive(_array(state, "half", (d,)), "half")
    X = _array(state, "X", (None, d))
    _array(state, "alpha", (X.shape[0],))
    scalars = _array(state, "scalars", (3,))
    if scalars[0] < 0:
        raise _Bad("state.scalars", "the nugget (first value) must not be negative")


_VALIDATORS: dict[str, Callable[[dict, dict, int], None]] = {
    "poly": _check_poly,
    "spline": _check_spline,
    "readout": _check_mlp("tanh", scaled=False),
    "rbf": _check_rbf,
    "simplex": _check_simplex,
    "kernel": _check_kernel,
    "deep-lm": _check_mlp("tanh", scaled=True),
    "lm-multistage": _check_mlp("tanh", scaled=False),
    "adam-tanh": _check_mlp("tanh", scaled=True),
    "adam-relu": _check_mlp("relu", scaled=True),
}

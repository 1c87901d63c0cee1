"""What ``pml fit`` and ``pml predict`` do once their arguments are parsed: read a table, fit or predict, write the
model or the predictions atomically, print the precision report. :mod:`pml.cli` parses the command line and calls these;
code that wants the commands' exact behaviour (the User's Guide chapter's CSV round trip) calls them without going
through the command-line layer. Both print to ``sys.stdout``/``sys.stderr`` and return the exit status (0: done; 2: an
error, explained on stderr, nothing written; 130: interrupted)."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from pml import fitting
from pml.fitting import checks, datafiles
from pml.fitting.budget import check_time_limit
from pml.fitting.transforms import of_params, transform_named

__all__ = ["fail", "fit_file", "output_problem", "predict_file"]


def fail(message: str) -> int:
    """Print ``pml: error: message`` on stderr and return the exit status 2."""
    print(f"pml: error: {message}", file=sys.stderr)
    return 2


def _input_columns(data, names: Sequence[str], target: str, inputs) -> tuple[list[str], str | None]:
    """The input columns (``--inputs``: a list or comma-separated names; default every column but the target) and
    what is wrong with them (None: nothing)."""
    if isinstance(inputs, str):
        inputs = [c.strip() for c in inputs.split(",")]
    inputs = list(inputs) if inputs else [c for c in names if c != target]
    if any(not c for c in inputs):
        return inputs, f"--inputs has an empty column name: {','.join(inputs)!r}; give comma-separated names"
    repeated = sorted({c for c in inputs if inputs.count(c) > 1})
    if repeated:
        return inputs, f"--inputs names {', '.join(map(repr, repeated))} more than once; give each input once"
    unknown = [c for c in inputs if c not in names]
    if unknown:
        return inputs, (f"{data}: no column(s) {', '.join(map(repr, unknown))} (--inputs); columns are: "
                        f"{', '.join(names)}")
    if target in inputs:
        return inputs, f"the target {target!r} cannot also be an input"
    if not inputs:
        return inputs, f"{data}: no input columns besides the target {target!r}"
    return inputs, None


def _data_floor(table, target: str, y: np.ndarray) -> float | None:
    """The relative RMSE to which a CSV's target is known from its digits, when above the float64 floor (said on
    stderr); None otherwise."""
    if not table.is_csv:
        return None
    with np.errstate(all="ignore"):  # values beyond float64 arithmetic are refused by fit() below
        rounded = datafiles.decimal_floor(table.raw[target], y)
        floor = fitting.float64_floor(y)
    if rounded is None or not rounded[0] > floor:
        return None
    print(f"pml: note: the target {target!r} is written with at most {rounded[1]} significant digits; "
          f"no fit can be more precise than about {rounded[0]:.1e}", file=sys.stderr)
    return rounded[0]


def fit_file(data: str | Path, target: str, out: str | Path, *, inputs: Sequence[str] | str | None = None,
             method: str = "auto", validation: float = 0.2, seed: int = 0, refit: bool = False,
             smooth: bool = True, quiet: bool = False, as_json: bool = False, time_limit: float | None = None,
             transform: str | None = None) -> int:
    """``pml fit DATA --target TARGET --out OUT``: fit a column of a data file and save the model.

    Fits column ``target`` to the ``inputs`` columns with :func:`pml.fitting.fit`, saves the model to ``out`` and
    prints the precision report. Errors are printed as one line on stderr, never raised.

    Parameters
    ----------
    data : str or pathlib.Path
        CSV with a header row, or ``.npz`` with one 1-D array per column.
    target : str
        The target column.
    out : str or pathlib.Path
        The model file to write.
    inputs : sequence of str or str, optional
        The input columns (a list or comma-separated names); default every other column.
    method, validation, seed, refit, smooth, time_limit, transform : optional
        As :func:`pml.fitting.fit` (the command's ``--method``, ``--validation``, ... options).
    quiet : bool, optional
        Print nothing on success.
    as_json : bool, optional
        Print the report as JSON.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for an error, 130 when interrupted.
    """
    try:
        checks.check_seed(seed)  # before reading the data
        if time_limit is not None:
            check_time_limit(time_limit)
        if transform is not None:
            try:
                transform_named(transform)
            except ValueError as exc:
                return fail(f"--transform: {exc}")
        problem = output_problem(out, {"data file": data}, "model.npz")
        if problem:
            return fail(problem)
        out = Path(out)
        table = datafiles.read_table(data)
        if target not in table.names:
            return fail(f"{data}: no column {target!r} (--target); columns are: {', '.join(table.names)}")
        inputs, problem = _input_columns(data, table.names, target, inputs)
        if problem:
            return fail(problem)
        y = table.column(target)
        X = np.column_stack([table.column(c) for c in inputs])
        data_floor = _data_floor(table, target, y)
        model = fitting.fit(X, y, method, validation=validation, seed=seed,
                            progress=(not quiet) and sys.stderr.isatty(), smooth=smooth,
                            refit=refit, input_names=inputs, target_name=target, data_floor=data_floor,
                            time_limit=time_limit, transform=transform)
        model.save(out)
    except (datafiles.TableError, fitting.FitError, OSError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("pml: interrupted; no model was written", file=sys.stderr)
        return 130
    print(json.dumps(model.report.to_dict(), indent=2, default=float) if as_json else model.report)
    if not as_json:
        print(f"\nmodel written to {out}")
    return 0


def predict_file(model: str | Path, data: str | Path, out: str | Path | None = None) -> int:
    """``pml predict MODEL DATA [--out OUT]``: DATA's columns plus a column of predictions named after the target.

    Parameters
    ----------
    model : str or pathlib.Path
        A model file written by ``pml fit``.
    data : str or pathlib.Path
        The inputs (CSV or ``.npz`` with the model's input columns).
    out : str or pathlib.Path, optional
        Where to write: ``.npz`` writes ``.npz``, any other name CSV; None (default): CSV on standard output. An
        existing path that is not a regular file (a link, a FIFO, a device) is refused (:func:`output_problem`).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for an error, 130 when interrupted.
    """
    def out_problem() -> str | None:
        return None if out is None else output_problem(out, {"data file": data, "model file": model},
                                                        "predictions.csv")

    try:
        if problem := out_problem():
            return fail(problem)
        try:
            fitted = fitting.load(model)
        except FileNotFoundError as exc:
            return fail(str(exc))
        table = datafiles.read_table(data)
        missing = [c for c in fitted.input_names if c not in table.names]
        if missing:
            return fail(f"{data} lacks the model's input column(s) {', '.join(map(repr, missing))}; the model "
                        f"takes {', '.join(fitted.input_names)}; the file has: {', '.join(table.names)}")
        X = np.column_stack([table.column(c) for c in fitted.input_names])
        with np.errstate(all="ignore"):  # an overflow far outside the training range is reported below
            y = fitted.predict(X)
        name = fitted.target_name
        if name in table.names:
            name = f"{name}_predicted"
            print(f"pml: note: {data} already has a column {fitted.target_name!r}; predictions go to {name!r}",
                  file=sys.stderr)
        columns = {c: table.text(c) for c in table.names}
        columns[name] = [repr(float(v)) for v in y]
        n_nan = int(np.sum(~np.isfinite(y)))
        if problem := out_problem():  # again: something may have taken the name while we worked
            return fail(problem)
        if out and str(out).lower().endswith(".npz"):
            arrays = {c: table.column(c) if c in fitted.input_names else np.asarray(table.raw[c]) for c in table.names}
            arrays[name] = y
            with datafiles.atomic_write(out, "wb") as fh:
                np.savez(fh, **arrays)
        elif out:
            with datafiles.atomic_write(out) as fh:
                datafiles.write_table(columns, fh)
        else:
            buf = io.StringIO()
            datafiles.write_table(columns, buf)
            sys.stdout.write(buf.getvalue())
    except BrokenPipeError:  # standard output closed early (`| head`): pml.cli.main ends quietly
        raise
    except (datafiles.TableError, fitting.FitError, fitting.ModelFileError, OSError) as exc:
        return fail(str(exc))
    except KeyboardInterrupt:
        print("pml: interrupted; nothing was written", file=sys.stderr)
        return 130
    if n_nan:
        print(f"pml: note: {_no_prediction(fitted, X, y)}", file=sys.stderr)
    if out:
        print(f"{y.size} predictions of {fitted.target_name!r} written to {out}", file=sys.stderr)
    return 0


def output_problem(out: str | Path, inputs: dict[str, str | Path] | None = None, example: str = "out.npz",
                   make_folder: bool = False) -> str | None:
    """Why ``--out`` cannot be written, checked before any work is done; None when it can."""
    if not str(out).strip():
        return f"--out is empty ({str(out)!r}); give a file name (e.g. {example})"
    out = Path(out)
    kind = checks.not_a_regular_file(out)
    if kind == "a folder":
        return f"--out {out} is a folder; give a file name (e.g. {out / example})"
    if kind:
        return (f"--out {out} exists and is {kind}, not a regular file; pml replaces only regular files: give "
                "another name")
    for what, path in (inputs or {}).items():
        if out.resolve() == Path(path).resolve():
            return f"--out {out} is the {what} itself; choose another name"
    folder = out.parent if str(out.parent) else Path(".")
    if make_folder:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if folder.exists() and not folder.is_dir():
            return f"cannot write {out}: {folder} is not a folder"
    elif not folder.is_dir():
        return f"cannot write {out}: no such folder {folder}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {out}: the folder {folder} is not writable"
    try:  # what the permissions do not tell: a read-only file system, /proc, a root-squashed share
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"cannot write {out}: no file can be created in {folder} ({exc.strerror or exc})"
    return None


def _no_prediction(fitted, X: np.ndarray, y: np.ndarray) -> str:
    """Why some predictions are not finite: an input <= 0 for a model fitted against log x, outside the convex hull
    (simplex's NaN) or an overflow far outside the training data's range."""
    bad = ~np.isfinite(y)
    n_bad, n_inf = int(bad.sum()), int(np.isinf(y).sum())
    method = fitted.method
    if of_params(fitted.params).log_inputs and np.any(X[bad] <= 0):
        return (f"{n_bad} of {y.size} rows got no prediction (nan): {int(np.sum(np.any(X <= 0, axis=1)))} of them "
                f"have an input <= 0, and the model was fitted against the logarithms of its inputs "
                f"({fitted.report.transform}), so it predicts only where every input is positive")
    if method == "simplex" and n_inf == 0:
        return (f"{n_bad} of {y.size} rows got no prediction (nan): they lie outside the training data's convex "
                "hull")
    return (f"{n_bad} of {y.size} rows got no finite prediction (nan or inf): the {method} model overflows float64 "
            "there; such rows lie far outside the range of the training data")

"""Reading and writing the data tables of ``pml fit`` / ``pml predict``: CSV with a header row, or ``.npz``.

Every problem is a :class:`TableError` whose message names the file, the column and the row (1-based data rows; the
header is line 1 of a CSV, so data row i is on line i + 1). Writes are atomic: a temporary file in the target folder is
renamed over the destination only once complete, so an error or Ctrl-C never leaves a half-written file."""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["NPZ_ERRORS", "Table", "TableError", "atomic_write", "decimal_floor", "read_table", "write_table"]

# What numpy.load raises for a truncated or corrupted .npz (a zip archive of .npy files): a broken archive, a
# failed checksum or decompression, a damaged .npy header, or a header whose shape asks for an impossible array.
NPZ_ERRORS = (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, NotImplementedError,
              MemoryError)


class TableError(ValueError):
    """A data file that cannot be used: missing, unreadable, a missing column, a non-numeric or missing value."""


@dataclass
class Table:
    """A data file's columns in file order, as :func:`read_table` returns them."""

    path: Path
    names: list[str]
    raw: dict[str, list[str] | np.ndarray]
    n_rows: int
    is_csv: bool

    def column(self, name: str) -> np.ndarray:
        """A column as float64; a TableError for an unknown column, a missing, non-numeric, NaN or infinite value."""
        if name not in self.raw:
            raise TableError(f"{self.path}: no column {name!r}; columns are: {', '.join(self.names)}")
        values = self.raw[name]
        if self.is_csv:
            out = np.empty(self.n_rows)
            for i, text in enumerate(values):
                s = text.strip()
                if not s:
                    raise TableError(f"{self.path}: missing value in column {name!r}, row {i + 1} (line {i + 2})")
                try:
                    out[i] = float(s)
                except ValueError:
                    raise TableError(f"{self.path}: non-numeric value {s!r} in column {name!r}, row {i + 1} "
                                     f"(line {i + 2})") from None
        else:
            arr = np.asarray(values)
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
                raise TableError(f"{self.path}: column {name!r} is not real numbers (dtype {arr.dtype})")
            out = arr.astype(np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            i = int(np.argmax(bad))
            where = f"row {i + 1} (line {i + 2})" if self.is_csv else f"row {i + 1}"
            raise TableError(f"{self.path}: column {name!r} has {int(bad.sum())} NaN or infinite values (first: "
                             f"{out[i]} at {where})")
        return out

    def text(self, name: str) -> list[str]:
        """A column as text for writing back unchanged (CSV: as read; .npz: repr of each value)."""
        values = self.raw[name]
        return list(values) if self.is_csv else [_fmt(v) for v in np.asarray(values).tolist()]


def _fmt(v) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def read_table(path) -> Table:
    """Read a CSV file (header row, comma-separated) or an ``.npz`` (one 1-D array per column, equal lengths)."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"no such file: {path}")
    if path.is_dir():
        raise TableError(f"{path} is a folder, not a data file")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise TableError(f"{path}: not a text CSV file (use a CSV with a header row, or .npz)") from None
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    except csv.Error as exc:  # e.g. a NUL byte
        raise TableError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise TableError(f"{path}: the file is empty (expected a header row and data rows)")
    names = [c.strip() for c in rows[0]]
    _check_header(path, names)
    if any(not c for c in names):
        raise TableError(f"{path}: the header row has an empty column name (line 1): {rows[0]}")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise TableError(f"{path}: repeated column name(s) in the header: {', '.join(dup)}")
    body = rows[1:]
    if not body:
        raise TableError(f"{path}: no data rows after the header")
    for i, r in enumerate(body):
        if len(r) != len(names):
            raise TableError(f"{path}: row {i + 1} (line {i + 2}) has {len(r)} fields, the header has {len(names)}")
    raw = {name: [r[j] for r in body] for j, name in enumerate(names)}
    return Table(path, names, raw, len(body), True)


def _check_header(path: Path, names: list[str]) -> None:
    """Refuse a first row that is not a header: another delimiter than the comma, or numbers (no header at all)."""
    if len(names) == 1:
        for sep, what in ((";", "semicolon"), ("\t", "tab")):
            if sep in names[0]:
                raise TableError(f"{path}: the header has one column {names[0]!r}, which contains a {what}: the file "
                                 f"looks {what}-separated; pml reads comma-separated CSV (convert it, e.g. "
                                 f"pandas.read_csv(path, sep={sep!r}).to_csv(new_path, index=False))")
    if all(_is_number(c) for c in names):
        raise TableError(f"{path}: the first line ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}) is "
                         "numbers: the file needs a header row naming the columns (e.g. x,y)")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_npz(path: Path) -> Table:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):  # a single .npy array saved under an .npz name
                raise TableError(f"{path}: a single array, not an .npz archive of named columns (save the columns "
                                 "with numpy.savez(path, x=..., y=...))")
            raw = {k: np.asarray(z[k]) for k in z.files}
    except TableError:
        raise
    except NPZ_ERRORS as exc:
        raise TableError(f"{path}: not a readable .npz file, truncated or corrupted ({type(exc).__name__}: "
                         f"{exc})") from None
    if not raw:
        raise TableError(f"{path}: the .npz file holds no arrays")
    for k, v in raw.items():
        if v.ndim != 1:
            raise TableError(f"{path}: array {k!r} has shape {v.shape}; every column must be a 1-D array")
    lengths = {k: v.size for k, v in raw.items()}
    if len(set(lengths.values())) != 1:
        raise TableError(f"{path}: arrays have different lengths: {lengths}")
    n = next(iter(lengths.values()))
    if n == 0:
        raise TableError(f"{path}: the arrays are empty")
    return Table(path, list(raw), raw, n, False)


_NUM = re.compile(r"^[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")


def decimal_floor(texts: Sequence[str], y: np.ndarray) -> tuple[float, int] | None:
    """(relative RMSE, significant digits) of targets written with k < 15 digits (each off by up to half a unit of its
    k-th digit), or None for 15 digits or more and integers."""
    digits = []
    for t in texts:
        m = _NUM.match(t.strip())
        if m is None:
            return None
        whole, frac, _ = m.groups()
        if frac is None and m.group(3) is None:
            continue  # an integer: exact
        sig = (whole + (frac or "")).lstrip("0")
        digits.append(len(sig))
    if not digits:
        return None
    k = max(digits)
    if k >= 15:
        return None
    y = np.asarray(y, dtype=np.float64)
    mag = np.floor(np.log10(np.where(y != 0, np.abs(y), 1.0)))
    unit = 10.0 ** (mag - k + 1)
    rms = float(np.sqrt(np.mean(unit**2 / 12.0)))
    y_rms = float(np.sqrt(np.mean(y**2)))
    return (rms / y_rms if y_rms > 0 else math.nan), k


def _mode_for(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Open a temporary file next to ``path``; on success rename it over ``path``, on any error remove it."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: no such folder {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.chmod(tmp, _mode_for(path))  # mkstemp makes 0600; give the file the mode a plain open() would
        with os.fdopen(fd, mode, **({"newline": ""} if "b" not in mode else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_table(columns: dict[str, list[str]], out) -> None:
    """Write text columns as CSV (header first)."""
    names = list(columns)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(names)
    n = len(next(iter(columns.values()))) if columns else 0
    for i in range(n):
        w.writerow([columns[c][i] for c in names])

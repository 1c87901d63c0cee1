"""Fit a transformed target against transformed inputs: the forms physics formulas take most often.

A product of powers is a plane in log y against log x; a Euclidean distance has a cone where it is zero, but its square
is a polynomial. Transforming before fitting is the core of AI Feynman's search (Udrescu & Tegmark, Science Advances 6,
eaay2631, 2020); here it is a pre-processing step of a numerical fit. A :class:`Transform` maps the inputs (as given or
logged) and the target (as given, squared or logged); predictions are mapped back. ``fit(method="auto")`` for d >= 3
tries the transforms the data admit (:func:`admissible`), every error measured on the target as given."""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["IDENTITY", "TRANSFORMS", "Transform", "admissible", "from_dict", "label", "of_params", "transform_named"]

_TARGETS = ("identity", "square", "log")


@dataclasses.dataclass(frozen=True)
class Transform:
    """Fit ``g(y)`` against ``h(x)``, predict ``g^-1(prediction)``."""

    log_inputs: bool = False
    target: str = "identity"
    sign: float = 1.0

    def __post_init__(self):
        if self.target not in _TARGETS:
            raise ValueError(f"unknown target transform {self.target!r}; valid: {', '.join(_TARGETS)}")
        if self.sign not in (1.0, -1.0):
            raise ValueError(f"sign must be 1.0 or -1.0, got {self.sign!r}")

    @property
    def name(self) -> str:
        """``"g(y) ~ h(x)"``, e.g. ``"log y ~ log x"``; ``-y`` where the sign is -1."""
        y = "y" if self.sign > 0 else "(-y)"
        g = {"identity": y, "square": f"{y}^2", "log": f"log {y}"}[self.target]
        return f"{g} ~ {'log x' if self.log_inputs else 'x'}"

    @property
    def is_identity(self) -> bool:
        """True when neither inputs nor target change."""
        return not self.log_inputs and self.target == "identity" and self.sign > 0

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """The inputs the method sees: ``X``, or ``log X`` (NaN where an input is not positive)."""
        if not self.log_inputs:
            return X
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(X > 0, np.log(np.where(X > 0, X, 1.0)), np.nan)

    def forward(self, y: np.ndarray) -> np.ndarray:
        """The target the method fits: ``g(y)``."""
        s = self.sign * y
        return {"identity": lambda: y, "square": lambda: s * s, "log": lambda: np.log(s)}[self.target]()

    def inverse(self, p: np.ndarray) -> np.ndarray:
        """Predictions of the target as given, from the method's predictions of ``g(y)``."""
        p = np.asarray(p, dtype=np.float64)
        if self.target == "identity":
            return p
        with np.errstate(over="ignore", invalid="ignore"):
            back = np.sqrt(np.maximum(p, 0.0)) if self.target == "square" else np.exp(p)
        return self.sign * back

    def wrap(self, predict):
        """``predict`` (of ``g(y)`` from ``h(x)``) as a predictor of y from x."""
        if self.is_identity:
            return predict
        return lambda X: self.inverse(np.asarray(predict(self.inputs(np.asarray(X, dtype=np.float64))),
                                                 dtype=np.float64).reshape(-1))

    def to_dict(self) -> dict:
        """The fields, for a model file."""
        return {"log_inputs": self.log_inputs, "target": self.target, "sign": self.sign}


IDENTITY = Transform()
# Tried in this order (a short time limit tries the first few): the target as given, then the two forms physics
# formulas take most often, products of powers and square roots of polynomials (distances), then a function of a
# product of powers, the log of a smooth function and the square root of a function of log x.
TRANSFORMS = (IDENTITY, Transform(True, "log"), Transform(False, "square"), Transform(True, "identity"),
              Transform(False, "log"), Transform(True, "square"))


def admissible(X: np.ndarray, y: np.ndarray, transforms=TRANSFORMS) -> list[Transform]:
    """The ``transforms`` that the data admit, with the target's sign set."""
    positive_x = bool(np.all(X > 0))
    sign = -1.0 if np.all(y <= 0) else 1.0
    s = sign * y
    out = []
    for t in transforms:
        if t.log_inputs and not positive_x:
            continue
        if t.target == "identity":
            out.append(dataclasses.replace(t, sign=1.0))
            continue
        if np.any(s < 0) or (t.target == "log" and np.any(s == 0)):
            continue
        t = dataclasses.replace(t, sign=sign)
        with np.errstate(all="ignore"):
            g = t.forward(y)
        if np.all(np.isfinite(g)) and np.any(g != g[0]):
            out.append(t)
    return out


def transform_named(name: str) -> Transform:
    """The transform called ``name`` (:attr:`Transform.name`, e.g. ``"log y ~ log x"``; ``"-y"`` forms too)."""
    known = {t.name: t for base in TRANSFORMS for t in (base, dataclasses.replace(base, sign=-1.0))
             if not (t.target == "identity" and t.sign < 0)}
    key = " ".join(str(name).split())
    if key not in known:
        raise ValueError(f"unknown transform {name!r}; valid: {', '.join(repr(t.name) for t in TRANSFORMS)} "
                         "(with (-y) for a negative target, e.g. 'log (-y) ~ log x')")
    return known[key]


def from_dict(fields: dict) -> Transform:
    """The transform stored by :meth:`Transform.to_dict`."""
    try:
        return Transform(bool(fields["log_inputs"]), str(fields["target"]), float(fields["sign"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad transform fields {fields!r}") from exc


def of_params(params: dict) -> Transform:
    """The transform a fitted model's parameters hold (stored by :meth:`Transform.to_dict`), else the identity."""
    return from_dict(params["transform"]) if params.get("transform") else IDENTITY


def label(method: str, transform: str = "y ~ x") -> str:
    """A fit's name in reports: the method, and what it fitted unless that is y against x."""
    return method if transform == IDENTITY.name else f"{method} [{transform}]"

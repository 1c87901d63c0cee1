"""Target functions of the paper: the Feynman equations, the hard-coded targets, and their computation graphs.

Paper §2 (the AI Feynman equations as targets), §3 and Fig. 3 (modular networks), Fig. 6a (I.11.19). Formulas, variables
and ranges are those of the authors' table (ejmichaud/precision-ml, ``equations.csv``), parsed with sympy and vectorised
with ``lambdify`` as their scripts do. ``REGISTRY`` / :func:`get` / :func:`ids` hold every target the book uses, written
here by hand; the public AI Feynman table is only read for cross-checks (:func:`load_feynman_csv`).
:meth:`Equation.graph` splits a formula into the binary computation graph a modular network mirrors; its maximum arity
is the paper's d*."""

from __future__ import annotations

import ast
import csv
import dataclasses
import functools
import keyword
import math
import re
import types
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr, standard_transformations

__all__ = [
    "CsvLoad",
    "Equation",
    "EquationError",
    "ExpressionGraph",
    "GraphNode",
    "REGISTRY",
    "UndeclaredSymbolError",
    "UnknownEquationError",
    "get",
    "ids",
    "load_feynman_csv",
]


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


class EquationError(ValueError):
    """An equation definition is invalid (formula, variables, ranges or structure)."""


class UndeclaredSymbolError(EquationError):
    """The formula uses symbols that are not among the declared variables."""

    def __init__(self, message: str, undeclared: Sequence[str], declared: Sequence[str]):
        super().__init__(message)
        self.undeclared = tuple(undeclared)
        self.declared = tuple(declared)


class UnknownEquationError(KeyError, ValueError):
    """``get`` was asked for an id that is not in the registry; the message lists the valid ids."""

    def __str__(self) -> str:  # KeyError would repr() the message; show it as written
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------------------------------------------------
# Formula parsing
# ---------------------------------------------------------------------------------------------------------------------

# Functions a formula may call, by the name used in the formula (the AI Feynman table writes ``ln`` and ``arcsin``).
_FUNCTIONS: dict[str, Callable] = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "asin": sp.asin,
    "acos": sp.acos,
    "atan": sp.atan,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "exp": sp.exp,
    "log": sp.log,
    "ln": sp.log,
    "sqrt": sp.sqrt,
    "Abs": sp.Abs,
    "abs": sp.Abs,
}
_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi}
_BINARY_OPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_UNARY_OPS = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}


def _symbol(name: str) -> sp.Symbol:
    """The one symbol used for a variable (or a graph node output) everywhere in this module."""
    return sp.Symbol(name, real=True)


def _check_syntax(formula: str, variables: Sequence[str]) -> ast.expr:
    """Allow only arithmetic, known functions, names and numbers in ``formula``: a guard for ``parse_expr``, which
    evaluates."""
    if not isinstance(formula, str) or not formula.strip():
        raise EquationError(f"formula must be a non-empty string, got {formula!r}")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as exc:
        raise EquationError(f"formula {formula!r} is not a valid expression ({exc.msg})") from None
    declared = set(variables)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Expression, ast.Load, ast.operator, ast.unaryop)):
            if isinstance(node, ast.operator) and type(node) not in _BINARY_OPS:
                raise EquationError(f"formula {formula!r} uses an unsupported operator {type(node).__name__}; "
                                    "valid: + - * / **")
            if isinstance(node, ast.unaryop) and type(node) not in _UNARY_OPS:
                raise EquationError(f"formula {formula!r} uses an unsupported unary operator {type(node).__name__}")
            continue
        if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Name)):
            continue
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise EquationError(f"formula {formula!r} contains the non-numeric constant {node.value!r}")
            continue
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name is None or name in declared or name not in _FUNCTIONS:
                raise EquationError(f"formula {formula!r} calls {ast.unparse(node.func)!r}, which is not a known "
                                    f"function; valid: {sorted(_FUNCTIONS)}")
            if len(node.args) != 1 or node.keywords:
                raise EquationError(f"formula {formula!r}: {name}() takes exactly one positional argument")
            continue
        raise EquationError(f"formula {formula!r} contains unsupported syntax {type(node).__name__}; "
                            "only numbers, variables, + - * / ** and one-argument functions are allowed")
    return tree.body


def _used_names(tree: ast.expr) -> set[str]:
    """Names used as values (not as called functions) in a checked formula tree."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called}


@functools.lru_cache(maxsize=None)
def _parse(formula: str, variables: tuple[str, ...]) -> sp.Expr:
    """sympy expression of ``formula``; every declared variable is a real Symbol, whatever sympy calls that name."""
    tree = _check_syntax(formula, variables)
    undeclared = sorted(_used_names(tree) - set(variables) - set(_CONSTANTS))
    if undeclared:
        raise UndeclaredSymbolError(
            f"formula {formula!r} uses undeclared symbol(s) {undeclared}; declared variables: {list(variables)}",
            undeclared, variables)
    global_dict = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
                   "Function": sp.Function, **_FUNCTIONS, **_CONSTANTS}
    local_dict = {name: _symbol(name) for name in variables}
    expr = parse_expr(formula.strip(), local_dict=local_dict, global_dict=global_dict,
                      transformations=standard_transformations)
    extra = sorted(str(s) for s in expr.free_symbols if str(s) not in set(variables))
    if extra:  # unreachable after the AST check, kept as a guard
        raise UndeclaredSymbolError(
            f"formula {formula!r} uses undeclared symbol(s) {extra}; declared variables: {list(variables)}",
            extra, variables)
    return expr


@functools.lru_cache(maxsize=None)
def _compile(formula: str, variables: tuple[str, ...]) -> Callable:
    """``lambdify`` of the parsed formula to NumPy, one positional argument per variable (cached)."""
    symbols = [_symbol(name) for name in variables]
    return sp.lambdify(symbols, _parse(formula, variables), modules="numpy", dummify=True)


@functools.lru_cache(maxsize=None)
def _compile_node(expr: sp.Expr, inputs: tuple[str, ...]) -> Callable:
    symbols = [_symbol(name) for name in inputs]
    return sp.lambdify(symbols, expr, modules="numpy", dummify=True)


def _as_inputs(X, dim: int, what: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and dim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != dim:
        raise ValueError(f"{what} expects X of shape (n, {dim}), got shape {X.shape}")
    return X


def _evaluate(fn: Callable, X: np.ndarray) -> np.ndarray:
    y = np.asarray(fn(*X.T), dtype=np.float64)
    return np.array(np.broadcast_to(y, (X.shape[0],)), dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------------------
# Computation graph
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GraphNode:
    """One operation of the computation graph: a module of a modular network (paper §3, Fig. 3)."""

    name: str
    inputs: tuple[str, ...]
    expr: sp.Expr

    @property
    def arity(self) -> int:
        return len(self.inputs)

    def __call__(self, *args) -> np.ndarray:
        """Evaluate the node on one float64 array per input."""
        if len(args) != self.arity:
            raise ValueError(f"node {self.name!r} takes {self.arity} inputs {list(self.inputs)}, got {len(args)}")
        return np.asarray(_compile_node(self.expr, self.inputs)(*args), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ExpressionGraph:
    """The computation graph of a formula, nodes in topological order; ``max_arity`` is the paper's d* (§3)."""

    inputs: tuple[str, ...]
    nodes: tuple[GraphNode, ...]

    @property
    def output(self) -> str:
        return self.nodes[-1].name

    @property
    def arities(self) -> tuple[int, ...]:
        return tuple(node.arity for node in self.nodes)

    @property
    def max_arity(self) -> int:
        """The arity d* of the graph, the largest number of inputs of any node."""
        return max(self.arities)

    def node(self, name: str) -> GraphNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r}; nodes: {[n.name for n in self.nodes]}")

    def evaluate(self, X) -> np.ndarray:
        """Compute the output node by node."""
        X = _as_inputs(X, len(self.inputs), "ExpressionGraph.evaluate")
        values = {name: X[:, j] for j, name in enumerate(self.inputs)}
        for node in self.nodes:
            values[node.name] = np.broadcast_to(node(*(values[i] for i in node.inputs)), (X.shape[0],))
        return np.array(values[self.output], dtype=np.float64)


class _GraphBuilder:
    """Cut a formula's Python syntax tree (which keeps the written grouping, unlike sympy) into nodes: an operation
    whose operands depend on two or more references is a node; unary functions, constants and scaling fold into a
    neighbour."""

    def __init__(self, variables: tuple[str, ...]):
        self.variables = variables
        self.order = {name: j for j, name in enumerate(variables)}
        self.nodes: list[list] = []  # [name, inputs, expr], mutable while folding
        self.names: dict[str, int] = {}

    def _new_name(self) -> str:
        k = len(self.nodes)
        name = f"node{k}"
        while name in self.order:
            name = "_" + name
        return name

    def _fold(self, expr: sp.Expr, refs: frozenset[str]) -> sp.Expr:
        """If ``expr`` is a unary wrapper around a single node's output, move it into that node."""
        if len(refs) == 1:
            (ref,) = refs
            if ref in self.names and expr != _symbol(ref):
                entry = self.nodes[self.names[ref]]
                entry[2] = expr.xreplace({_symbol(ref): entry[2]})
                return _symbol(ref)
        return expr

    def _make_node(self, expr: sp.Expr, refs: frozenset[str]) -> tuple[sp.Expr, frozenset[str]]:
        name = self._new_name()
        inputs = tuple(sorted((r for r in refs if r in self.order), key=self.order.get))
        inputs += tuple(sorted((r for r in refs if r in self.names), key=self.names.get))
        self.names[name] = len(self.nodes)
        self.nodes.append([name, inputs, expr])
        return _symbol(name), frozenset([name])

    def visit(self, node: ast.expr) -> tuple[sp.Expr, frozenset[str]]:
        if isinstance(node, ast.Constant):
            value = sp.Integer(node.value) if isinstance(node.value, int) else sp.Float(node.value)
            return value, frozenset()
        if isinstance(node, ast.Name):
            if node.id in self.order:
                return _symbol(node.id), frozenset([node.id])
            return _CONSTANTS[node.id], frozenset()
        if isinstance(node, ast.UnaryOp):
            expr, refs = self.visit(node.operand)
            return _UNARY_OPS[type(node.op)](expr), refs
        if isinstance(node, ast.Call):
            expr, refs = self.visit(node.args[0])
            return _FUNCTIONS[node.func.id](expr), refs
        if isinstance(node, ast.BinOp):
            left, lrefs = self.visit(node.left)
            right, rrefs = self.visit(node.right)
            refs = lrefs | rrefs
            if lrefs and rrefs and len(refs) >= 2:
                left, right = self._fold(left, lrefs), self._fold(right, rrefs)
                return self._make_node(_BINARY_OPS[type(node.op)](left, right), refs)
            return _BINARY_OPS[type(node.op)](left, right), refs
        raise EquationError(f"unsupported syntax {type(node).__name__}")  # excluded by _check_syntax

    def build(self, tree: ast.expr) -> ExpressionGraph:
        expr, refs = self.visit(tree)
        if not refs:
            raise EquationError("a constant formula has no computation graph")
        (ref,) = refs  # every operand with >= 2 references became a node
        if ref in self.names:
            self._fold(expr, refs)
        else:  # a unary function of one variable: one node of arity 1
            self._make_node(expr, refs)
        nodes = tuple(GraphNode(name, inputs, expr) for name, inputs, expr in self.nodes)
        return ExpressionGraph(inputs=self.variables, nodes=nodes)


# ---------------------------------------------------------------------------------------------------------------------
# Equation
# ---------------------------------------------------------------------------------------------------------------------

_FORBIDDEN_NAMES = set(_FUNCTIONS) | {"Integer", "Float", "Rational", "Symbol", "Function"}


@dataclasses.dataclass(frozen=True)
class Equation:
    """One regression target y = f(x_1, ..., x_d) with a uniform sampling range per variable (paper §2); ``structure``,
    when given, is the same function grouped as the paper's modular networks (Fig. 3) and only changes :meth:`graph`."""

    id: str
    formula: str
    variables: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    output: str
    description: str = ""
    structure: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise EquationError(f"equation id must be a non-empty string, got {self.id!r}")
        if isinstance(self.variables, str):
            raise EquationError(f"{self.id}: variables must be a sequence of names, got the string {self.variables!r}")
        variables = tuple(self.variables)
        object.__setattr__(self, "variables", variables)
        if not variables:
            raise EquationError(f"{self.id}: an equation needs at least one variable")
        for name in variables:
            if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
                raise EquationError(f"{self.id}: variable name {name!r} is not a valid identifier")
            if name in _FORBIDDEN_NAMES:
                raise EquationError(f"{self.id}: variable name {name!r} clashes with a function name; "
                                    f"reserved: {sorted(_FORBIDDEN_NAMES)}")
        duplicates = sorted({n for n in variables if variables.count(n) > 1})
        if duplicates:
            raise EquationError(f"{self.id}: duplicate variable name(s) {duplicates}")
        try:
            ranges = tuple((float(lo), float(hi)) for lo, hi in self.ranges)
        except (TypeError, ValueError):
            raise EquationError(f"{self.id}: ranges must be (low, high) number pairs, got {self.ranges!r}") from None
        object.__setattr__(self, "ranges", ranges)
        if len(ranges) != len(variables):
            raise EquationError(f"{self.id}: {len(variables)} variables {list(variables)} but {len(ranges)} ranges")
        for name, (lo, hi) in zip(variables, ranges):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise EquationError(f"{self.id}: range of {name!r} must be finite with low < high, got ({lo}, {hi})")
        try:
            _parse(self.formula, variables)
        except UndeclaredSymbolError as exc:
            raise UndeclaredSymbolError(f"{self.id}: {exc}", exc.undeclared, exc.declared) from None
        except EquationError as exc:
            raise EquationError(f"{self.id}: {exc}") from None
        if self.structure is not None:
            self._check_structure()

    def _check_structure(self) -> None:
        try:
            _parse(self.structure, self.variables)
        except EquationError as exc:
            raise EquationError(f"{self.id}: structure: {exc}") from None
        # Same function? Compare at fixed points of the central box (explicit seed, no global RNG).
        X = np.random.default_rng(0).uniform(size=(16, self.dim))
        low, high = np.array(self.ranges).T
        X = low + (0.1 + 0.8 * X) * (high - low)
        with np.errstate(all="ignore"):
            a = _evaluate(_compile(self.formula, self.variables), X)
            b = _evaluate(_compile(self.structure, self.variables), X)
        ok = np.isfinite(a)
        if not ok.any() or not np.allclose(a[ok], b[ok], rtol=1e-9, atol=1e-12) or not np.isfinite(b[ok]).all():
            raise EquationError(f"{self.id}: structure {self.structure!r} does not equal formula {self.formula!r}")

    @property
    def dim(self) -> int:
        """Number of input variables d."""
        return len(self.variables)

    @property
    def sympy_expr(self) -> sp.Expr:
        """The formula as a sympy expression in real symbols named after the variables."""
        return _parse(self.formula, self.variables)

    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        """The sympy symbols of the variables, in column order."""
        return tuple(_symbol(name) for name in self.variables)

    @property
    def func(self) -> Callable[[np.ndarray], np.ndarray]:
        """The vectorised target, X of shape (n, dim) -> y of shape (n,), float64 (compiled once per formula)."""
        compiled = _compile(self.formula, self.variables)
        dim, what = self.dim, f"equation {self.id}"

        def f(X) -> np.ndarray:
            return _evaluate(compiled, _as_inputs(X, dim, what))

        f.__name__ = f"equation_{re.sub(r'[^0-9A-Za-z_]', '_', self.id)}"
        f.__doc__ = f"{self.id}: {self.output} = {self.formula}"
        return f

    def __call__(self, X) -> np.ndarray:
        return self.func(X)

    def graph(self) -> ExpressionGraph:
        """The computation graph of ``structure`` (or ``formula``): a node per binary operation of two inputs."""
        tree = _check_syntax(self.structure or self.formula, self.variables)
        return _GraphBuilder(self.variables).build(tree)


# ---------------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------------


def _eq(eq_id, output, formula, variables, description, structure=None) -> Equation:
    names = tuple(name for name, _, _ in variables)
    ranges = tuple((lo, hi) for _, lo, hi in variables)
    return Equation(eq_id, formula, names, ranges, output, description, structure)


def _box(names: str, lo: float, hi: float) -> list[tuple[str, float, float]]:
    return [(name, lo, hi) for name in names.split()]


def _build_registry() -> Mapping[str, Equation]:
    entries = [
        # Targets of the paper's figures; variables and ranges as in the AI Feynman table (the authors' equations.csv).
        _eq("Z.001", "y", "x**2", _box("x", -1, 1), "y = x^2 (Fig. 2 d=1, Fig. 8 bottom)"),
        _eq("Z.008", "f", "x*y", _box("x y", 1, 5), "product of two numbers (Figs. 1b, 9 top)"),
        _eq("Z.009", "f", "exp(x)", _box("x", -1, 1), "exponential (same function as Fig. 4a)"),
        _eq("II.8.31", "E_den", "epsilon*Ef**2/2", _box("epsilon Ef", 1, 5),
            "energy density of an electric field (Fig. 2 d=2)"),
        _eq("I.30.5", "theta", "arcsin(lambd/(n*d))", [("lambd", 1, 2), ("d", 2, 5), ("n", 1, 5)],
            "diffraction angle of a grating (Figs. 2, 4c, 5)"),
        _eq("I.8.14", "d", "sqrt((x2-x1)**2+(y2-y1)**2)", _box("x1 x2 y1 y2", 1, 5),
            "distance between two points in the plane (Figs. 2, 3, 5)",
            # Fig. 3 modules: A(x1, x2) = (x2 - x1)**2, B(y1, y2) = (y2 - y1)**2, C(A, B) = sqrt(A + B).
            structure="sqrt((x2 - x1)**2 + (y2 - y1)**2)"),
        _eq("I.44.4", "E_n", "n*kb*T*ln(V2/V1)", _box("n kb T V1 V2", 1, 5),
            "work of isothermal expansion of an ideal gas (Figs. 2, 5)"),
        _eq("II.6.15a", "Ef", "p_d/(4*pi*epsilon)*3*z/r**5*sqrt(x**2+y**2)", _box("epsilon p_d r x y z", 1, 3),
            "field of an electric dipole (Figs. 2, 3, 5)",
            # Fig. 3 modules: mul1(p_d, z), rnorm(x, y), mul2(mul1, rnorm), eps_r5(epsilon, r), div(mul2, eps_r5).
            structure="((3*p_d*z/(4*pi))*sqrt(x**2 + y**2))/(epsilon*r**5)"),
        _eq("I.11.19", "A", "x1*y1+x2*y2+x3*y3", _box("x1 x2 x3 y1 y2 y3", 1, 5),
            "dot product of two 3-vectors (Figs. 6a, 9 bottom)", structure="(x1*y1 + x2*y2) + x3*y3"),
        # Run in the configs (highd-simplex-0) but never plotted.
        _eq("I.10.7", "m", "m_0/sqrt(1-v**2/c**2)", [("m_0", 1, 5), ("v", 1, 2), ("c", 3, 10)],
            "relativistic mass"),
        _eq("I.39.22", "pr", "n*kb*T/V", _box("n T V kb", 1, 5), "ideal gas pressure"),
        _eq("I.12.11", "F", "q*(Ef+B*v*sin(theta))", _box("q Ef B v theta", 1, 5), "Lorentz force"),
        # Hard-coded targets that are not table rows (the authors' notebooks define them inline).
        _eq("cos2x", "y", "cos(2*x)", [("x", 3, 6)], "y = cos(2x) on [3, 6] (Fig. 1a)"),
        _eq("exp_x", "y", "exp(x)", _box("x", -1, 1), "y = e^x on [-1, 1] (Fig. 4a)"),
        _eq("exp_xy", "z", "exp(x*y)", _box("x y", -1, 1), "z = e^(xy) on [-1, 1]^2 (Fig. 4b)"),
        # Further AI Feynman equations the paper does not use (for applying the method chart to new targets).
        _eq("I.6.2a", "f", "exp(-theta**2/2)/sqrt(2*pi)", [("theta", 1, 3)], "standard normal density"),
        _eq("I.12.1", "F", "mu*Nn", _box("mu Nn", 1, 5), "friction force"),
        _eq("I.14.4", "U", "1/2*k_spring*x**2", _box("k_spring x", 1, 5), "energy of a spring"),
        _eq("I.25.13", "Volt", "q/C", _box("q C", 1, 5), "voltage across a capacitor"),
        _eq("I.29.4", "k", "omega/c", _box("omega c", 1, 10), "wave number"),
        _eq("I.34.27", "E_n", "(h/(2*pi))*omega", _box("omega h", 1, 5), "photon energy"),
        _eq("I.39.1", "E_n", "3/2*pr*V", _box("pr V", 1, 5), "internal energy of a monatomic gas"),
        _eq("II.3.24", "flux", "Pwr/(4*pi*r**2)", _box("Pwr r", 1, 5), "flux of a point source"),
        _eq("I.12.4", "Ef", "q1*r/(4*pi*epsilon*r**3)", _box("q1 epsilon r", 1, 5), "field of a point charge"),
        _eq("I.43.31", "D", "mob*kb*T", _box("mob T kb", 1, 5), "Einstein diffusion relation"),
        _eq("II.27.16", "flux", "epsilon*c*Ef**2", _box("epsilon c Ef", 1, 5), "energy flux of a plane wave"),
        _eq("III.15.12", "E_n", "2*U*(1-cos(k*d))", _box("U k d", 1, 5), "tight-binding band energy"),
        _eq("I.13.4", "K", "1/2*m*(v**2+u**2+w**2)", _box("m v u w", 1, 5), "kinetic energy in 3D"),
        _eq("I.29.16", "x", "sqrt(x1**2+x2**2-2*x1*x2*cos(theta1-theta2))", _box("x1 x2 theta1 theta2", 1, 5),
            "law of cosines"),
        _eq("I.13.12", "U", "G*m1*m2*(1/r2-1/r1)", _box("m1 m2 r1 r2 G", 1, 5), "gravitational potential difference"),
        _eq("II.35.21", "M", "n_rho*mom*tanh(mom*B/(kb*T))", _box("n_rho mom B kb T", 1, 5),
            "magnetisation of a paramagnet"),
    ]
    registry: dict[str, Equation] = {}
    for eq in entries:
        if eq.id in registry:
            raise EquationError(f"duplicate registry id {eq.id!r}")
        registry[eq.id] = eq
    return types.MappingProxyType(registry)


REGISTRY: Mapping[str, Equation] = _build_registry()


def ids() -> list[str]:
    """Every registry id, in registration order (paper figures first)."""
    return list(REGISTRY)


def get(eq_id: str) -> Equation:
    """The registry equation ``eq_id``."""
    try:
        return REGISTRY[eq_id]
    except (KeyError, TypeError):
        raise UnknownEquationError(f"unknown equation id {eq_id!r}; valid ids: {', '.join(REGISTRY)}") from None


# ---------------------------------------------------------------------------------------------------------------------
# AI Feynman CSV loader
# ---------------------------------------------------------------------------------------------------------------------

_REQUIRED_COLUMNS = ("Equation", "Output", "Formula", "# variables", "v1_name", "v1_low", "v1_high")


@dataclasses.dataclass(frozen=True)
class CsvLoad:
    """Result of :func:`load_feynman_csv`: the rows that make valid equations, and a message per bad row."""

    equations: dict[str, Equation]
    errors: dict[str, str]


def _variable_slots(fieldnames: Iterable[str]) -> list[int]:
    slots = sorted(int(m.group(1)) for f in fieldnames if (m := re.fullmatch(r"v(\d+)_name", f or "")))
    return slots


def _row_equation(row: dict[str, str], slots: list[int], columns: set[str]) -> Equation:
    """Build one equation from a CSV row; raises EquationError naming every problem found."""
    eq_id = row["Equation"].strip()
    formula = (row.get("Formula") or "").strip()
    problems: list[str] = []

    raw_count = (row.get("# variables") or "").strip()
    try:
        count_f = float(raw_count)
        if not count_f.is_integer() or count_f < 1:
            raise ValueError
        n_declared = int(count_f)
    except ValueError:
        raise EquationError(f"'# variables' must be a positive integer, got {raw_count!r}") from None

    filled = [(k, (row.get(f"v{k}_name") or "").strip()) for k in slots]
    filled = [(k, name) for k, name in filled if name]
    names = [name for _, name in filled]
    if [k for k, _ in filled] != list(range(1, len(filled) + 1)):
        problems.append(f"variable name columns are not contiguous from v1 (filled: {[f'v{k}' for k, _ in filled]})")
    if len(filled) != n_declared:
        problems.append(f"'# variables' is {n_declared} but {len(filled)} variable name column(s) are filled "
                        f"({', '.join(names) or 'none'})")
    missing_slots = [k for k in range(1, n_declared + 1) if f"v{k}_name" not in columns]
    if missing_slots:
        problems.append(f"'# variables' is {n_declared} but the table has no column(s) "
                        f"{', '.join(f'v{k}_name' for k in missing_slots)}")

    declared = [(k, name) for k, name in filled if k <= n_declared]
    ranges = []
    for k, name in declared:
        pair = []
        for side in ("low", "high"):
            raw = (row.get(f"v{k}_{side}") or "").strip()
            try:
                pair.append(float(raw))
            except ValueError:
                problems.append(f"v{k}_{side} of {name!r} is not a number: {raw!r}")
        ranges.append(tuple(pair))
    declared_names = tuple(name for _, name in declared)

    try:
        tree = _check_syntax(formula, declared_names)
        undeclared = sorted(_used_names(tree) - set(declared_names) - set(_CONSTANTS))
        if undeclared:
            problems.append(f"formula {formula!r} uses undeclared symbol(s) {undeclared}; "
                            f"declared variables: {list(declared_names)}")
    except EquationError as exc:
        problems.append(str(exc))

    if problems:
        raise EquationError("; ".join(problems))
    description = f"AI Feynman table row {(row.get('Number') or '').strip() or '?'}"
    return Equation(eq_id, formula, declared_names, tuple(ranges), (row.get("Output") or "").strip() or "y",
                    description)


def load_feynman_csv(path) -> CsvLoad:
    """Read a table in the public AI Feynman format (``equations.csv``; the authors' copy has rows with
    ``#NAME?`` formulas and undeclared variables, e.g. I.18.12 uses ``theta``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"AI Feynman table not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fieldnames = [f.strip() if f else f for f in (reader.fieldnames or [])]
        missing = [c for c in _REQUIRED_COLUMNS if c not in fieldnames]
        if missing:
            raise ValueError(f"{path}: missing required column(s) {missing}; found columns {fieldnames}")
        reader.fieldnames = fieldnames
        slots = _variable_slots(fieldnames)
        columns = set(fieldnames)
        equations: dict[str, Equation] = {}
        errors: dict[str, str] = {}
        for row in reader:
            if all(not (v or "").strip() for k, v in row.items() if isinstance(v, str)):
                continue  # blank line
            eq_id = (row.get("Equation") or "").strip()
            key = eq_id or f"line {reader.line_num}"
            if not eq_id:
                errors[key] = "empty Equation id"
                continue
            if eq_id in equations or eq_id in errors:
                errors[f"{eq_id} (line {reader.line_num})"] = f"duplicate Equation id {eq_id!r}"
                continue
            try:
                equations[eq_id] = _row_equation(row, slots, columns)
            except EquationError as exc:
                errors[eq_id] = str(exc)
    return CsvLoad(equations=equations, errors=errors)

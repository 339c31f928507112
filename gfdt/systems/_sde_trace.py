"""Symbolic tracing of a user's numpy drift and noise (for :class:`gfdt.systems.SDE`).

The user's functions are run once on a batch of *symbolic* states: an object array whose
entries are :class:`Sym`, thin wrappers of sympy expressions with the arithmetic
operators and the methods numpy's object-dtype ufuncs call (``np.tanh(a)`` calls
``a.tanh()`` on every entry). What comes out is one sympy expression per drift
component and noise coefficient. From these, gfdt generates allocation-free scalar
numba code (:mod:`gfdt.systems._sde_kernels`) and exact derivatives in the parameters
and the state (symbolic differentiation, :func:`parameter_derivatives`).

Code that branches on values (``if x > 0``, ``np.where``, ``np.maximum``), converts to
float (``np.zeros((n, d))`` filled with expressions) or calls functions numpy cannot apply
to objects raises :class:`Untraceable`; the SDE then compiles the user's function as it
is (slower, derivatives by central differences).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.pycode import PythonCodePrinter

__all__ = ["Sym", "Traced", "Untraceable", "trace"]

#: States above this size are not traced (the generated code grows with d * m).
MAX_TRACE_SIZE = 1024


class Untraceable(Exception):
    """The user's function cannot be run on symbolic states (the reason is the message)."""


def _expr(v: Any) -> sp.Expr:
    """A sympy expression for an entry of a traced result or an operand."""
    if isinstance(v, Sym):
        return v.e
    if isinstance(v, (bool, np.bool_)):
        raise Untraceable("a boolean entered the arithmetic")
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise Untraceable(f"a non-finite constant ({f})")
        return sp.Integer(int(f)) if f.is_integer() and abs(f) < 2**53 else sp.Float(f)
    if isinstance(v, sp.Basic):
        return v
    raise Untraceable(f"an entry of type {type(v).__name__}")


def _unary(fn: Callable[[sp.Expr], sp.Expr]) -> Callable[[Sym], Sym]:
    def method(self: Sym) -> Sym:
        return Sym(fn(self.e))

    return method


class Sym:
    """A symbolic scalar that numpy object arrays can carry (see the module docstring)."""

    __slots__ = ("e",)

    def __init__(self, e: sp.Expr) -> None:
        self.e = e

    def __repr__(self) -> str:
        return f"Sym({self.e})"

    # arithmetic (arrays handle a Sym operand element by element themselves)
    def _bin(op):
        def method(self, o):
            if isinstance(o, np.ndarray):
                return NotImplemented
            return Sym(op(self.e, _expr(o)))

        return method

    __add__ = _bin(lambda a, b: a + b)
    __radd__ = _bin(lambda a, b: b + a)
    __sub__ = _bin(lambda a, b: a - b)
    __rsub__ = _bin(lambda a, b: b - a)
    __mul__ = _bin(lambda a, b: a * b)
    __rmul__ = _bin(lambda a, b: b * a)
    __truediv__ = _bin(lambda a, b: a / b)
    __rtruediv__ = _bin(lambda a, b: b / a)
    __pow__ = _bin(lambda a, b: a**b)
    __rpow__ = _bin(lambda a, b: b**a)

    def __neg__(self): return Sym(-self.e)
    def __pos__(self): return self
    def __abs__(self): return Sym(sp.Abs(self.e))

    # what makes a value-dependent decision is not traceable
    def _no(self, *args):
        raise Untraceable("the function compares or branches on state values")

    __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __floordiv__ = __mod__ = _no
    __rfloordiv__ = __rmod__ = __index__ = __int__ = _no

    def __eq__(self, o):  # structural (numpy may compare entries); never a branch
        return isinstance(o, Sym) and self.e == o.e

    def __hash__(self) -> int:
        return hash(self.e)

    def __float__(self) -> float:
        if self.e.is_number:
            return float(self.e)
        raise Untraceable("the function converts a state-dependent value to float "
                          "(e.g. fills np.zeros((n, d)); use np.zeros_like(x) or np.stack)")

    # the methods numpy's object ufuncs call
    exp = _unary(sp.exp)
    log = _unary(sp.log)
    sqrt = _unary(sp.sqrt)
    cbrt = _unary(sp.cbrt)
    sin = _unary(sp.sin)
    cos = _unary(sp.cos)
    tan = _unary(sp.tan)
    arcsin = _unary(sp.asin)
    arccos = _unary(sp.acos)
    arctan = _unary(sp.atan)
    sinh = _unary(sp.sinh)
    cosh = _unary(sp.cosh)
    tanh = _unary(sp.tanh)
    arcsinh = _unary(sp.asinh)
    arccosh = _unary(sp.acosh)
    arctanh = _unary(sp.atanh)
    log1p = _unary(lambda e: sp.log(1 + e))
    expm1 = _unary(lambda e: sp.exp(e) - 1)
    log2 = _unary(lambda e: sp.log(e, 2))
    log10 = _unary(lambda e: sp.log(e, 10))
    exp2 = _unary(lambda e: 2**e)
    square = _unary(lambda e: e**2)
    reciprocal = _unary(lambda e: 1 / e)
    conjugate = _unary(lambda e: e)
    real = property(lambda self: self)

    def arctan2(self, o):
        return Sym(sp.atan2(self.e, _expr(o)))

    def hypot(self, o):
        return Sym(sp.sqrt(self.e**2 + _expr(o) ** 2))


@dataclasses.dataclass
class Traced:
    """The symbolic model: drift and noise as sympy expressions.

    Attributes
    ----------
    x : list of sympy.Symbol
        State coordinates (flattened), length d.
    p : list of sympy.Symbol
        Parameters, in the order of the SDE's parameter names.
    drift : list of sympy.Expr, length d
    noise : sympy.Matrix, shape (d, m), or None for diagonal noise
    noise_diag : list of sympy.Expr, length d, or None for full noise
    """

    x: list
    p: list
    drift: list
    noise: sp.Matrix | None
    noise_diag: list | None

    @property
    def d(self) -> int:
        return len(self.x)

    @property
    def m(self) -> int:
        return self.d if self.noise is None else int(self.noise.shape[1])

    @property
    def additive(self) -> bool:
        xs = set(self.x)
        entries = self.noise_diag if self.noise is None else list(self.noise)
        return not any(e.free_symbols & xs for e in entries)

    def diffusion(self) -> list | sp.Matrix:
        """:math:`D = g g^T / 2`: the diagonal (list) or the full matrix."""
        if self.noise is None:
            return [e**2 / 2 for e in self.noise_diag]
        g = self.noise
        return (g * g.T) / 2

    def affine_drift(self) -> bool:
        """Whether every drift component is affine in the state."""
        xs = set(self.x)
        return all(not (sp.diff(f, a).free_symbols & xs)
                   for f in self.drift for a in f.free_symbols & xs)


def symbols(d: int, names: Sequence[str]) -> tuple[list, list]:
    """State symbols ``x0..`` and parameter symbols ``p0..`` (real)."""
    x = [sp.Symbol(f"x{i}", real=True) for i in range(d)]
    p = [sp.Symbol(f"p{k}", real=True) for k in range(len(names))]
    return x, p


def _run(fn: Callable, state_shape: tuple[int, ...], x: list, pmap: dict, what: str):
    d = len(x)
    arr = np.empty((2, d), dtype=object)
    for i in range(d):
        arr[0, i] = arr[1, i] = Sym(x[i])
    arr = arr.reshape(2, *state_shape)
    try:
        with np.errstate(all="ignore"):
            out = fn(arr, pmap)
    except Untraceable:
        raise
    except Exception as exc:  # anything numpy or the user's code refuses on objects
        raise Untraceable(f"{what} failed on symbolic states: {type(exc).__name__}: "
                          f"{exc}") from None
    if isinstance(out, Sym) or np.isscalar(out) or isinstance(out, sp.Basic):
        return np.asarray(_expr(out), dtype=object)  # 0-d
    out = np.asarray(out, dtype=object)
    return out


def _rows(out: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """Row 0 of a batch result of shape (2, *shape), checked equal to row 1."""
    if out.shape != (2, *shape):
        raise Untraceable(f"{what} returned shape {out.shape} for a batch of 2")
    flat = out.reshape(2, -1)
    first = [_expr(v) for v in flat[0]]
    second = [_expr(v) for v in flat[1]]
    if any(a != b for a, b in zip(first, second, strict=True)):
        raise Untraceable(f"{what} treats the states of a batch differently")
    return np.array(first, dtype=object).reshape(shape)


def trace(drift: Callable, noise: Any, state_shape: tuple[int, ...],
          names: Sequence[str]) -> Traced:
    """Run ``drift`` and ``noise`` on symbolic states (see the module docstring).

    Parameters
    ----------
    drift : callable
        ``drift(x, p)``, ``x`` of shape (n, ``*state_shape``), ``p`` a mapping.
    noise : callable or array_like
        ``noise(x, p)`` returning (n, ``*state_shape``) (diagonal), (n, d, m) (full) or
        a scalar (the same on every coordinate); or a constant number / array (d,) /
        (d, m).
    state_shape : tuple of int
    names : sequence of str
        Parameter names.

    Raises
    ------
    Untraceable
        The functions cannot run on symbols, or give inconsistent shapes.
    """
    d = int(np.prod(state_shape))
    if d > MAX_TRACE_SIZE:
        raise Untraceable(f"the state has {d} > {MAX_TRACE_SIZE} coordinates")
    x, p = symbols(d, names)
    pmap = {n: Sym(s) for n, s in zip(names, p, strict=True)}
    out = _run(drift, state_shape, x, pmap, "drift")
    f = [_expr(v) for v in _rows(out, tuple(state_shape), "drift").reshape(-1)]
    if callable(noise):
        g = _run(noise, state_shape, x, pmap, "noise")
        if g.ndim == 0:
            diag, full = [_expr(g[()])] * d, None
        elif g.shape == (2, *state_shape):
            diag, full = [_expr(v) for v in _rows(g, tuple(state_shape), "noise").reshape(-1)], None
        elif g.ndim == 3 and g.shape[:2] == (2, d):
            full = sp.Matrix(_rows(g, g.shape[1:], "noise").tolist())
            diag = None
        else:
            raise Untraceable(f"noise returned shape {g.shape} for a batch of 2")
    else:
        g = np.asarray(noise, dtype=float)
        if g.ndim == 0:
            diag, full = [_expr(float(g))] * d, None
        elif g.shape in ((d,), tuple(state_shape)):
            diag, full = [_expr(v) for v in g.reshape(-1)], None
        else:
            full, diag = sp.Matrix([[_expr(v) for v in row] for row in g]), None
    allowed = set(x) | set(p)
    for e in f + (diag if diag is not None else list(full)):
        extra = e.free_symbols - allowed
        if extra:
            raise Untraceable(f"unexpected symbols {sorted(map(str, extra))}")
    return Traced(x=x, p=p, drift=f, noise=full, noise_diag=diag)


# ---------------------------------------------------------------------- printing
class ScalarPrinter(PythonCodePrinter):
    """Python/numba scalar code: floats printed to full precision, ``math`` functions."""

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"({int(expr.p)}.0/{int(expr.q)}.0)"

    def _print_Integer(self, expr):
        return f"{int(expr)}.0" if abs(int(expr)) < 2**53 else repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        b, e = expr.as_base_exp()
        if e.is_Integer and 2 <= int(e) <= 4:
            s = self.parenthesize(b, 1000)
            return "*".join([s] * int(e))
        if e.is_Integer and int(e) == -1:
            return f"(1.0/{self.parenthesize(b, 1000)})"
        if e == sp.Rational(1, 2):
            return f"math.sqrt({self._print(b)})"
        return super()._print_Pow(expr, rational=rational)


class ArrayPrinter(NumPyPrinter):
    """numpy code for batched evaluation: floats printed to full precision."""

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return f"({int(expr.p)}.0/{int(expr.q)}.0)"


def numpy_function(exprs: Sequence[sp.Expr], x: list, p: list, name: str = "f"
                   ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A batched evaluator of ``exprs``: ``fn(states (n, d), params (q,)) -> (n, k)``.

    Common subexpressions are computed once; entries that do not depend on the state
    are broadcast.
    """
    printer = ArrayPrinter()
    reps, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("_c"))
    lines = [f"def {name}(X, P):"]
    used = set().union(*(e.free_symbols for e in reduced)) | set().union(
        *(e.free_symbols for _, e in reps)) if (reduced or reps) else set()
    for i, s in enumerate(x):
        if s in used:
            lines.append(f"    {s} = X[:, {i}]")
    for k, s in enumerate(p):
        if s in used:
            lines.append(f"    {s} = P[{k}]")
    for s, e in reps:
        lines.append(f"    {s} = {printer.doprint(e)}")
    lines.append("    n = X.shape[0]")
    lines.append(f"    out = numpy.empty((n, {len(reduced)}))")
    for j, e in enumerate(reduced):
        lines.append(f"    out[:, {j}] = {printer.doprint(e)}")
    lines.append("    return out")
    src = "\n".join(lines)
    ns: dict[str, Any] = {"numpy": np}
    exec(compile(src, f"<gfdt.sde {name}>", "exec"), ns)
    fn = ns[name]
    fn.source = src
    return fn

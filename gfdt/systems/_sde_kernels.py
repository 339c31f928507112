"""Integrators of :class:`gfdt.systems.SDE`: generated scalar kernels and fallbacks.

Three back ends share the kernel signature of :meth:`gfdt.systems.System._kernel`
(``kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, *args)``), so
:func:`gfdt.simulate` and the paired truths run them like any built-in system:

``"traced"``
    The drift and noise traced to sympy expressions (:mod:`gfdt.systems._sde_trace`)
    are printed as straight-line scalar code (common subexpressions once, the state in
    local variables, no array allocated per step) and compiled with numba. This is as
    fast as a hand-written loop (``benchmarks/user_models.py`` measures it). The source
    is written to a cache folder (``GFDT_CACHE_DIR``, default ``~/.cache/gfdt``) under
    the hash of its text, so numba's on-disk cache serves the next process.
``"jit"``
    The user's functions compiled with ``numba.njit`` as they are and called on a
    ``(1, d)`` view every step (parameters as a numpy record, ``p["F"]`` works): about
    7x slower than ``"traced"`` (every numpy expression allocates).
``"python"``
    The user's functions in plain Python, one state per call: a last resort (orders of
    magnitude slower), with a warning.

Schemes: Euler-Maruyama (any noise), and stochastic Heun (predictor-corrector,
additive noise only: strong order 1, weak order 2).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numba as nb
import numpy as np
import sympy as sp

from gfdt.systems._sde_trace import ScalarPrinter, Traced

__all__ = ["compile_traced", "generic_kernel", "python_kernel", "traced_source"]

logger = logging.getLogger("gfdt")

#: Steps between divergence checks when nothing is saved.
CHECK_EVERY = 64


# ------------------------------------------------------------------ code generation
def _block(exprs: list, names: list[str], printer: ScalarPrinter, prefix: str,
           indent: str) -> list[str]:
    """Lines assigning ``names[k] = exprs[k]`` with common subexpressions once."""
    reps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols(prefix))
    lines = [f"{indent}{s} = {printer.doprint(e)}" for s, e in reps]
    lines += [f"{indent}{n} = {printer.doprint(e)}" for n, e in zip(names, reduced, strict=True)]
    return lines


def traced_source(tr: Traced, scheme: str, func_name: str = "kernel") -> str:
    """Python source of the numba kernel of a traced model (see the module docstring).

    Parameters
    ----------
    tr : Traced
    scheme : {"euler", "heun"}
        ``"heun"`` needs additive noise.
    func_name : str

    Returns
    -------
    str
        A module defining ``func_name`` (decorated with ``numba.njit``).
    """
    if scheme == "heun" and not tr.additive:
        raise ValueError("the Heun scheme needs additive noise")
    printer = ScalarPrinter()
    d, x = tr.d, tr.x
    xs = set(x)
    # noise: the non-zero coefficients, as (target i, normal k, expr)
    if tr.noise is None:
        terms = [(i, i, e) for i, e in enumerate(tr.noise_diag) if e != 0]
    else:
        terms = [(i, k, tr.noise[i, k]) for i in range(d) for k in range(tr.m)
                 if tr.noise[i, k] != 0]
    used_k = sorted({k for _, k, _ in terms})
    const = [(i, k, e) for i, k, e in terms if not (e.free_symbols & xs)]
    varying = [(i, k, e) for i, k, e in terms if e.free_symbols & xs]
    head = [
        "import math",
        "import numba",
        "",
        "",
        "@numba.njit(nogil=True, cache=CACHE)",
        f"def {func_name}(u, aux, n_steps, save_every, out, aux_out, rng, threshold, params,",
        "           dt, lower, upper):",
        f"    uf = u.reshape({d})",
        f"    of = out.reshape(out.shape[0], {d})",
        "    sq = math.sqrt(dt)",
    ]
    body = list(head)
    body += [f"    {s} = params[{k}]" for k, s in enumerate(tr.p)]
    # noise coefficients that do not depend on the state: once per call
    cnames = [f"g{i}_{k}" for i, k, _ in const]
    if const:
        body += _block([e for _, _, e in const], cnames, printer, "_k", "    ")
    body += [f"    {s} = uf[{i}]" for i, s in enumerate(x)]
    body += [f"    check_every = save_every if save_every > 0 else {CHECK_EVERY}",
             "    j = 0",
             "    for step in range(1, n_steps + 1):"]
    ind = "        "
    # the normals of this step, in the order of k (only those some coefficient uses)
    body += [f"{ind}z{k} = rng.standard_normal()" for k in used_k]
    fnames = [f"f{i}" for i in range(d)]
    vnames = [f"g{i}_{k}" for i, k, _ in varying]
    body += _block(list(tr.drift) + [e for _, _, e in varying], fnames + vnames, printer,
                   "_a", ind)
    # the noise increment of coordinate i: sum of g_ik z_k
    incr: dict[int, list[str]] = {}
    for i, k, _ in terms:
        incr.setdefault(i, []).append(f"g{i}_{k}*z{k}")
    for i in range(d):
        if i in incr:
            body.append(f"{ind}w{i} = sq*({' + '.join(incr[i])})")
    if scheme == "euler":
        for i in range(d):
            w = f" + w{i}" if i in incr else ""
            body.append(f"{ind}n{i} = x{i} + f{i}*dt{w}")
    else:  # Heun: predictor, drift at the predictor, corrector
        ys = [sp.Symbol(f"y{i}", real=True) for i in range(d)]
        for i in range(d):
            w = f" + w{i}" if i in incr else ""
            body.append(f"{ind}y{i} = x{i} + f{i}*dt{w}")
        sub = dict(zip(x, ys, strict=True))
        body += _block([f.xreplace(sub) for f in tr.drift], [f"h{i}" for i in range(d)],
                       printer, "_b", ind)
        for i in range(d):
            w = f" + w{i}" if i in incr else ""
            body.append(f"{ind}n{i} = x{i} + 0.5*dt*(f{i} + h{i}){w}")
    body += [f"{ind}x{i} = n{i}" for i in range(d)]
    body += [
        f"{ind}saving = save_every > 0 and step % save_every == 0",
        f"{ind}if saving or step % check_every == 0 or step == n_steps:",
    ]
    body += [f"{ind}    uf[{i}] = x{i}" for i in range(d)]
    body += [
        f"{ind}    for i in range({d}):",
        f"{ind}        v = uf[i]",
        f"{ind}        if not (abs(v) <= threshold and lower[i] <= v <= upper[i]):",
        f"{ind}            return step",
        f"{ind}    if saving:",
        f"{ind}        of[j, :] = uf",
        f"{ind}        j += 1",
        "    return -1",
        "",
    ]
    return "\n".join(body)


def _cache_dir() -> Path | None:
    """A writable folder for generated modules, or None."""
    root = os.environ.get("GFDT_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "gfdt"
    path = path / "sde"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError:
        return None
    return path


def compile_traced(source: str, func_name: str = "kernel") -> Callable:
    """Compile generated kernel source (from a cached file when possible)."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    folder = _cache_dir()
    if folder is None:
        ns: dict = {}
        exec(compile(source.replace("cache=CACHE", "cache=False"),
                     f"<gfdt.sde {digest}>", "exec"), ns)
        return ns[func_name]
    mod_name = f"gfdt_sde_{digest}"
    if mod_name in sys.modules:
        return getattr(sys.modules[mod_name], func_name)
    path = folder / f"{mod_name}.py"
    text = source.replace("cache=CACHE", "cache=True")
    if not path.exists() or path.read_text() != text:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[mod_name] = module
    return getattr(module, func_name)


# --------------------------------------------------------------- generic kernels
@nb.njit(nogil=True, inline="always")
def _check_save(uf, of, j, step, n_steps, save_every, threshold, lower, upper):
    """(status, j): status = step when diverged, else -1; stores a save."""
    saving = save_every > 0 and step % save_every == 0
    if saving or step % CHECK_EVERY == 0 or step == n_steps:
        for i in range(uf.shape[0]):
            v = uf[i]
            if not (abs(v) <= threshold and lower[i] <= v <= upper[i]):
                return step, j
        if saving:
            of[j, :] = uf
            j += 1
    return -1, j


@nb.njit(nogil=True, inline="always")
def _w_diag(noise, x, params, z, w, gconst):  # pragma: no cover - numba
    g = noise(x, params)
    for i in range(w.shape[0]):
        w[i] = g[0, i] * z[i]


@nb.njit(nogil=True, inline="always")
def _w_full(noise, x, params, z, w, gconst):  # pragma: no cover - numba
    g = noise(x, params)
    for i in range(w.shape[0]):
        s = 0.0
        for k in range(z.shape[0]):
            s += g[0, i, k] * z[k]
        w[i] = s


@nb.njit(nogil=True, inline="always")
def _w_scalar(noise, x, params, z, w, gconst):  # pragma: no cover - numba
    c = noise(x, params)
    for i in range(w.shape[0]):
        w[i] = c * z[i]


@nb.njit(nogil=True, inline="always")
def _w_const(noise, x, params, z, w, gconst):  # pragma: no cover - numba
    for i in range(w.shape[0]):
        s = 0.0
        for k in range(z.shape[0]):
            s += gconst[i, k] * z[k]
        w[i] = s


def _make_generic(increment: Callable) -> Callable:
    @nb.njit(nogil=True)
    def kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, params, dt, lower,
               upper, drift, noise, kind, m, gconst, heun):  # pragma: no cover - numba
        d = u.size
        uf = u.reshape(d)
        of = out.reshape(out.shape[0], d)
        x = uf.reshape(1, d)
        sq = math.sqrt(dt)
        z = np.empty(m)
        w = np.empty(d)
        y = np.empty((1, d))
        j = 0
        for step in range(1, n_steps + 1):
            f = drift(x, params)
            for k in range(m):
                z[k] = sq * rng.standard_normal()
            increment(noise, x, params, z, w, gconst)
            if heun:
                for i in range(d):
                    y[0, i] = uf[i] + f[0, i] * dt + w[i]
                f2 = drift(y, params)
                for i in range(d):
                    uf[i] += 0.5 * dt * (f[0, i] + f2[0, i]) + w[i]
            else:
                for i in range(d):
                    uf[i] += f[0, i] * dt + w[i]
            status, j = _check_save(uf, of, j, step, n_steps, save_every, threshold, lower,
                                    upper)
            if status >= 0:
                return status
        return -1

    return kernel


#: The ``"jit"`` kernels by noise kind: 0 diagonal callable, 1 full callable, 2 scalar
#: callable, 3 constant matrix ``gconst``.
_GENERIC = {0: _make_generic(_w_diag), 1: _make_generic(_w_full),
            2: _make_generic(_w_scalar), 3: _make_generic(_w_const)}


def generic_kernel(kind: int) -> Callable:
    """The ``"jit"`` back end's kernel for a noise ``kind`` (args after ``threshold``:
    params record, dt, lower, upper, drift, noise, kind, m, gconst, heun)."""
    return _GENERIC[int(kind)]


def python_kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, params, dt,
                  lower, upper, drift, noise, kind, m, gconst, heun) -> int:
    """The ``"python"`` back end: the ``"jit"`` kernel in plain numpy (``params`` a
    dict)."""
    d = u.size
    uf = u.reshape(d)
    of = out.reshape(out.shape[0], d)
    sq = math.sqrt(dt)
    j = 0
    for step in range(1, n_steps + 1):
        x = uf.reshape(1, d)
        f = np.asarray(drift(x, params), dtype=float).reshape(d)
        z = sq * rng.standard_normal(m)
        if kind == 0:
            w = np.asarray(noise(x, params), dtype=float).reshape(d) * z
        elif kind == 1:
            w = np.asarray(noise(x, params), dtype=float).reshape(d, m) @ z
        elif kind == 2:
            w = float(noise(x, params)) * z
        else:
            w = gconst @ z
        if heun:
            y = (uf + f * dt + w).reshape(1, d)
            f2 = np.asarray(drift(y, params), dtype=float).reshape(d)
            uf += 0.5 * dt * (f + f2) + w
        else:
            uf += f * dt + w
        saving = save_every > 0 and step % save_every == 0
        if saving or step % CHECK_EVERY == 0 or step == n_steps:
            if not np.all((np.abs(uf) <= threshold) & (uf >= lower) & (uf <= upper)):
                return step
            if saving:
                of[j] = uf
                j += 1
    return -1

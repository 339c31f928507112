"""What every parameter variant of one :class:`gfdt.systems.SDE` shares: the user
functions, their trace (verified on numbers), the compiled kernels and the derivative
engine; and the inference of the state dimension."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Model", "infer_shape"]


class Model:
    """What all parameter variants of one SDE share: the user functions, the trace, the
    compiled kernels and the derivative engine (rebuilt after unpickling)."""

    def __init__(self, drift: Callable, noise: Any, state_shape: tuple[int, ...],
                 names: tuple[str, ...], backend: str) -> None:
        self.drift, self.noise = drift, noise
        self.state_shape, self.names = state_shape, names
        self.requested = backend
        self._reset()

    def _reset(self) -> None:
        self.traced = None
        self.trace_error: str | None = None
        self._traced_done = False
        self._kernels: dict[str, Callable] = {}
        self._backend: str | None = None
        self._deriv = None
        self._jitted: tuple | None = None

    def __getstate__(self) -> dict:
        return {k: getattr(self, k) for k in ("drift", "noise", "state_shape", "names",
                                               "requested")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    # ------------------------------------------------------------------ trace
    def trace(self):
        """The traced model, or None (the reason in ``trace_error``)."""
        if not self._traced_done:
            self._traced_done = True
            if self.requested in ("auto", "traced"):
                from gfdt.systems._sde_trace import Untraceable, trace

                try:
                    self.traced = trace(self.drift, self.noise, self.state_shape, self.names)
                    self._verify()
                except Untraceable as exc:
                    self.traced = None
                    self.trace_error = str(exc)
            else:
                self.trace_error = f"backend={self.requested!r}"
            if self.traced is None and self.requested == "traced":
                raise ValueError(f"backend='traced': the functions cannot be traced "
                                 f"({self.trace_error})")
        return self.traced

    def _verify(self) -> None:
        """The traced expressions against the user's functions on random states and
        parameters (code that acts differently on symbols must not pass silently)."""
        from gfdt.systems._sde_trace import Untraceable, numpy_function

        tr = self.traced
        rng = np.random.default_rng(12345)
        X = rng.standard_normal((5, tr.d))
        P = rng.uniform(0.5, 1.5, len(self.names))
        p = dict(zip(self.names, P.tolist(), strict=True))
        n = X.shape[0]
        with np.errstate(all="ignore"):
            want_f = np.asarray(self.drift(X.reshape(n, *self.state_shape), p),
                                dtype=float).reshape(n, -1)
            got_f = numpy_function(tr.drift, tr.x, tr.p, "f")(X, P)
            entries = tr.noise_diag if tr.noise is None else list(tr.noise)
            got_g = numpy_function(entries, tr.x, tr.p, "g")(X, P)
            w = np.asarray(self.noise(X.reshape(n, *self.state_shape), p) if callable(self.noise)
                           else self.noise, dtype=float)
            if w.ndim == 0 or not callable(self.noise):
                want_g = np.broadcast_to(w.reshape(-1), got_g.shape)
            else:
                want_g = w.reshape(n, -1)
        for what, got, want in (("drift", got_f, want_f), ("noise", got_g, want_g)):
            ok = np.isfinite(want) & np.isfinite(got)
            if got.shape != want.shape or not np.allclose(got[ok], want[ok], rtol=1e-9,
                                                          atol=1e-12):
                raise Untraceable(f"the traced {what} differs from the function on numbers")

    def derivatives(self):
        if self._deriv is None:
            from gfdt.systems._sde_derivatives import NumericDerivatives, SymbolicDerivatives

            tr = self.trace()
            self._deriv = (SymbolicDerivatives(tr, self.names) if tr is not None else
                           NumericDerivatives(self.drift, self.noise, self.names,
                                              self.state_shape))
        return self._deriv


def infer_shape(drift: Callable, noise: Any, params: dict) -> tuple[int, ...]:
    """The state shape from a constant noise array, else the unique d (1..64) for which
    the drift returns (n, d)."""
    if not callable(noise):
        g = np.asarray(noise, dtype=float)
        if g.ndim >= 1:
            return (int(g.shape[0]),)
    ok = []
    rng = np.random.default_rng(0)
    for d in range(1, 65):
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = np.asarray(drift(rng.standard_normal((3, d)), dict(params)))
        except Exception:
            continue
        if out.shape == (3, d):
            ok.append(d)
            if len(ok) > 1:
                break
    if len(ok) != 1:
        raise ValueError("cannot infer the state dimension from the drift (it "
                         + ("works for several dimensions" if ok else "fails for every dimension")
                         + " tried); pass dim= or state_shape=")
    return (ok[0],)

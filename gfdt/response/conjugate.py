"""Observables, perturbations and their conjugate variables for the GFDT.

A perturbation :math:`x \\to x + \\delta\\, u(x)` at time 0 changes the mean of an
observable :math:`A` at time :math:`t` by :math:`\\delta\\, R_A(t)` with

.. math::

    R_A(t) = \\langle (A(x(t)) - \\langle A \\rangle)\\, B(x(0)) \\rangle, \\qquad
    B(x) = -\\nabla \\cdot u(x) - u(x) \\cdot s(x),

:math:`s = \\nabla \\log p`. This module turns user input (names, callables, arrays)
into batched functions and estimates :math:`\\nabla \\cdot u`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["OBSERVABLE_NAMES", "Observable", "Perturbation", "conjugate_objects",
           "conjugate_series"]

#: Names accepted by ``observable=``.
OBSERVABLE_NAMES = ("identity", "mean")

#: Largest state dimension for which ``divergence="auto"`` takes the exact sum.
EXACT_DIVERGENCE_MAX_DIM = 64

#: Finite-difference step (state units) when none is given and no data set the scale.
DEFAULT_FD_STEP = 1e-4

_FD_BATCH_VALUES = 2**22  # floats per finite-difference evaluation batch


class Observable:
    """A batched observable: ``(batch, *state) -> (batch, n_obs)``.

    ``observable`` is None or ``"identity"`` (every state coordinate, kept in the
    state's layout), ``"mean"`` (the mean over all state coordinates), or a callable
    returning ``(batch, n_obs)`` or ``(batch,)`` values.
    """

    def __init__(self, observable: Any = None, state_shape: tuple[int, ...] | None = None,
                 name: str = "observable") -> None:
        if isinstance(observable, Observable):
            observable = observable.spec
        self.spec = observable
        self.state_shape = None if state_shape is None else tuple(state_shape)
        self.identity = False
        if observable is None or (isinstance(observable, str)
                                   and observable.lower() == "identity"):
            self.identity = True
            self.label = "identity"
            self.fn = None
        elif isinstance(observable, str):
            if observable.lower() != "mean":
                raise ValueError(
                    f"unknown {name} {observable!r}; choose one of "
                    f"{', '.join(OBSERVABLE_NAMES)} or pass a callable"
                )
            self.label = "mean"
            self.fn = None
        elif callable(observable):
            self.label = getattr(observable, "__name__", type(observable).__name__)
            self.fn = observable
        else:
            raise TypeError(
                f"{name} must be None, a name ({', '.join(OBSERVABLE_NAMES)}) or a callable "
                f"mapping (batch, *state) to (batch, n_obs), got {type(observable).__name__}"
            )
        self.name = name
        self.n_obs: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Values, shape (batch, n_obs), float64."""
        x = np.asarray(x, dtype=float)
        b = x.shape[0]
        if self.identity:
            return x.reshape(b, -1)
        if self.fn is None:  # "mean"
            return x.reshape(b, -1).mean(axis=1, keepdims=True)
        out = np.asarray(self.fn(x), dtype=float)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != b:
            raise ValueError(
                f"{self.name} returned shape {out.shape} for a batch of {b} states; it must "
                "return (batch, n_obs) or (batch,)"
            )
        if self.n_obs is None:
            self.n_obs = out.shape[1]
        elif out.shape[1] != self.n_obs:
            raise ValueError(f"{self.name} returned {out.shape[1]} values per state, "
                             f"earlier {self.n_obs}")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"{self.name} returned NaN or inf")
        return out


class Perturbation:
    """A perturbation field :math:`u(x)` with its divergence.

    Parameters
    ----------
    perturbation : callable or array_like
        ``u(x)``: maps ``(batch, *state)`` to ``(batch, *state)`` (numpy, or torch
        tensors when ``autograd``), or a state-shaped array (a constant direction,
        divergence 0).
    state_shape : tuple of int, optional
        Shape of one state; set by :meth:`bind` when the perturbation is given to
        :class:`~gfdt.ResponseEstimator` unbound.
    divergence : {"auto", "exact", "hutchinson"} or callable
        How to get :math:`\\nabla\\cdot u`: the exact sum over coordinates, a
        Hutchinson trace estimate with random probes, or a callable returning it,
        shape (batch,). ``"auto"``: exact up to 64 coordinates, else Hutchinson.
    autograd : bool
        ``u`` is a torch callable; derivatives by automatic differentiation instead of
        central finite differences.
    n_probes : int
        Probes per state for the Hutchinson estimate.
    probe : {"rademacher", "gaussian"}
    fd_step : float, optional
        Finite-difference step in state units (default: 1e-4 times the data's
        standard deviation when bound by :class:`~gfdt.ResponseEstimator`, else 1e-4).
    rng : numpy.random.Generator
        Source of the probes.
    """

    def __init__(self, perturbation: Any, state_shape: tuple[int, ...] | None = None, *,
                 divergence: str | Callable = "auto", autograd: bool = False,
                 n_probes: int = 16, probe: str = "rademacher", fd_step: float | None = None,
                 rng: np.random.Generator | None = None) -> None:
        self.options = {"divergence": divergence, "autograd": autograd, "n_probes": n_probes,
                        "probe": probe, "fd_step": fd_step}
        self.spec = perturbation
        self.state_shape = None if state_shape is None else tuple(state_shape)
        self.d = None if state_shape is None else int(np.prod(self.state_shape))
        self.constant: np.ndarray | None = None
        self.fn: Callable | None = None
        if callable(perturbation):
            self.fn = perturbation
            self.label = getattr(perturbation, "__name__", type(perturbation).__name__)
        else:
            try:
                arr = np.asarray(perturbation, dtype=float)
            except (TypeError, ValueError):
                raise TypeError(
                    "perturbation must be a callable u(x) or a state-shaped array, got "
                    f"{type(perturbation).__name__}"
                ) from None
            if self.state_shape is not None and arr.shape != self.state_shape:
                raise ValueError(
                    f"perturbation array must have the state shape {self.state_shape}, "
                    f"got {arr.shape}"
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError("perturbation contains NaN or inf")
            self.constant = arr
            self.label = "constant"
        if not isinstance(autograd, (bool, np.bool_)):
            raise TypeError(f"autograd must be True or False, got {autograd!r}")
        self.autograd = bool(autograd) and self.fn is not None
        if callable(divergence):
            self.method = "callable"
            self.div_fn = divergence
        elif isinstance(divergence, str) and divergence.lower() in ("auto", "exact",
                                                                     "hutchinson"):
            m = divergence.lower()
            if m == "auto" and self.d is not None:
                m = "exact" if self.d <= EXACT_DIVERGENCE_MAX_DIM else "hutchinson"
            self.method = m
            self.div_fn = None
        else:
            raise ValueError(
                f"divergence must be 'auto', 'exact', 'hutchinson' or a callable, "
                f"got {divergence!r}"
            )
        if isinstance(n_probes, bool) or not isinstance(n_probes, (int, np.integer)) \
                or n_probes < 1:
            raise ValueError(f"n_probes must be a positive int, got {n_probes!r}")
        self.n_probes = int(n_probes)
        if not isinstance(probe, str) or probe.lower() not in ("rademacher", "gaussian"):
            raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {probe!r}")
        self.probe = probe.lower()
        if fd_step is not None and (
                isinstance(fd_step, bool) or not isinstance(fd_step, (int, float, np.floating))
                or not np.isfinite(fd_step) or fd_step <= 0):
            raise ValueError(f"fd_step must be a positive number, got {fd_step!r}")
        self.fd_step = DEFAULT_FD_STEP if fd_step is None else float(fd_step)
        self.rng = rng if rng is not None else np.random.default_rng()

    def bind(self, state_shape: tuple[int, ...], rng: np.random.Generator,
             scale: Callable[[], float] | None = None) -> Perturbation:
        """A copy for states of ``state_shape``, drawing probes from ``rng``.

        Without an explicit ``fd_step``, the step is 1e-4 times ``scale()`` (the data's
        standard deviation; called only then).
        """
        opts = dict(self.options)
        if opts["fd_step"] is None and scale is not None:
            sd = float(scale())
            opts["fd_step"] = DEFAULT_FD_STEP * (sd if sd > 0 else 1.0)
        return Perturbation(self.spec, state_shape, rng=rng, **opts)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"Perturbation({self.label}, {opts})"

    # ------------------------------------------------------------------ values
    def _numpy_field(self, x: np.ndarray) -> np.ndarray:
        if self.constant is not None:
            return np.broadcast_to(self.constant, x.shape).copy()
        out = np.array(self.fn(x), dtype=float, copy=True)  # never a view of x
        if out.shape != x.shape:
            raise ValueError(
                f"perturbation returned shape {out.shape} for a batch of shape {x.shape}; "
                "it must return one field per state, same shape"
            )
        if not np.all(np.isfinite(out)):
            raise ValueError("perturbation returned NaN or inf")
        return out

    def field(self, x: np.ndarray) -> np.ndarray:
        """:math:`u(x)`, shape ``(batch, *state)``."""
        x = np.asarray(x, dtype=float)
        if self.autograd:
            from gfdt.scores._autograd import torch_apply

            out = torch_apply(self.fn, x)
            if out.shape != x.shape:
                raise ValueError(f"perturbation returned shape {out.shape} for a batch of "
                                 f"shape {x.shape}")
            return out
        return self._numpy_field(x)

    def field_and_divergence(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`u(x)` ``(batch, *state)`` and :math:`\\nabla\\cdot u(x)` (batch,)."""
        x = np.asarray(x, dtype=float)
        b = x.shape[0]
        if self.constant is not None:
            return self.field(x), np.zeros(b)
        if self.method == "callable":
            div = np.asarray(self.div_fn(x), dtype=float).reshape(-1)
            if div.shape != (b,):
                raise ValueError(f"divergence returned {div.size} values for {b} states")
            return self.field(x), div
        if self.autograd:
            from gfdt.scores._autograd import field_and_divergence

            probes = None if self.method == "exact" else self._probes(b)
            u, div = field_and_divergence(self.fn, x, probes)
            if u.shape != x.shape:
                raise ValueError(f"perturbation returned shape {u.shape} for a batch of "
                                 f"shape {x.shape}")
            return u, div
        u = self._numpy_field(x)
        if self.method == "exact":
            return u, self._fd_exact(x)
        return u, self._fd_hutchinson(x, self._probes(b))

    def conjugate(self, x: np.ndarray, s: np.ndarray, return_field: bool = False):
        """:math:`B(x) = -\\nabla\\cdot u - u \\cdot s`, shape (batch,).

        With ``return_field``, also :math:`u(x)` ``(batch, *state)``, evaluated once.
        """
        u, div = self.field_and_divergence(x)
        b = x.shape[0]
        out = -div - np.einsum("bi,bi->b", u.reshape(b, -1), np.asarray(s).reshape(b, -1))
        return (out, u) if return_field else out

    # -------------------------------------------------------------- divergence
    def _probes(self, b: int) -> np.ndarray:
        shape = (self.n_probes, b, *self.state_shape)
        if self.probe == "rademacher":
            return self.rng.choice(np.array([-1.0, 1.0]), size=shape)
        return self.rng.standard_normal(shape)

    def _fd_exact(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\sum_i (u_i(x + h e_i) - u_i(x - h e_i)) / 2h`, 2d evaluations."""
        b, d, h = x.shape[0], self.d, self.fd_step
        flat = x.reshape(b, d)
        div = np.zeros(b)
        chunk = max(1, _FD_BATCH_VALUES // max(1, b * d))
        for a in range(0, d, chunk):
            idx = np.arange(a, min(a + chunk, d))
            k = idx.size
            xp = np.repeat(flat[:, None, :], k, axis=1)  # (b, k, d)
            xm = xp.copy()
            xp[:, np.arange(k), idx] += h
            xm[:, np.arange(k), idx] -= h
            up = self._numpy_field(xp.reshape(b * k, *self.state_shape)).reshape(b, k, d)
            um = self._numpy_field(xm.reshape(b * k, *self.state_shape)).reshape(b, k, d)
            div += (up[:, np.arange(k), idx] - um[:, np.arange(k), idx]).sum(axis=1) / (2 * h)
        return div

    def _fd_hutchinson(self, x: np.ndarray, probes: np.ndarray) -> np.ndarray:
        """Mean over probes v of :math:`v \\cdot (u(x + h v) - u(x - h v)) / 2h`."""
        b, h = x.shape[0], self.fd_step
        div = np.zeros(b)
        for v in probes:
            du = self._numpy_field(x + h * v) - self._numpy_field(x - h * v)
            div += np.einsum("bi,bi->b", du.reshape(b, -1), v.reshape(b, -1)) / (2 * h)
        return div / len(probes)


def conjugate_objects(observable, perturbation, data, rng: np.random.Generator,
                      **options) -> tuple[Observable, Perturbation | None]:
    """The observable and the bound perturbation of :class:`~gfdt.ResponseEstimator`.

    ``options`` (``divergence``, ``autograd``, ``n_probes``, ``probe``, ``fd_step``)
    make a :class:`Perturbation` of a plain callable or array; the default
    finite-difference scale is the mean standard deviation of the first member's
    coordinates, ``rng`` draws the probes.
    """
    state_shape = data.state_shape
    obs = Observable(observable, state_shape)
    if perturbation is None:
        return obs, None
    pert = perturbation
    if not isinstance(pert, Perturbation):
        pert = Perturbation(pert, **options)

    def scale() -> float:
        first = np.asarray(data.members[0], dtype=float)
        return float(first.reshape(first.shape[0], -1).std(axis=0).mean())

    return obs, pert.bind(state_shape, rng, scale)


def conjugate_series(data, model, obs: Observable, pert: Perturbation | None, stride: int,
                     batch_size: int, progress: bool | None
                     ) -> tuple[list, list, np.ndarray | None]:
    """Observable :math:`A` at every sample and conjugate :math:`B` at the source times.

    ``data`` is a :class:`~gfdt.data.Trajectories`, ``model`` the fitted score; states
    are read ``batch_size`` at a time. Returns the per-member series of A (T, n_obs)
    and B (T, q) (zero off the source grid) and, with a perturbation, the mean over source states of
    :math:`(A(x + h u) - A(x - h u)) / 2h` (the Stein sum rule's value).
    """
    from gfdt._progress import tqdm
    from gfdt.response._score import evaluate

    chunk = batch_size
    d = int(np.prod(data.state_shape))
    q = 1 if pert is not None else d
    a_series, b_series = [], []
    dA_sum, n_src = None, 0
    bar = tqdm(total=data.n_samples, desc="GFDT", unit="state", unit_scale=True,
               disable=None if progress is None else not progress, leave=False)
    try:
        for k, T in enumerate(data.lengths):
            a_parts, b_parts = [], []
            for a in range(0, T, chunk):
                xb = data.read(k, a, min(a + chunk, T))
                a_parts.append(obs(xb))
                first = -a % stride  # source times are multiples of stride
                src = xb[first::stride]
                bb = np.zeros((xb.shape[0], q))
                if src.shape[0]:
                    s = evaluate(model, src, chunk)
                    if pert is None:
                        bb[first::stride] = -s.reshape(len(src), d)
                    else:
                        bb[first::stride, 0], u = pert.conjugate(src, s, return_field=True)
                        h = pert.fd_step
                        dA = ((obs(src + h * u) - obs(src - h * u)) / (2 * h)).sum(axis=0)
                        dA_sum = dA if dA_sum is None else dA_sum + dA
                        n_src += len(src)
                b_parts.append(bb)
                bar.update(xb.shape[0])
            a_series.append(np.concatenate(a_parts))
            b_series.append(np.concatenate(b_parts))
    finally:
        bar.close()
    return a_series, b_series, None if dA_sum is None else dA_sum / n_src

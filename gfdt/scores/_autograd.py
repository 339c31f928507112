"""Divergence of a torch-defined vector field by automatic differentiation.

Used by :class:`gfdt.ResponseEstimator` for perturbations :math:`u(x)` written in
torch (``autograd=True``). Statistics are float64: the field is evaluated on float64
tensors on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["field_and_divergence", "torch_apply"]


def torch_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    """``fn`` on a float64 tensor of ``x``, back as numpy (no gradients)."""
    with torch.no_grad():
        out = fn(torch.as_tensor(np.asarray(x, dtype=float)))
    return np.asarray(out.detach().cpu().numpy(), dtype=float)


def field_and_divergence(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray,
                         probes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """:math:`u(x)` and :math:`\\nabla \\cdot u(x)` for a batch.

    Parameters
    ----------
    fn : callable
        Maps a float64 tensor ``(batch, *state)`` to ``(batch, *state)``; each output
        state must depend on its own input state only.
    x : numpy.ndarray, shape (batch, ``*state``)
    probes : numpy.ndarray, shape (n_probes, batch, ``*state``), optional
        Hutchinson probes :math:`v`: the divergence is the mean of
        :math:`v^T (\\partial u / \\partial x) v` (one vector-Jacobian product per
        probe). None: the exact trace (one product per coordinate).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``u(x)``, shape (batch, ``*state``), and the divergence, shape (batch,).
    """
    b = x.shape[0]
    xt = torch.as_tensor(np.asarray(x, dtype=float)).clone().requires_grad_(True)
    with torch.enable_grad():
        u = fn(xt)
        if tuple(u.shape) != tuple(xt.shape):
            return u.detach().cpu().numpy(), np.zeros(b)  # the caller reports the shape
        uf = u.reshape(b, -1)
        div = torch.zeros(b, dtype=torch.float64)
        if not u.requires_grad:  # u does not depend on x: divergence 0
            pass
        elif probes is None:
            d = uf.shape[1]
            for i in range(d):
                (g,) = torch.autograd.grad(uf[:, i].sum(), xt, retain_graph=True,
                                           allow_unused=True)
                if g is not None:
                    div += g.reshape(b, -1)[:, i].to(torch.float64)
        else:
            for v in probes:
                vt = torch.as_tensor(v.reshape(b, -1))
                (g,) = torch.autograd.grad((uf * vt).sum(), xt, retain_graph=True,
                                           allow_unused=True)
                if g is not None:
                    div += (g.reshape(b, -1).to(torch.float64) * vt).sum(dim=1)
            div /= len(probes)
    return (np.asarray(u.detach().cpu().numpy(), dtype=float),
            div.detach().cpu().numpy())

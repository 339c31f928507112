"""The compiled RK4 kernel of :class:`gfdt.systems.NavierStokes2D` (numba).

The equations, the forcing and the time stepping are documented in
:mod:`gfdt.systems.navier_stokes`; the system class hands this kernel its symbols and
forcing slots (``NavierStokes2D._kernel_args``).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from rocket_fft import c2c, c2r, r2c

from gfdt.systems._spectral import max_abs

# --------------------------------------------------------------------------- kernel
# The kernel repeats the numpy reference (gfdt.systems._ns_reference) operation for
# operation, so the two agree bit for bit: complex products with the purely imaginary
# derivative symbols and with real symbols are written out in real arithmetic (what
# numpy computes, FMA or not, since one partial product is exactly zero), and sums are
# taken in the same order.


@nb.njit(nogil=True, cache=True)
def _forcing_hat(phase, fh, c, s, sl_r, sl_c, sl_a, sl_b, half_f, mean_kept):  # pragma: no cover
    """Write ``rfft2(f)`` at the forced positions (n, n//2+1) from the phases.

    Position ``q`` (row ``sl_r[q]``, column ``sl_c[q]``, wavenumber ``k`` with
    ``k_x >= 0``) receives :math:`F (e^{i\\phi_a} + e^{-i\\phi_b}) / 2` from the phases
    of ``k`` (index ``sl_a[q]``) and ``-k`` (``sl_b[q]``): the transform of the real part.
    The mean (position 0) keeps ``mean_kept`` of it. Other entries of ``fh`` stay zero.
    """
    for j in range(phase.shape[0]):
        c[j] = half_f * np.cos(phase[j])
        s[j] = half_f * np.sin(phase[j])
    for q in range(sl_r.shape[0]):
        a = sl_a[q]
        b = sl_b[q]
        fh[sl_r[q], sl_c[q]] = complex(c[a] + c[b], s[a] - s[b])
    fh[0, 0] = complex(fh[0, 0].real * mean_kept, fh[0, 0].imag * mean_kept)


@nb.njit(nogil=True, cache=True)
def _jacobian_hat(src, kxd, kyd, ipsi, rows, ncols, B, T, P, J, H, Nh,
                  ax0, ax1, ax2, inv_n2):  # pragma: no cover
    """``Nh = rfft2(psi_x u_y - u_x psi_y)`` from ``src = rfft2(u)`` (band inputs only).

    Only the columns ``< ncols`` of ``Nh`` are written; the caller masks the rows.
    """
    n = J.shape[0]
    for a in rows:
        for b in range(ncols):
            vr = src[a, b].real
            vi = src[a, b].imag
            pr = ipsi[a, b] * vr
            pi = ipsi[a, b] * vi
            kx = kxd[a, b]
            ky = kyd[a, b]
            B[0, a, b] = complex(-(kx * pi), kx * pr)
            B[1, a, b] = complex(-(ky * pi), ky * pr)
            B[2, a, b] = complex(-(kx * vi), kx * vr)
            B[3, a, b] = complex(-(ky * vi), ky * vr)
    # batched inverse transforms; columns >= ncols are zero and skipped
    c2c(B[:, :, :ncols], T[:, :, :ncols], ax1, False, 1.0, 1)
    c2r(T, P, ax2, False, inv_n2, 1)
    for i in range(n):
        for j in range(n):
            J[i, j] = P[0, i, j] * P[3, i, j] - P[2, i, j] * P[1, i, j]
    r2c(J, H, ax1, True, 1.0, 1)
    c2c(H[:, :ncols], Nh[:, :ncols], ax0, True, 1.0, 1)


@nb.njit(nogil=True, cache=True, inline="always")
def _tendency(src, Nh, fh, dmask, damp, adv, a, b):  # pragma: no cover - numba
    """Entry ``(a, b)`` of ``dmask N + D v + (-A d_x) v + f`` (real, imaginary)."""
    vr = src[a, b].real
    vi = src[a, b].imag
    kr = ((dmask[a, b] * Nh[a, b].real + damp[a, b] * vr) + (-(adv[a, b] * vi))) + fh[a, b].real
    ki = ((dmask[a, b] * Nh[a, b].imag + damp[a, b] * vi) + adv[a, b] * vr) + fh[a, b].imag
    return kr, ki


@nb.njit(nogil=True, cache=True)
def _ns_kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold,
               damp, adv, kxd, kyd, ipsi, dmask, rows, ncols,
               sl_r, sl_c, sl_a, sl_b, half_f, mean_kept, dt, phase_sd):  # pragma: no cover
    """Integrate :class:`NavierStokes2D` (see the module docstring for the scheme).

    About 85 lines on purpose: the per-mode algebra is already in helper functions;
    what remains is the time loop with its RK4 stages, saves and divergence checks,
    kept together as the one nogil loop that numba compiles per member.

    ``damp``: real symbol of D; ``adv``: :math:`-A k_x` (the advection symbol is
    ``i * adv``); ``kxd``, ``kyd``: wavenumbers of the derivatives inside the
    Jacobian's band (0 elsewhere); ``ipsi``: :math:`-1/|k|^2`; ``dmask``: the band;
    ``rows``/``ncols``: its rows and column count; ``sl_*``: forcing positions and the
    phases feeding them; ``half_f``: F/2; ``phase_sd``: :math:`\\sqrt{2 D_\\phi\\, dt/2}`,
    the standard deviation of each half-step phase increment.
    """
    n = u.shape[0]
    m = n // 2 + 1
    na = aux.shape[0]
    inv_n2 = 1.0 / (n * n)
    ax01 = np.array([0, 1], dtype=np.int64)
    ax0 = np.array([0], dtype=np.int64)
    ax1 = np.array([1], dtype=np.int64)
    ax2 = np.array([2], dtype=np.int64)
    uh = np.empty((n, m), dtype=np.complex128)
    v = np.empty((n, m), dtype=np.complex128)
    acc = np.empty((n, m), dtype=np.complex128)
    f1 = np.zeros((n, m), dtype=np.complex128)
    f2 = np.zeros((n, m), dtype=np.complex128)
    f4 = np.zeros((n, m), dtype=np.complex128)
    B = np.zeros((4, n, m), dtype=np.complex128)
    T = np.zeros((4, n, m), dtype=np.complex128)
    P = np.empty((4, n, n))
    J = np.empty((n, n))
    H = np.empty((n, m), dtype=np.complex128)
    Nh = np.zeros((n, m), dtype=np.complex128)
    ubuf = np.empty((n, n))
    dw1 = np.empty(na)
    dw2 = np.empty(na)
    ph = np.empty(na)
    cs = np.empty(na)
    sn = np.empty(na)
    h2 = 0.5 * dt
    h6 = dt / 6.0
    r2c(u, uh, ax01, True, 1.0, 1)
    _forcing_hat(aux, f1, cs, sn, sl_r, sl_c, sl_a, sl_b, half_f, mean_kept)
    check_every = save_every if save_every > 0 else 64
    j = 0
    for step in range(1, n_steps + 1):
        # Brownian path of the phases at t + dt/2 (stages 2, 3) and t + dt (stage 4):
        # two half-step increments, all first halves drawn before all second halves
        for q in range(na):
            dw1[q] = phase_sd * rng.standard_normal()
        for q in range(na):
            dw2[q] = phase_sd * rng.standard_normal()
        for q in range(na):
            ph[q] = aux[q] + dw1[q]
        _forcing_hat(ph, f2, cs, sn, sl_r, sl_c, sl_a, sl_b, half_f, mean_kept)
        for q in range(na):
            aux[q] = ph[q] + dw2[q]
        _forcing_hat(aux, f4, cs, sn, sl_r, sl_c, sl_a, sl_b, half_f, mean_kept)
        for stage in range(4):
            src = uh if stage == 0 else v
            fh = f1 if stage == 0 else (f4 if stage == 3 else f2)
            _jacobian_hat(src, kxd, kyd, ipsi, rows, ncols, B, T, P, J, H, Nh,
                          ax0, ax1, ax2, inv_n2)
            # k = dmask N + D v + (-A d_x) v + f, then the RK4 bookkeeping
            if stage == 0:
                for a in range(n):
                    for b in range(m):
                        kr, ki = _tendency(src, Nh, fh, dmask, damp, adv, a, b)
                        acc[a, b] = complex(kr, ki)
                        v[a, b] = complex(uh[a, b].real + h2 * kr, uh[a, b].imag + h2 * ki)
            elif stage < 3:
                c = h2 if stage == 1 else dt
                for a in range(n):
                    for b in range(m):
                        kr, ki = _tendency(src, Nh, fh, dmask, damp, adv, a, b)
                        acc[a, b] = complex(acc[a, b].real + 2.0 * kr,
                                            acc[a, b].imag + 2.0 * ki)
                        v[a, b] = complex(uh[a, b].real + c * kr, uh[a, b].imag + c * ki)
            else:
                for a in range(n):
                    for b in range(m):
                        kr, ki = _tendency(src, Nh, fh, dmask, damp, adv, a, b)
                        uh[a, b] = complex(uh[a, b].real + h6 * (acc[a, b].real + kr),
                                           uh[a, b].imag + h6 * (acc[a, b].imag + ki))
        f1, f4 = f4, f1
        do_save = save_every > 0 and step % save_every == 0
        if do_save or step % check_every == 0 or step == n_steps:
            target = out[j] if do_save else ubuf
            c2r(uh, target, ax01, False, inv_n2, 1)
            if not (max_abs(target) <= threshold):
                u[:, :] = target
                return step
            if do_save:
                aux_out[j, :] = aux
                j += 1
    c2r(uh, u, ax01, False, inv_n2, 1)
    return -1

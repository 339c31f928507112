"""The rule by which denoising score matching chooses its noise range and batch size."""

from __future__ import annotations

__all__ = ["dsm_defaults", "max_vector_steps", "vector_steps"]


def dsm_defaults(state_shape: tuple[int, ...], n_train: int, network: str = "auto") -> dict:
    """The noise range, batch size and training length DSM uses when they are not given:
    a rule of the data's shape and size, the same for every system.

    - **Fields** (2-D states with a convolutional network, ``network`` ``"auto"``,
      ``"cnn"``, ``"local"`` or ``"unet"``): ``sigma`` in ``[0.01, 0.2]``, batch 64. Every
      grid point is a sample of the local statistics, so a small batch of fields carries
      many samples, and a narrow small-noise range is what the GFDT needs (Allen-Cahn:
      relative response error 0.23 against 3.3 with ``[0.05, 1]``).
    - **Vectors** (everything else, the MLP): ``sigma`` in ``[0.05, 1]``, batch 512 (at
      most a quarter of the training samples, at least 16). At small noise alone the
      sigma^2-weighted loss is dominated by the variance of its noise target and the
      non-Gaussian part of the score (about 1e-3 of the loss) is invisible in a batch of
      64: the network collapses to the Gaussian (4-D double-well chain: response error
      0.43 against 0.10 with this rule; the exact score gives 0.10). Noise up to the
      data's scale lets the network see the multi-modal structure, which the noise
      conditioning carries down to ``sigma_min``.

    Noise levels are in units of the standardised data (per coordinate for vectors, one
    scalar for homogeneous fields).

    **Training length** (``max_steps``). Fields: 4000 steps. Vectors: by the data and the
    dimension, :func:`vector_steps`.

    Parameters
    ----------
    state_shape : tuple of int
        Shape of one state.
    n_train : int
        Training samples.
    network : str
        The ``network`` parameter (``"module"`` for a user's module).

    Returns
    -------
    dict
        ``kind`` ("field" or "vector"), ``sigma_min``, ``sigma_max``, ``batch_size``,
        ``max_steps``.
    """
    field = len(state_shape) == 2 and network in ("auto", "cnn", "local", "unet", "module")
    if field:
        return {"kind": "field", "sigma_min": 0.01, "sigma_max": 0.2,
                "batch_size": int(min(64, max(1, n_train // 4))), "max_steps": 4000}
    batch = int(min(512, max(16, n_train // 4)))
    d = 1
    for n in state_shape:
        d *= int(n)
    return {"kind": "vector", "sigma_min": 0.05, "sigma_max": 1.0, "batch_size": batch,
            "max_steps": vector_steps(n_train, batch, d)}


def vector_steps(n_train: int, batch_size: int, dim: int) -> int:
    """Optimisation steps of a vector score: ``EPOCHS`` passes over the training samples,
    at least ``MIN_STEPS`` and at most ``max_vector_steps(dim)``.

    Early stopping on the held-out loss ends the training sooner when it stops
    improving; the cap keeps a fit within minutes on two CPU cores.
    """
    by_data = round(EPOCHS * n_train / max(1, batch_size))
    return int(min(max(by_data, MIN_STEPS), max_vector_steps(dim)))


#: Passes over the training samples of a vector score (before the caps).
EPOCHS = 20
#: Fewest steps of a vector score (small data sets: many passes, early stopping decides).
MIN_STEPS = 1000


def max_vector_steps(dim: int) -> int:
    """Most steps of a vector score of ``dim`` coordinates."""
    return 4000

"""Reduction of gridded fields before the GFDT: EOFs with area weights and masks.

:class:`EOF` finds the leading empirical orthogonal functions of a field (area-weighted,
land and constant points masked) and maps between the grid and the principal components;
:class:`gfdt.ResponseEstimator` composes with it through ``reduce=EOF(...)``.
"""

from gfdt.reduce.eof import EOF

__all__ = ["EOF"]

"""How the suite compares computed floats: with a stated tolerance, never to the last bit.

numpy's vectorised loops (power, sqrt, exp, the BLAS behind matrix products) are built per instruction set: a
machine with AVX-512 or FMA and one without may round a result differently in its last bit or two, and the same
machine may round an element differently depending on where it falls in an array (SIMD lane or scalar tail).
So a value computed here and one computed elsewhere (the authors' released matrices) or through another array
shape agree to about 1e-16 relative, not bit for bit. ``FLOAT_RTOL`` is far above that and far below any real
change (moving any constant of the reward formulas moves the matrices by more than 1e-6).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLOAT_RTOL = 1e-12
"""Relative tolerance for recomputed floats (the released matrices carry 17 significant digits)."""
FLOAT_ATOL = 1e-15
"""Absolute floor for entries that are 0 on one side and a rounding residue on the other."""


def assert_floats_close(actual: Any, expected: Any, rtol: float = FLOAT_RTOL, atol: float = FLOAT_ATOL) -> None:
    """``actual`` equals ``expected`` (scalars or arrays of one shape) within ``rtol`` relative plus ``atol``."""
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=atol)

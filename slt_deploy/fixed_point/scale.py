"""The layer scale: exact rationals ``num/den`` and the choice of ``vth`` that puts them on the integer grid.

Per neuron ``o`` the conversion multiplies every ratio (weight/θ, bias/θ, reset/θ) by one
layer scale, the threshold mantissa ``vth``; :func:`choose_scale` takes the smallest ``vth``
that makes every product an integer within its bit width (times a power of two where the
decays need low zero bits), else the one that fills the weight range.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .chip import ChipSpec
from .exactness import decay_bits, valuation

EXACT_SEARCH_CAP = 50_000   # distinct ratios beyond which no exact scale is searched


class Ratio:
    """Exact rationals ``num / den`` (float64 inputs), with their values at a scale as integers."""

    def __init__(self, num: np.ndarray, den: np.ndarray) -> None:
        num = np.asarray(num, np.float64)
        den = np.broadcast_to(np.asarray(den, np.float64), num.shape)
        self.approx = num / den
        self.fracs: list[Fraction] | None = None
        if num.size == 0:
            self.fracs, self.inv = [], np.zeros(0, np.int64)
            return
        pairs = np.stack([num, den], axis=1)
        uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
        if len(uniq) <= EXACT_SEARCH_CAP:
            self.fracs = [Fraction(float(a)) / Fraction(float(b)) for a, b in uniq]
            self.inv = inv.reshape(-1)

    @property
    def size(self) -> int:
        return int(self.approx.size)

    def lcm(self, limit: int) -> int | None:
        """The lcm of the denominators, or None when it exceeds ``limit`` (or the ratios are too many)."""
        if self.fracs is None:
            return None
        L = 1
        for f in self.fracs:
            L = L * f.denominator // math.gcd(L, f.denominator)
            if L > limit:
                return None
        return L

    def at(self, scale: int) -> tuple[np.ndarray, bool]:
        """``round(ratio · scale)`` as float64 integers, and whether every product was an integer."""
        if self.fracs is None:
            k = np.round(self.approx * scale)
            return k, False
        vals = [f * scale for f in self.fracs]
        k = np.array([float(round(v)) for v in vals], np.float64)[self.inv] if vals else np.zeros(0)
        return k, all(v.denominator == 1 for v in vals)


def choose_scale(ratios: list[Ratio], b_ratio: Ratio, reset_ratio: Ratio, cur_max: float, dv: np.ndarray,
                 T: int, chip: ChipSpec) -> tuple[int, str]:
    """The layer scale (= vth): exact -- every ratio·vth an integer on the grid -- if possible, else precise.

    Exact candidates are ``L·2^j`` (L: the lcm of all denominators); the first whose integers
    fit is taken, or a later one when decays need more low zero bits and no overflow bound
    is crossed. Otherwise the scale fills the weight range (bias range and, where that keeps
    >= 16 weight levels, the current bound ``|a| < chip.current_max`` permitting).
    """
    w_max = max((float(np.abs(r.approx).max(initial=0.0)) for r in ratios), default=0.0)
    b_max = float(np.abs(b_ratio.approx).max(initial=0.0))
    v_over = int(chip.current_max / cur_max) if cur_max > 0 else chip.vth_max    # |a| = vth · cur < current_max
    exact = _exact_scale(ratios, b_ratio, reset_ratio, w_max, b_max, v_over, dv, T, chip)
    if exact is not None:
        return exact, ""
    cands = [chip.vth_max]
    if w_max > 0:
        cands.append(int(chip.weight_mant_max / w_max))
    if b_max > 0:
        cands.append(int(chip.bias_mant_max / b_max))
    vth = max(1, min(cands))
    if w_max > 0 and v_over < vth and v_over * w_max >= 16:
        vth = max(1, v_over)
    return vth, (f"no vth ≤ 2^{chip.vth_bits}−1 puts every weight/θ and bias/θ ratio on the {chip.weight_bits}-bit "
                 "integer grid")


def _exact_scale(ratios: list[Ratio], b_ratio: Ratio, reset_ratio: Ratio, w_max: float, b_max: float, v_over: int,
                 dv: np.ndarray, T: int, chip: ChipSpec) -> int | None:
    """The smallest ``L·2^j`` whose integers fit (later while decays need low bits), or None."""
    Ls = [r.lcm(chip.vth_max) for r in [*ratios, b_ratio, reset_ratio]]
    if any(L is None for L in Ls):
        return None
    L = 1
    for x in Ls:
        L = L * x // math.gcd(L, x)  # type: ignore[operator]
    need = int(decay_bits(np.unique(dv), chip).max(initial=0)) * max(T - 1, 0)
    first = None
    vth = L
    while vth <= chip.vth_max and w_max * vth <= chip.weight_max and b_max * vth <= chip.bias_mant_max:
        ks = [r.at(vth)[0] for r in ratios]
        even = all(bool(np.all(np.mod(k, 2) == 0)) for k in ks)
        if w_max * vth <= chip.weight_mant_max or even:
            first = first or vth
            if valuation([*ks, b_ratio.at(vth)[0]]) + chip.vth_shift >= need or 2 * vth > v_over:
                return vth
        vth *= 2
    return first


__all__ = ["EXACT_SEARCH_CAP", "Ratio", "choose_scale"]

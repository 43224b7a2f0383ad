"""What the conversion can prove: bit-level facts about integers and floats, and worst-case bounds.

A layer's chip spikes equal the float32 reference's when (a) the conversion is exact --
integer weights, bias and reset hit the grid, the decays never drop a bit within T steps
(``act_shift + v2(gcd of increments) ≥ z·(T − 1)``, where ``(D − dv)/D = odd / 2^z``) and no
state wraps or clips -- and (b) the float32 reference itself computes exactly: all increments
are multiples of one power of two ``P`` and every membrane value stays below ``2^24·P``
(divided by ``2^(z·(T−1))`` with decays). This module computes those facts;
:mod:`.convert` states them per layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .chip import ChipSpec
from .integers import FixedSynapse
from .plan import PlanLayer
from .sparse import SparseMap


def v2(n: int) -> int:
    """2-adic valuation of a nonzero integer."""
    n = abs(int(n))
    return (n & -n).bit_length() - 1


def low_bit_exponent(vals: np.ndarray) -> np.ndarray:
    """Exponent of the lowest set bit of each float64 (``v = odd · 2^e``); +inf for zeros."""
    vals = np.asarray(vals, np.float64)
    out = np.full(vals.shape, np.inf)
    nz = vals != 0
    mant, exp = np.frexp(vals[nz])
    m = np.abs(mant * 2.0**53).astype(np.int64)
    low = m & -m
    out[nz] = exp - 53 + np.log2(low.astype(np.float64))
    return out


def _per_row_min(rows: np.ndarray, vals: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, np.inf)
    if rows.size:
        np.minimum.at(out, rows, vals)
    return out


def decay_bits(dv: np.ndarray, chip: ChipSpec) -> np.ndarray:
    """Bits each decay consumes: (D − dv)/D = odd / 2^z (0 for β = 1 and β = 0)."""
    unity = chip.decay_unity
    return np.array([chip.decay_shift - v2(unity - d) if 0 < d < unity else 0 for d in dv.tolist()], np.int64)


def valuation(arrays: list[np.ndarray]) -> int:
    """v2 of the gcd of all nonzero integers in ``arrays`` (99 when there are none)."""
    vals = np.concatenate([np.abs(a).astype(np.int64) for a in arrays]) if arrays else np.zeros(0, np.int64)
    vals = vals[vals != 0]
    return v2(int(np.gcd.reduce(vals))) if vals.size else 99


def row_gcd(synapses: list[FixedSynapse], bias: np.ndarray, n: int) -> np.ndarray:
    """Per neuron, gcd of all integer increments (weights and bias) in U units."""
    g = np.zeros(n, np.int64)
    for syn in synapses:
        order = np.argsort(syn.W.rows, kind="stable")
        rows, vals = syn.W.rows[order], np.abs(syn.W.vals[order].astype(np.int64))
        if rows.size:
            starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
            g[rows[starts]] = np.gcd(g[rows[starts]], np.gcd.reduceat(vals, starts))
    return np.gcd(g, np.abs(bias))


def source_bounds(pl: PlanLayer, ratios: list[np.ndarray], x_info: dict[str, Any], enc: str) -> np.ndarray:
    """Per neuron, a bound on |Σ ratio · x| per step (worst case for spikes, actual for direct input)."""
    n = pl.size
    cur = np.zeros(n)
    for s, r in zip(pl.sources, ratios, strict=True):
        if s.graded and "values" in x_info:
            vals = x_info["values"]
            if enc == "direct":
                xv = vals.reshape(vals.shape[0], -1)
                cur += np.abs(SparseMap(s.M.shape, s.M.rows, s.M.cols, r).apply(xv)).max(axis=0)
            else:
                xv = np.abs(vals).reshape(-1, s.M.shape[1]).max(axis=0)
                cur += np.bincount(s.M.rows, weights=np.abs(r) * xv[s.M.cols], minlength=n)
        else:
            cur += np.bincount(s.M.rows, weights=np.abs(r), minlength=n)
    return cur


def int_bounds(synapses: list[FixedSynapse], n: int, x_info: dict[str, Any], enc: str) -> np.ndarray:
    """Per neuron, a bound on |a| = |Σ W · x_int| per step, in integers."""
    a = np.zeros(n)
    for syn in synapses:
        if syn.graded and "values" in x_info:
            vals = x_info["values"]
            if enc == "direct":
                xv = vals.reshape(vals.shape[0], -1).astype(np.int64)
                a += np.abs(syn.W.apply(xv)).max(axis=0)
            else:
                xv = np.abs(vals).reshape(-1, syn.W.shape[1]).max(axis=0)
                a += np.bincount(syn.W.rows, weights=np.abs(syn.W.vals) * xv[syn.W.cols], minlength=n)
        else:
            a += np.bincount(syn.W.rows, weights=np.abs(syn.W.vals.astype(np.float64)), minlength=n)
    return a


def float_exact(pl: PlanLayer, T: int, x_info: dict[str, Any], r_amt: np.ndarray | None, dv: np.ndarray,
                decay_on_grid: bool, chip: ChipSpec) -> bool | None:
    """Whether the float32 reference computes this layer exactly (see the module docstring).

    None: it depends on graded input values that are not known yet.
    """
    if not decay_on_grid:
        return False
    n = pl.size
    low = np.full(n, np.inf)
    vmax = np.zeros(n)
    unknown = False
    for s in pl.sources:
        e = low_bit_exponent(s.M.vals)
        xm = 1.0
        if s.graded:
            if "values" not in x_info:
                unknown = True
                continue
            if not x_info.get("exact"):
                return False
            xv = x_info["values"] / (1 << x_info["frac_bits"])
            e = e + (float(low_bit_exponent(xv[xv != 0]).min()) if np.any(xv != 0) else 0.0)
            xm = float(np.abs(xv).max(initial=0.0))
        low = np.minimum(low, _per_row_min(s.M.rows, e, n))
        vmax += s.M.row_abs_sum() * xm
    low = np.minimum(low, low_bit_exponent(pl.bias))
    vmax += np.abs(pl.bias)
    if r_amt is not None:
        low = np.minimum(low, low_bit_exponent(r_amt))
        vmax += np.abs(r_amt)
    vmax *= T
    low_eff = low - decay_bits(dv, chip) * max(T - 1, 0)
    finite = np.isfinite(low_eff)
    if not np.all(low_eff[finite] >= -126):
        return False
    with np.errstate(over="ignore"):
        ok = np.where(finite, vmax < np.exp2(np.where(finite, low_eff, 0) + 24), True)
    if not np.all(ok):
        return False
    return None if unknown else True


__all__ = ["decay_bits", "float_exact", "int_bounds", "low_bit_exponent", "row_gcd", "source_bounds", "v2",
           "valuation"]

"""The network input as an integer chip receives it: 0/1 spikes, or graded spikes ``round(x · 2^s)``.

Rate-coded and 0/1 spike-train input is sent as it is. Direct (analog) input and graded
spike trains are sent as graded spikes ``x_int = round(x · 2^s)``: s is the smallest value
``≤ input_frac_bits_max`` that makes every ``x · 2^s`` an integer, else the largest that keeps
``|x_int| ≤ input_max`` (the chip's graded message width); a caller may force s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SltInputError
from ..ir.graph import Ticket
from ..result import check_input, encode_step, rate_coder
from .chip import LOIHI2, ChipSpec


def input_scale(ticket: Ticket, x: np.ndarray | None, forced: int | None,
                chip: ChipSpec = LOIHI2) -> tuple[int, dict[str, Any]]:
    """The graded-input scale s (x_int = round(x·2^s)) and what is known about the input."""
    kind = ticket.encoding.kind
    s_max, x_max = chip.input_frac_bits_max, chip.input_max
    if forced is not None and (not isinstance(forced, (int, np.integer)) or isinstance(forced, bool)
                               or not 0 <= forced <= s_max):
        raise SltInputError(f"input_frac_bits must be an integer in [0, {s_max}], got {forced!r}")
    if kind == "rate":
        return 0, {"kind": "rate", "binary": True, "exact": True, "max": 1}
    if x is None:
        if kind == "spikes":
            return 0, {"kind": "spikes", "binary": True, "exact": True, "max": 1}
        s = int(forced or 0)
        return s, {"kind": "direct", "binary": False, "exact": None, "max": None, "frac_bits": s,
                   "note": "direct (analog) input is sent as graded spikes round(x·2^s)"
                           + ("" if forced is not None else "; s is chosen per run")}
    x = check_input(ticket, x)
    if kind == "spikes" and np.all((x == 0) | (x == 1)):
        return 0, {"kind": "spikes", "binary": True, "exact": True, "max": 1}
    top = float(np.abs(x).max(initial=0.0))
    if forced is not None:
        s = int(forced)
    else:
        s_fit = s_max if top == 0 else max(0, min(s_max, int(math.floor(math.log2(x_max / top)))))
        s_exact = next((b for b in range(s_max + 1)
                        if np.all(x * (1 << b) == np.round(x * (1 << b)))), None)
        s = s_exact if s_exact is not None and s_exact <= s_fit else s_fit
    xi = np.round(x * (1 << s))
    exact = bool(np.all(xi == x * (1 << s))) and float(np.abs(xi).max(initial=0)) <= x_max
    info = {"kind": kind, "binary": False, "exact": exact, "frac_bits": s, "max": float(np.abs(xi).max(initial=0)),
            "max_error": float(np.abs(xi / (1 << s) - x).max(initial=0)), "values": xi}
    if not exact:
        info["note"] = f"graded input round(x·2^{s}) differs from x by up to {info['max_error']:.3g}"
    return s, info


def integer_inputs(ticket: Ticket, x: np.ndarray, s_bits: int, chip: ChipSpec = LOIHI2) -> np.ndarray:
    """Per-step integer input ``(T, batch, n_in)``: the spikes (rate/spike trains) or round(x·2^s)."""
    x = check_input(ticket, x)
    T = ticket.timesteps
    coder = rate_coder(ticket, x)
    kind = ticket.encoding.kind
    batch = x.shape[1] if kind == "spikes" else x.shape[0]
    steps = []
    for t in range(T):
        step = encode_step(ticket, x, t, coder, np.float64).reshape(batch, -1)
        steps.append(step)
    out = np.stack(steps)
    if kind == "rate" or (kind == "spikes" and np.all((out == 0) | (out == 1))):
        return out.astype(np.int64)
    xi = np.round(out * (1 << s_bits))
    if np.abs(xi).max(initial=0) > chip.input_max:
        raise SltInputError(f"graded input exceeds ±{chip.input_max} after scaling by 2^{s_bits}; rescale the input")
    return xi.astype(np.int64)


__all__ = ["input_scale", "integer_inputs"]

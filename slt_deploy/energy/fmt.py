"""Formatting shared by every rendering of an energy report: energies with units, counts,
savings in words, and per-layer labels (``0 conv 8×3×3``)."""

from __future__ import annotations

import math

from ..ir.graph import Ticket
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, SumPool2d

_UNITS = ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"), (1.0, "pJ"))
KIND_SHORT = {"conv2d": "conv", "linear": "linear", "lif": "lif", "li": "li", "maxpool2d": "maxpool",
              "avgpool2d": "avgpool", "sumpool2d": "sumpool", "flatten": "flatten", "add": "add"}


def fmt_energy(pj: float) -> str:
    """``1234.5`` -> ``'1.23 nJ'`` (input in picojoules)."""
    for scale, unit in _UNITS:
        if abs(pj) >= scale:
            return f"{pj / scale:.3g} {unit}"
    return f"{pj:.3g} pJ"


def fmt_count(n: float) -> str:
    """Integers with thousands separators, other values with one decimal."""
    return f"{int(n):,}" if float(n).is_integer() else f"{n:,.1f}"


def fmt_ratio(ratio: float | None) -> str:
    """``E_B / E_ticket`` in words: ``saves 2.44x``, ``costs 1.32x more`` (never ``0.76x saving``)."""
    if ratio is None or not math.isfinite(ratio):
        return "undefined (ticket energy is 0)"
    if ratio >= 1.0:
        return f"saves {ratio:.2f}x" if ratio >= 1.005 else "about equal"
    return f"costs {1.0 / ratio:.2f}x more" if ratio > 0 else "costs more (baseline energy 0)"


def layer_label(ticket: Ticket, name: str) -> str:
    """``0 conv 8×3×3``: node name, short kind, and shape (weights, window, or neurons)."""
    node = ticket.node(name)
    kind = KIND_SHORT.get(node.kind, node.kind)
    if isinstance(node, Conv2d):
        c_out, _, kh, kw = node.weights.mask.shape
        shape = f"{c_out}×{kh}×{kw}" + (f"/s{node.stride[0]}" if node.stride != (1, 1) else "")
    elif isinstance(node, Linear):
        shape = f"{node.in_features}→{node.out_features}"
    elif isinstance(node, (MaxPool2d, AvgPool2d, SumPool2d)):
        shape = "×".join(map(str, node.kernel_size))
    elif isinstance(node, Flatten):
        shape = f"→{ticket.shapes[name][0]}"
    elif isinstance(node, Add):
        shape = f"{len(ticket.inputs_of(name))} inputs"
    else:
        shape = "×".join(map(str, ticket.shapes[name]))
    return f"{name} {kind} {shape}"

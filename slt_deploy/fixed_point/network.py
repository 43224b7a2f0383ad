"""A converted ticket: its plan, its integer layers and its chip; run it and package the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir.graph import Ticket
from ..registry import FIXED_REFERENCE
from ..result import Diagnostics, Result, build_result
from .chip import LOIHI2, ChipSpec
from .inputs import integer_inputs
from .integers import FixedLayer
from .plan import Plan
from .simulate import run_layers


@dataclass
class FixedNetwork:
    """A ticket in a chip's integers; :meth:`simulate` is the fixed-point reference."""

    plan: Plan
    layers: list[FixedLayer]
    input_frac_bits: int        # graded input x_int = round(x · 2^s)
    report: dict[str, Any]
    chip: ChipSpec = field(default=LOIHI2)

    @property
    def ticket(self) -> Ticket:
        return self.plan.ticket

    @property
    def depth(self) -> int:
        return self.plan.depth

    def layer(self, name: str) -> FixedLayer:
        return next(layer for layer in self.layers if layer.name == name)

    def input_values(self, x: np.ndarray) -> np.ndarray:
        """Integer input ``(T, batch, n_in)`` exactly as the chip receives it (spikes, or graded x·2^s)."""
        return integer_inputs(self.ticket, x, self.input_frac_bits, self.chip)

    def simulate(self, x: np.ndarray, clamp_conv: bool | None = None, record: bool = True) -> Result:
        """The fixed-point reference: Lava's fixed_pt arithmetic in ticket time (no connection delays).

        ``clamp_conv``: synapses that are one convolution wrap their sums to 24 bits, as
        Lava's ``Conv`` process does. ``None`` follows the Lava target's own choice (it uses
        ``Conv`` when the batch is 1). The result's ``diagnostics.saturation``: layer -> number
        of wrapped or clipped values (0 everywhere means no state ever left its bit width).
        """
        xi = self.input_values(x)
        if clamp_conv is None:
            clamp_conv = xi.shape[1] == 1
        outs, sat = run_layers(self.layers, self.plan.input_name, xi, clamp_conv, self.chip)
        values = {}
        for layer in self.layers:
            arr = np.stack(outs[layer.name]).astype(np.float64)
            values[layer.name] = layer.readout(arr) if layer.kind == "li" else arr
        return package_result(self.ticket, values, self.plan.output, record, FIXED_REFERENCE.name,
                              Diagnostics(conversion=self.report, saturation=sat))


def package_result(ticket: Ticket, values: dict[str, np.ndarray], output_layer: str, record: bool,
                   target: str, diagnostics: Diagnostics | None = None) -> Result:
    """A :class:`Result` from per-layer outputs ``(T, batch, n)`` (spikes 0/1, or LI values) keyed by node name."""
    layers: dict[str, np.ndarray] = {}
    for name, arr in values.items():
        layers[name] = np.asarray(arr).astype(np.float32).reshape(arr.shape[0], arr.shape[1], *ticket.shapes[name])
    out = layers[output_layer]
    layers[ticket.output.name] = out.reshape(out.shape[:2] + tuple(ticket.output_shape))
    return build_result(ticket, target, layers, record=record, diagnostics=diagnostics)


__all__ = ["FixedNetwork", "package_result"]

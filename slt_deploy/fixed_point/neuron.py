"""The one mapping of a plan layer's neurons to Loihi's leaky neuron, shared by every Loihi backend.

Loihi's neuron (integer or Lava's floating-point model) is leaky with a fully decaying
current, so each of the ticket's neuron forms becomes, per neuron,

    v = β·v + g·(Σ M·x + b)        s = v > θ        then the reset

- LIF, charge ``leaky``:       β as given, g = 1
- LIF, charge ``decay_input``: β = 1 − 1/τ, g = 1/τ  (v + (I − v)/τ in leaky form)
- LIF, charge ``leaky_tau``:   β = 1 − 1/τ, g = 1    ((v − v/τ) + I in leaky form)
- LI readout:                  β as given, g = 1, no threshold (θ = 1 only sets the scale), reset ``none``
- OR layer (MaxPool of spikes): β = 0, θ = 1/2, zero reset: fires when any input spiked

The reset amount ``r`` is the LIF's ``reset_amount`` for the subtracting resets
(``subtract``, ``subtract_delayed``) and **0 otherwise**: a zero or no reset never uses it, so
it must not enter the conversion's scale, its exactness proofs or the overflow bounds. (The
Lava float target once carried θ there for every reset; harmless in its float model, but a
second copy of the mapping that had already drifted. Both now read this function.)

The fixed-point conversion (:mod:`.convert`) scales this form to integers; the Lava target's
``floating_pt`` mode runs it as it is (``du = 1``, ``dv = 1 − β``, ``vth = θ``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir.neurons import LIF
from .plan import PlanLayer

SUBTRACTING_RESETS = ("subtract", "subtract_delayed")


@dataclass(frozen=True)
class LeakyForm:
    """A plan layer's neurons in Loihi's leaky form (float64 per neuron; see the module docstring)."""

    beta: np.ndarray
    gain: np.ndarray
    theta: np.ndarray
    reset: str                          # zero | subtract | subtract_delayed | none
    reset_amount: np.ndarray            # r (0 unless the reset subtracts)
    same_operations: bool               # the float reference computes this very form (charge "leaky")
    note: str | None = None             # why not, when it does not


def leaky_form(layer: PlanLayer) -> LeakyForm:
    """The leaky form of ``layer``'s neurons (an OR layer, an LI readout or a LIF layer)."""
    return _FORMS[layer.kind](layer)


def _or_form(layer: PlanLayer) -> LeakyForm:
    n = layer.size
    return LeakyForm(np.zeros(n), np.ones(n), np.full(n, 0.5), "zero", np.zeros(n), True)


def _li_form(layer: PlanLayer) -> LeakyForm:
    n = layer.size
    beta = layer.node.beta.astype(np.float64).reshape(-1)  # type: ignore[union-attr]
    return LeakyForm(beta, np.ones(n), np.ones(n), "none", np.zeros(n), True)


def _lif_form(layer: PlanLayer) -> LeakyForm:
    lif: LIF = layer.node  # type: ignore[assignment]
    n = layer.size
    theta = lif.threshold.astype(np.float64).reshape(-1)  # type: ignore[union-attr]
    r_amt = (lif.reset_amount.astype(np.float64).reshape(-1) if lif.reset in SUBTRACTING_RESETS  # type: ignore[union-attr]
             else np.zeros(n))
    if lif.charge == "leaky":
        return LeakyForm(lif.beta.astype(np.float64).reshape(-1), np.ones(n), theta, lif.reset,  # type: ignore[union-attr]
                         r_amt, True)
    tau = lif.tau.astype(np.float64).reshape(-1)  # type: ignore[union-attr]
    gain = 1.0 / tau if lif.charge == "decay_input" else np.ones(n)
    note = (f"charge '{lif.charge}': Loihi runs the equivalent leaky form (β = 1 − 1/τ"
            + (", input scaled by 1/τ" if lif.charge == "decay_input" else "")
            + "); the float reference rounds in its own operation order")
    return LeakyForm(1.0 - 1.0 / tau, gain, theta, lif.reset, r_amt, False, note)


_FORMS: dict[str, Callable[[PlanLayer], LeakyForm]] = {"or": _or_form, "li": _li_form, "lif": _lif_form}


__all__ = ["SUBTRACTING_RESETS", "LeakyForm", "leaky_form"]

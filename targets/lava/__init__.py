"""Lava target: run a ticket as lava-nc processes on Loihi 2's simulation (``Loihi2SimCfg``).

    run(ticket, x, mode="fixed_pt")      # Loihi's integer dynamics (bit-accurate LIF, Dense/Sparse/Conv)
    run(ticket, x, mode="floating_pt")   # Lava's floating-point models of the same network
    conversion_report(ticket)            # per layer: the integers chosen and what is exact (no Lava needed)

``fixed_pt`` runs the integers of :func:`slt_deploy.fixed_point.to_fixed` (for
:data:`slt_deploy.fixed_point.LOIHI2`); its spikes equal
:meth:`slt_deploy.fixed_point.FixedNetwork.simulate` exactly, and the float reference's where
the conversion report says ``spikes_equal_reference: true``.
``floating_pt`` runs the same leaky neurons (:func:`slt_deploy.fixed_point.leaky_form`, the one
mapping both modes share) in float64 with Lava's operation order; it equals the float32
reference where the reference itself computes exactly (binary tickets on a power-of-two
grid; see the report's ``float_reference``).

Lava itself is imported only when a run starts (with the Python 3.11 fix of
:mod:`._compat`). Every result carries ``result.diagnostics.conversion`` (the report of the
run, with the Lava process kind used per connection). Lava adds one step per connection; the
target runs T + depth steps and returns the T aligned steps (docs/targets-lava.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slt_deploy.errors import SltInputError
from slt_deploy.fixed_point import make_plan, to_fixed
from slt_deploy.ir.graph import Ticket
from slt_deploy.result import Result

from ._compat import import_lava, lava_available

MODES = ("fixed_pt", "floating_pt")


def run(ticket: Ticket, x: np.ndarray, mode: str = "fixed_pt", synapse: str = "auto", record: bool = True,
        input_frac_bits: int | None = None, progress: Callable[[int, int], None] | None = None,
        **options: Any) -> Result:
    """Run ``ticket`` on ``x`` with lava-nc on Loihi2SimCfg.

    ``mode``: ``fixed_pt`` (Loihi integers) or ``floating_pt``. ``synapse``: ``auto``
    (Conv for single convolutions and Dense for small layers when the batch is 1, else
    block-diagonal Sparse), ``dense`` or ``sparse``. ``record``: keep every layer's spikes
    (for the energy model); otherwise only the output. ``input_frac_bits``: fixed_pt with
    direct (analog) input sends ``round(x·2^s)``; s is chosen from ``x`` unless given here
    (give the value a netx export reports to get the exported network's spikes).
    ``progress(done, total)``: called as the simulation advances, in simulated steps.
    """
    if options:
        raise SltInputError(f"unknown option(s) for the Lava target: {', '.join(sorted(options))}")
    if mode not in MODES:
        raise SltInputError(f"mode must be one of {MODES}, got {mode!r}")
    from ._network import run_network

    return run_network(ticket, x, mode, synapse=synapse, record=record, input_frac_bits=input_frac_bits,
                       progress=progress)


def conversion_report(ticket: Ticket, mode: str = "fixed_pt", x: np.ndarray | None = None,
                      input_frac_bits: int | None = None) -> dict[str, Any]:
    """What running ``ticket`` on Lava means, per layer, without running it (no Lava import).

    ``x`` and ``input_frac_bits`` matter for direct (analog) input only (the graded-input scale).
    """
    if mode == "fixed_pt":
        return to_fixed(ticket, x, input_frac_bits=input_frac_bits).report
    if mode != "floating_pt":
        raise SltInputError(f"mode must be one of {MODES}, got {mode!r}")
    fixed = to_fixed(ticket, x).report  # float exactness of the reference is computed there
    plan = make_plan(ticket)
    layers = []
    for layer in fixed["layers"]:
        exact = layer["exact"]["float_reference"]
        layers.append({"layer": layer["layer"], "kind": layer["kind"], "depth": layer["depth"],
                       "spikes_equal_reference": exact,
                       "notes": [] if exact else ["Lava computes in float64 in its own operation order; the float32 "
                                                  "reference rounds differently unless all values sit on one "
                                                  "power-of-two grid"]})
    claims = [layer["spikes_equal_reference"] for layer in layers]
    equal = False if False in claims else (None if None in claims else True)
    return {"mode": "floating_pt", "delay_steps": plan.depth, "spikes_equal_reference": equal, "layers": layers}


def semantics(ticket: Ticket, mode: str = "fixed_pt", x: np.ndarray | None = None) -> tuple[set[str], list[str]]:
    """The arithmetic a Lava run of ``ticket`` provably implements, and the report's notes.

    fixed point: Loihi's integers of :mod:`slt_deploy.fixed_point` (always, for ``fixed_pt``);
    float32: the float32 reference's spikes (where the conversion report proves them equal).
    """
    from slt_deploy.registry import FIXED, FLOAT32

    report = conversion_report(ticket, mode, x)
    sem: set[str] = {FIXED} if mode == "fixed_pt" else set()
    if report["spikes_equal_reference"] is True:
        sem.add(FLOAT32)
    notes = [f"{layer['layer']}: {note}" for layer in report["layers"] for note in layer.get("notes", [])]
    if mode == "fixed_pt":
        notes.append(report["delay_note"])
    return sem, notes


def fixed_semantics(ticket: Ticket, x: np.ndarray | None = None) -> tuple[set[str], list[str]]:
    """:func:`semantics` of the ``fixed_pt`` mode (the registry's hook for the Lava target)."""
    return semantics(ticket, "fixed_pt", x)


def float_semantics(ticket: Ticket, x: np.ndarray | None = None) -> tuple[set[str], list[str]]:
    """:func:`semantics` of the ``floating_pt`` mode (the registry's hook for the Lava float target)."""
    return semantics(ticket, "floating_pt", x)


__all__ = ["MODES", "conversion_report", "fixed_semantics", "float_semantics", "import_lava", "lava_available", "run",
           "semantics"]

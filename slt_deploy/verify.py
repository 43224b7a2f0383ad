"""`slt verify`: run one ticket on several targets with the same input and compare them.

For every pair of targets the agreement matrix holds:

- ``spike_agreement``: fraction of equal output values over ``(T, batch, *out)``;
- ``argmax_agreement``: fraction of samples with the same predicted class;
- ``first_divergence``: the first time step and node (in graph order) where the recorded
  per-layer outputs differ, over the layers both targets recorded;
- ``max_abs_dv``: the largest |difference| of the output values where the output is a
  membrane (LI readout), else None.

A pair is *exact by design* when both targets implement the same arithmetic, as the
registry declares it (:mod:`slt_deploy.registry`): the float32 semantics of docs/semantics.md
(reference, cpu, torch, onnxruntime, and Lava when its conversion report proves the ticket
representable exactly), or Loihi's fixed-point semantics (Lava ``fixed_pt`` and the fixed-point
reference). Any difference in such a pair is a bug, and :func:`verify` marks it as a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import registry
from .errors import SltError, SltUnsupportedError
from .ir.graph import Ticket
from .result import Result


@dataclass
class TargetRun:
    """One target's outcome: its result, the semantics it implements, or why it could not run."""

    name: str
    result: Result | None
    semantics: frozenset[str]
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class PairReport:
    a: str
    b: str
    exact_by_design: bool
    spike_agreement: float
    argmax_agreement: float
    first_divergence: dict[str, Any] | None
    max_abs_dv: float | None

    @property
    def identical(self) -> bool:
        return self.spike_agreement == 1.0 and self.first_divergence is None

    @property
    def failed(self) -> bool:
        return self.exact_by_design and not self.identical


@dataclass
class VerifyReport:
    runs: list[TargetRun]
    pairs: list[PairReport]

    @property
    def ok(self) -> bool:
        """No exact-by-design pair differs (a target that refused the ticket is reported, not failed)."""
        return not any(p.failed for p in self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "slt-verify/1",
            "ok": self.ok,
            "targets": [{"name": r.name, "ran": r.result is not None, "semantics": sorted(r.semantics),
                         "error": r.error, "notes": r.notes} for r in self.runs],
            "pairs": [{"a": p.a, "b": p.b, "exact_by_design": p.exact_by_design, "identical": p.identical,
                       "failed": p.failed, "spike_agreement": p.spike_agreement,
                       "argmax_agreement": p.argmax_agreement, "first_divergence": p.first_divergence,
                       "max_abs_dv": p.max_abs_dv} for p in self.pairs],
        }


def run_target(name: str, ticket: Ticket, x: np.ndarray) -> TargetRun:
    """Run one registered target (recording every node) and state the arithmetic it implemented."""
    from . import api

    spec = registry.target(name)
    try:
        result = api.run(ticket, x, target=name, record=True)
        semantics, notes = spec.semantics_for(ticket, x)
    except (SltUnsupportedError, ImportError) as exc:
        return TargetRun(name, None, frozenset(), error=str(exc).splitlines()[0])
    return TargetRun(name, result, semantics, notes=notes)


def parse_targets(text: str) -> list[str]:
    """``"reference,cpu,lava"`` -> a list of registered target names (duplicates removed, order kept)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in registry.TARGETS]
    if unknown:
        raise SltError(f"unknown target {unknown[0]!r} in --targets; choose from {', '.join(registry.TARGETS)}")
    if len(names) < 2:
        raise SltError("--targets needs at least two targets to compare, e.g. reference,cpu")
    return list(dict.fromkeys(names))


def verify(ticket: Ticket, x: np.ndarray, targets: list[str], progress: Callable[[str], None] | None = None
           ) -> VerifyReport:
    """Run ``ticket`` on every target and compare every pair (see module docstring)."""
    runs = []
    for name in targets:
        if progress:
            progress(name)
        runs.append(run_target(name, ticket, x))
    done = [r for r in runs if r.result is not None]
    pairs = [_compare(ticket, a, b) for i, a in enumerate(done) for b in done[i + 1:]]
    return VerifyReport(runs, pairs)


def _compare(ticket: Ticket, a: TargetRun, b: TargetRun) -> PairReport:
    ra, rb = a.result, b.result
    if ra is None or rb is None:
        raise ValueError("only targets that ran can be compared")
    if ra.output.shape != rb.output.shape:
        raise SltError(f"targets {a.name} and {b.name} returned outputs of different shapes "
                       f"{ra.output.shape} and {rb.output.shape}")
    equal = ra.output == rb.output
    spike_agreement = float(equal.mean())
    argmax_agreement = float((ra.predictions() == rb.predictions()).mean())
    max_abs_dv = None
    if not ticket.output_is_spiking:
        max_abs_dv = float(np.max(np.abs(ra.output.astype(np.float64) - rb.output.astype(np.float64))))
    return PairReport(a.name, b.name, bool(a.semantics & b.semantics), spike_agreement, argmax_agreement,
                      _first_divergence(ticket, ra, rb), max_abs_dv)


def _first_divergence(ticket: Ticket, ra: Result, rb: Result) -> dict[str, Any] | None:
    """Earliest step, then earliest node in graph order, whose recorded outputs differ."""
    shared = [n for n in ticket.order if n in ra.layers and n in rb.layers
              and ra.layers[n].shape == rb.layers[n].shape]
    if ticket.output.name not in shared:
        shared.append(ticket.output.name)
    layers_a = {**ra.layers, ticket.output.name: ra.output}
    layers_b = {**rb.layers, ticket.output.name: rb.output}
    for t in range(ra.output.shape[0]):
        for name in shared:
            diff = layers_a[name][t] != layers_b[name][t]
            if np.any(diff):
                return {"step": t, "node": name, "differing_values": int(diff.sum())}
    if ra.spike_counts and rb.spike_counts:
        for name in ticket.order:
            if name in ra.spike_counts and name in rb.spike_counts and not np.array_equal(
                    ra.spike_counts[name], rb.spike_counts[name]):
                step = int(np.flatnonzero(ra.spike_counts[name] != rb.spike_counts[name])[0])
                return {"step": step, "node": name, "differing_values": None}
    return None

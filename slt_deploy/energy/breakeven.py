"""The break-even spike rate: the mean spike rate above which the ticket stops saving energy
against a baseline, under one profile and one convention.

Scale every spike-driven count of the ticket by ``s`` (``s = 1``: as measured): the ops of
synapse layers fed by neuron layers, their input rate, every spike and every active neuron
update (:func:`.variants.scale_spikes`). Every energy of the model is linear in these
counts, so::

    E_t(s) = E_t(0) + s · (E_t(1) − E_t(0))            (the ticket)
    E_B(s) = E_B(0) + s · (E_B(1) − E_B(0))            (a baseline; constant unless it is assumed
                                                        to share the ticket's activity)
    s*     = (E_B(0) − E_t(0)) / ((E_t(1) − E_t(0)) − (E_B(1) − E_B(0)))
    r*     = s* · r_0,   r_0 = spikes / (spiking neurons · T · samples), the measured mean rate

``E_t(0)`` is what the ticket costs with no spikes at all (first-layer MACs, neuron updates,
weight and membrane traffic). When it already exceeds the baseline there is no break-even:
the ticket costs more at any spike rate. When ``r*`` exceeds 1 (a neuron spikes at most once
per step) the ticket saves at every rate. The scaling keeps the pattern of the spikes (which
neurons fire, hence the fan-out each spike drives) and changes only how many there are.
"""

from __future__ import annotations

from dataclasses import dataclass

from .conventions import Convention, layer_energies
from .profiles import Profile
from .variants import Variant, scale_spikes

BASELINES = ("ann", "ann-dense", "dense-snn")
LEGEND = ("a number is r*: the ticket saves below that mean spike rate; never: it costs more even with no spikes; "
          "always: it saves at every rate (r* > 1); n/a: no spikes measured")


@dataclass(frozen=True)
class BreakEven:
    """Where the ticket's energy line crosses a baseline's (see the module docstring)."""

    baseline: str
    rate: float | None
    measured_rate: float
    status: str  # "below" (saves below rate), "never", "always", "n/a"
    ticket_at_zero: float
    ticket_per_rate: float
    baseline_at_zero: float
    baseline_per_rate: float

    @property
    def saves_now(self) -> bool:
        return self.status == "always" or (self.status == "below" and self.measured_rate < (self.rate or 0.0))

    def text(self) -> str:
        """One short phrase: ``r* = 0.0412 (measured 0.0213)``, ``none: costs more even with no spikes`` …"""
        if self.status == "below":
            return f"r* = {self.rate:.4g} (measured {self.measured_rate:.4g})"
        if self.status == "never":
            return "none: costs more even with no spikes"
        if self.status == "always":
            return "none: saves at every rate (r* > 1)"
        return "n/a: no spikes measured"

    def short(self) -> str:
        """Table cell: ``0.0412`` (r*), ``never``, ``always`` or ``n/a`` (see :data:`LEGEND`)."""
        if self.status == "below":
            return f"{self.rate:.3g}"
        return {"never": "never", "always": "always"}.get(self.status, "n/a")

    def to_dict(self) -> dict[str, object]:
        return {"baseline": self.baseline, "rate": self.rate, "measured_rate": self.measured_rate,
                "status": self.status, "text": self.text(),
                "ticket_pj_at_zero_spikes": self.ticket_at_zero, "ticket_pj_per_unit_rate": self.ticket_per_rate,
                "baseline_pj_at_zero_spikes": self.baseline_at_zero,
                "baseline_pj_per_unit_rate": self.baseline_per_rate}


def energy_at(v: Variant, s: float, profile: Profile, convention: Convention, T: int) -> float:
    """Total energy (pJ per inference) of ``v`` with its spike-driven counts scaled by ``s``."""
    e = layer_energies(scale_spikes(v, s), profile, convention, T)
    return sum(c.total(convention.includes) for c in e.values())


def line(v: Variant, profile: Profile, convention: Convention, T: int) -> tuple[float, float]:
    """``(E(0), E(1) − E(0))``: energy with no spikes, and per unit of ``s``."""
    e0 = energy_at(v, 0.0, profile, convention, T)
    return e0, energy_at(v, 1.0, profile, convention, T) - e0


def break_even(ticket: Variant, baseline: Variant, r0: float, profile: Profile, convention: Convention,
               T: int) -> BreakEven:
    """The break-even spike rate of ``ticket`` against ``baseline`` (module docstring)."""
    a_t, b_t = line(ticket, profile, convention, T)
    a_b, b_b = line(baseline, profile, convention, T)
    if r0 <= 0:
        return BreakEven(baseline.key, None, r0, "n/a", a_t, 0.0, a_b, 0.0)
    per_rate_t, per_rate_b = b_t / r0, b_b / r0  # pJ per unit of mean spike rate
    slope = per_rate_t - per_rate_b
    gap = a_b - a_t
    if slope <= 0:
        status, rate = ("always", None) if gap > 0 else ("never", None)
    elif gap <= 0:
        status, rate = "never", None
    else:
        rate = gap / slope
        status = "below" if rate <= 1 else "always"
    return BreakEven(baseline.key, rate, r0, status, a_t, per_rate_t, a_b, per_rate_b)


def break_evens(variants: list[Variant], r0: float, profile: Profile, convention: Convention,
                T: int) -> dict[str, BreakEven]:
    """:func:`break_even` of the ticket against each of :data:`BASELINES` present in ``variants``."""
    ticket = next(v for v in variants if v.is_ticket)
    by_key = {v.key: v for v in variants}
    return {k: break_even(ticket, by_key[k], r0, profile, convention, T) for k in BASELINES if k in by_key}

"""Per-sample energy and operation counts: the spread behind each per-inference mean.

Every energy of the model is an affine function of per-sample counts. For sample ``b``,
with only the components the convention includes::

    E[b] = C + Σ_l (E_AC · ac_l[b] + E_MAC · mac_l[b])                     (neurobench, memory-aware)
             + Σ_l E_AC · FLOPs_l / n_l · nonzero_l[b]   for SOP layers        (spikformer; first layers: in C)
             + Σ_n (E_act − E_inact) · spikes_n[b]         spiking layers    (neuron component)
             + Σ_n E_spike · spikes_n[b]                                     (memory component)

``n_l`` is the number of input values of layer ``l`` (``SOP_l[b] = fr_l[b]·T·FLOPs_l`` with
``fr_l[b] = nonzero_l[b] / (n_l·T)``). ``C`` holds the terms every sample pays alike (weight
and membrane traffic, inactive updates, first-layer FLOPs under spikformer); it is fixed so
that the mean of ``E[b]`` is the report's per-inference total. The ANN's per-sample energy
is built the same way from its per-sample ACs and MACs (an estimated ANN's assumed hidden
layers are the same for every sample).

Runs of more than :data:`PER_SAMPLE_LIMIT` samples carry percentiles (0, 1, …, 100) in JSON
instead of every sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ann import AnnCounts
from .conventions import Convention
from .profiles import Profile
from .stats import RunStats

PER_SAMPLE_LIMIT = 10_000


def ticket_per_sample(stats: RunStats, profile: Profile, convention: Convention, total: float) -> np.ndarray:
    """Energy (pJ) of each sample of the ticket's run, ``(N,)``, mean = ``total``."""
    inc = convention.includes
    e_ac, e_mac = profile.pj("ac"), profile.pj("mac")
    var = np.zeros(stats.samples)
    for s in stats.synapses:
        if convention.name == "spikformer":
            if not s.first:
                var += e_ac * s.kept_macs / s.input_size * s.nonzero_b
        else:
            var += e_ac * s.ac_b + e_mac * s.mac_b
    for n in stats.neurons:
        if not n.spiking:
            continue
        if "neuron" in inc:
            var += (profile.pj("neuron_active") - profile.pj("neuron_inactive")) * n.spikes_b
        if "memory" in inc:
            var += profile.pj("spike") * n.spikes_b
    return var + (total - float(var.mean()))


def ann_per_sample(ann: AnnCounts, profile: Profile, total: float) -> np.ndarray:
    """Energy (pJ) of each sample of the ANN's effective run, ``(N,)``, mean = ``total``."""
    ac, mac = ann.per_sample()
    var = profile.pj("ac") * ac + profile.pj("mac") * mac
    return var + (total - float(var.mean()))


def ticket_ops(stats: RunStats) -> dict[str, np.ndarray]:
    """Per-sample effective ACs, MACs, their sum, and spikes of the ticket, ``(N,)`` each."""
    zero = np.zeros(stats.samples, np.int64)
    ac = sum((s.ac_b for s in stats.synapses), zero)
    mac = sum((s.mac_b for s in stats.synapses), zero)
    spikes = sum((n.spikes_b for n in stats.neurons if n.spiking), zero)
    return {"effective_ac": ac, "effective_mac": mac, "effective_ops": ac + mac, "spikes": spikes}


def summary(a: np.ndarray) -> dict[str, float]:
    """Mean, median, 5th and 95th percentile, minimum and maximum."""
    a = np.asarray(a, np.float64)
    p5, p50, p95 = np.percentile(a, [5, 50, 95])
    return {"mean": float(a.mean()), "median": float(p50), "p5": float(p5), "p95": float(p95),
            "min": float(a.min()), "max": float(a.max())}


def series(a: np.ndarray, limit: int = PER_SAMPLE_LIMIT) -> dict[str, Any]:
    """JSON form: every value (``{"per_sample": [...]}``) up to ``limit`` samples, else percentiles 0…100."""
    a = np.asarray(a)
    if len(a) <= limit:
        values = a.tolist() if a.dtype.kind in "iu" else [float(v) for v in a]
        return {"per_sample": values}
    return {"percentiles": [float(v) for v in np.percentile(a.astype(np.float64), np.arange(101))],
            "samples": int(len(a))}

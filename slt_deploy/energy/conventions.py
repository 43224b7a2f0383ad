"""Energy conventions: which counts are priced, and how (all energies in pJ per inference).

Per synapse layer ``l`` and neuron layer ``n`` of a variant (see :mod:`.variants`), with
profile constants ``E_AC, E_MAC, E_act, E_inact, E_spike`` and memory access energy
``M(bytes, array) = ceil(bytes / 8) · E_64(array)``::

    ops, effective (neurobench, memory-aware):
        AC_l  = E_AC · N_AC,l             MAC_l = E_MAC · N_MAC,l
    ops, spikformer:
        first layer (direct input):  MAC_l = E_MAC · FLOPs_l                 (once per inference)
        other layers:                AC_l  = E_AC · SOP_l,  SOP_l = fr_l · T · FLOPs_l
        ANN, dense upper bound:      MAC_l = E_MAC · FLOPs_l
        ANN, effective:              AC_l = E_AC · N_AC,l,  MAC_l = E_MAC · N_MAC,l   (as neurobench)
    neuron_n = E_act · N_active,n + E_inact · N_inactive,n           (ANN: E_AC per ReLU)
    memory_l = P · a_l · M(B_l, B_l)      (weights read once per pass, a_l = 1; a MatMul's buffered
                                           operand written and read once per pass, a_l = 2)
    memory_n = P · 2 · M(S_n, S_n) + E_spike · N_spikes,n             (membrane read + write)

``FLOPs_l`` = MACs of one pass over the weights the variant keeps (padding positions
counted, as published figures do), ``fr_l`` the fraction of nonzero inputs of layer ``l``
over steps and samples, ``B_l`` its weight bytes, ``S_n = neurons · state_bits / 8``, and
``P`` the number of passes (T, or 1 for the ANN). Every component is computed for every
convention; a convention's total sums the components it includes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SltEnergyError
from .profiles import Profile
from .variants import Variant

COMPONENTS = ("ac", "mac", "neuron", "memory")


@dataclass(frozen=True)
class Convention:
    """A named way to turn counts into energy."""

    name: str
    formula: str
    includes: tuple[str, ...]
    leaves_out: str

    @property
    def view(self) -> str:
        """``"compute-only"`` (operations only) or ``"memory-aware"`` (operations, neurons and memory)."""
        return "memory-aware" if "memory" in self.includes else "compute-only"


CONVENTIONS: dict[str, Convention] = {
    "neurobench": Convention(
        "neurobench",
        "E = E_AC * N_AC + E_MAC * N_MAC  (effective ops: kept weight and nonzero input; AC when every input "
        "value of the layer call is in {-1,0,1})",
        ("ac", "mac"),
        "neuron updates, memory accesses, spike traffic",
    ),
    "spikformer": Convention(
        "spikformer",
        "E = E_MAC * FLOPs(first layer) + E_AC * sum_l SOP_l,  SOP_l = fr_l * T * FLOPs_l;  E_ANN,dense = E_MAC * "
        "FLOPs (the effective ANN row: E_MAC * N_MAC,eff)",
        ("ac", "mac"),
        "neuron updates, memory accesses; zero inputs are averaged (fr), not matched to kept weights",
    ),
    "memory-aware": Convention(
        "memory-aware",
        "E = E_AC * N_AC + E_MAC * N_MAC + sum_n (E_act * N_active + E_inact * N_inactive) "
        "+ weight reads + membrane reads/writes + E_spike * N_spikes",
        COMPONENTS,
        "spike/activation traffic between layers on CMOS profiles, control logic, leakage",
    ),
}


@dataclass(frozen=True)
class Components:
    """Energy of one layer in pJ per inference, by component."""

    ac: float = 0.0
    mac: float = 0.0
    neuron: float = 0.0
    memory: float = 0.0

    def total(self, includes: tuple[str, ...] = COMPONENTS) -> float:
        return sum(getattr(self, c) for c in includes)

    def __add__(self, other: Components) -> Components:
        return Components(*(getattr(self, c) + getattr(other, c) for c in COMPONENTS))


def views_for(name: str) -> tuple[Convention, Convention]:
    """The two views a report shows side by side: the compute-only one (``name``, or neurobench when
    ``name`` is memory-aware) and memory-aware."""
    primary = get_convention(name)
    compute = primary if primary.view == "compute-only" else CONVENTIONS["neurobench"]
    return compute, CONVENTIONS["memory-aware"]


def get_convention(name: str) -> Convention:
    """A convention by name, or a one-line :class:`SltEnergyError`."""
    if name not in CONVENTIONS:
        raise SltEnergyError(f"unknown energy convention {name!r}; choose one of {', '.join(CONVENTIONS)}")
    return CONVENTIONS[name]


def layer_energies(variant: Variant, profile: Profile, convention: Convention, timesteps: int) -> dict[str, Components]:
    """Components per layer (synapse layers, then neuron layers), see module docstring."""
    e_ac, e_mac, P = profile.pj("ac"), profile.pj("mac"), variant.passes
    out: dict[str, Components] = {}
    for w in variant.layers:
        if convention.name != "spikformer" or (variant.ann and not variant.dense_flops):
            ac, mac = e_ac * w.ac, e_mac * w.mac
        elif variant.ann or w.first:
            ac, mac = 0.0, e_mac * w.flops
        else:
            ac, mac = e_ac * w.input_rate * timesteps * w.flops, 0.0
        nbytes = w.bytes_at(profile.state_bits)
        out[w.name] = Components(ac=ac, mac=mac, memory=P * w.accesses * profile.access_pj(nbytes, nbytes))
    for n in variant.neurons:
        state = n.neurons * profile.state_bits / 8
        array = int(-(-n.neurons * profile.state_bits // 8))
        if variant.ann:
            neuron = e_ac * n.active
        else:
            neuron = profile.pj("neuron_active") * n.active + profile.pj("neuron_inactive") * n.inactive
        memory = P * 2 * profile.access_pj(state, array) + profile.pj("spike") * n.spikes
        out[n.name] = Components(neuron=neuron, memory=memory)
    return out

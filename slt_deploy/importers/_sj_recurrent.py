"""SpikingJelly's ``LinearRecurrentContainer`` (single step): ``y[t] = neuron(rc(cat(x[t], y[t−1])))``.

``rc`` is one ``nn.Linear(n_in + n_out, n_in)``; it is split into its ``x`` and ``y`` columns:

    i[t] = (W_x·x[t] + b) + W_y·s[t−1]      ->   Linear(W_x, b) -> Add <- Linear(W_y) <-recurrent- LIF

so the sub-module (a SpikingJelly neuron, converted as usual) charges one input, the IR's
Add-then-LIF recurrent form. torch computes the concatenated product in one float32 sum, the
IR two exact sums and one addition: equal whenever the sums are exact (the same condition as
every imported Linear; docs/importers.md). ``ElementWiseRecurrentContainer`` (an arbitrary
Python function) and multi-step containers are refused.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import SltUnsupportedError
from ..ir.nodes import Add
from . import spikingjelly as sj_import
from ._trace import _f32

_CONTAINERS = "spikingjelly.activation_based.layer.container"


def is_recurrent_container(m: Any) -> bool:
    """True for SpikingJelly's recurrent containers (linear or element-wise)."""
    mod = sys.modules.get(_CONTAINERS)
    names = ("LinearRecurrentContainer", "ElementWiseRecurrentContainer")
    return mod is not None and isinstance(m, tuple(getattr(mod, n) for n in names if hasattr(mod, n)))


def linear_recurrent(conv: Any, m: Any, path: str, src: str, synapse: Any) -> str:
    """Emit the container's synapses (``synapse``: the converter's pending-synapse class), Add and neuron;
    returns the neuron's node name (its spikes)."""
    where = f"SpikingJelly {type(m).__name__} '{path}'"
    if type(m).__name__ != "LinearRecurrentContainer":
        raise SltUnsupportedError(f"{where}: an element-wise recurrent function has no IR form; use "
                                  "LinearRecurrentContainer or write the recurrence with a Linear")
    if getattr(m, "step_mode", "s") != "s" or not sj_import.is_neuron(m.sub_module):
        raise SltUnsupportedError(f"{where}: only single-step containers around a SpikingJelly neuron are imported")
    shape = conv.shapes[src]
    n_in = shape[-1] if len(shape) == 1 else -1
    if n_in < 0 or m.sub_module_out_features != n_in:
        raise SltUnsupportedError(f"{where}: needs 1-D features with out_features == in_features, got {shape}")
    conv._once(path, m)
    conv.frameworks.add("spikingjelly")
    values, mask = conv._weights(m.rc, f"{path}.rc")
    bias = _f32(m.rc.bias, f"bias of '{path}.rc'") if m.rc.bias is not None else None
    ff = synapse(conv._name(f"{path}.rc.x"), f"{path}.rc", values[:, :n_in], mask[:, :n_in], bias, None, None)
    rec = synapse(conv._name(f"{path}.rc.y"), f"{path}.rc", values[:, n_in:], mask[:, n_in:], None, None, None)
    neuron_path = f"{path}.sub_module"
    conv._once(neuron_path, m.sub_module)
    lif = sj_import.convert(m.sub_module, conv._name(neuron_path), shape, neuron_path)
    conv.synapses[ff.name] = ff
    conv._emit(ff, [src])
    conv.synapses[rec.name] = rec
    conv._emit(rec, [lif.name], recurrent=(lif.name,), in_shapes=[shape])
    add = conv._emit(Add(conv._name(f"{path}.add")), [ff.name, rec.name])
    return conv._emit(lif, [add])

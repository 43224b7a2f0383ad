"""Integer-chip fixed point: the conversion of a ticket to Loihi's integers, and a reference for it.

numpy only. Used by the Lava target (``slt_deploy.targets.lava``, ``fixed_pt``), the lava-dl
netx exporter and the fixed mode of the C exporter: all of them run the integers this
package chooses, and :meth:`FixedNetwork.simulate` predicts their spikes exactly.

    to_fixed(ticket, x)              -> FixedNetwork (integers + per-layer report of what is exact)
    simulate_fixed(ticket, x)        -> Result of the fixed-point reference
    conversion_report(ticket)        -> the report alone

The pieces, in dependency order:

- :mod:`.chip`: the chip's bit widths and shifts in one frozen :class:`ChipSpec`
  (:data:`LOIHI2`); every other module takes the spec as a parameter.
- :mod:`.sparse`: sparse linear maps (:class:`SparseMap`, :func:`conv_map`, :func:`pool_map`).
- :mod:`.plan`: the ticket as neuron layers fed by affine maps of spike sources
  (:func:`make_plan`); one handler per node kind in :data:`.plan.HANDLERS`.
- :mod:`.neuron`: the one LIF/LI/OR → leaky-neuron mapping, shared with the Lava target.
- :mod:`.inputs`, :mod:`.scale`, :mod:`.exactness`, :mod:`.convert`: the conversion
  (:func:`to_fixed`): input scale, the per-layer ``vth``, the integers, and the report.
- :mod:`.integers`, :mod:`.simulate`, :mod:`.network`: the integer layers, the fixed-point
  reference (:func:`lif_step`, :func:`conv_wrap24`) and the packaged :class:`Result`.

docs/targets-lava.md states the equations (with their sources in lava-nc 0.10.0) and what
the conversion report's fields mean.
"""

from __future__ import annotations

from .chip import LOIHI2, ChipSpec
from .convert import conversion_report, fixed_semantics, simulate_fixed, to_fixed
from .inputs import integer_inputs
from .integers import FixedLayer, FixedSynapse
from .network import FixedNetwork, package_result
from .neuron import LeakyForm, leaky_form
from .plan import Plan, PlanLayer, PlanSource, make_plan, mark_graded_input
from .simulate import conv_wrap24, lif_step
from .sparse import ConvSpec, SparseMap, conv_map, pool_map

# The names the chip's numbers had before they moved into ChipSpec (read-only views of LOIHI2;
# new code reads a ChipSpec, so that another chip can supply its own).
DECAY_SHIFT = LOIHI2.decay_shift
DECAY_UNITY = LOIHI2.decay_unity
ACT_SHIFT = LOIHI2.act_shift
VTH_SHIFT = LOIHI2.vth_shift
MAX_UV = LOIHI2.max_uv
VTH_MAX = LOIHI2.vth_max
BIAS_MANT_MAX = LOIHI2.bias_mant_max
BIAS_EXP = LOIHI2.bias_exp
WEIGHT_MANT_MAX = LOIHI2.weight_mant_max
WEIGHT_MAX = LOIHI2.weight_max
DU_FULL = LOIHI2.du_full
DV_MAX = LOIHI2.dv_max
INPUT_FRAC_BITS_MAX = LOIHI2.input_frac_bits_max
INPUT_MAX = LOIHI2.input_max

__all__ = [
    "LOIHI2", "ChipSpec", "ConvSpec", "FixedLayer", "FixedNetwork", "FixedSynapse", "LeakyForm", "Plan", "PlanLayer",
    "PlanSource", "SparseMap", "conv_map", "conv_wrap24", "conversion_report", "fixed_semantics", "integer_inputs",
    "leaky_form", "lif_step", "make_plan", "mark_graded_input", "package_result", "pool_map", "simulate_fixed",
    "to_fixed",
]

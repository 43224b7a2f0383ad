"""The integer neuron chip a fixed-point conversion targets: its bit widths and shifts, in one frozen object.

Loihi 2's numbers (lava-nc 0.10.0, ``lava/proc/lif/models.py`` ``AbstractPyLifModelFixed`` and
``PyLifModelBitAcc``; ``lava/proc/dense/models.py`` ``PyDenseModelBitAcc``) are :data:`LOIHI2`.
The conversion (:mod:`.convert`), the integer simulator (:mod:`.simulate`), the Lava target, the
netx exporter and the C exporter's fixed mode read them from a :class:`ChipSpec` and nowhere
else; another integer chip with the same neuron shape supplies its own spec::

    u = wrap(u·(D − (du + 1)) ⊘ D + (a << act_shift))          D = 2^decay_shift
    v = clip(v·(D − dv) ⊘ D + u + (bias_mant << bias_exp))       |u|, |v| < 2^(state_bits − 1)
    s = v > (vth << vth_shift)

``y ⊘ D`` truncates toward zero. Weights are ``k · 2^E`` with ``|k| ≤ weight_mant_max`` and
``|k · 2^E| ≤ weight_max``. The conversion puts synaptic input, bias and threshold on one
scale, so it needs ``act_shift == bias_exp == vth_shift`` (checked when a spec is made).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChipSpec:
    """Bit widths and shifts of an integer LIF chip (see the module docstring for the equations)."""

    name: str
    decay_shift: int            # decays are decay_shift-bit: factor (2^decay_shift − d) / 2^decay_shift
    act_shift: int              # synaptic input is MSB-aligned: a << act_shift
    vth_shift: int              # threshold is MSB-aligned: vth << vth_shift
    state_bits: int             # u, v are state_bits-bit signed
    vth_bits: int               # vth is unsigned, vth_bits wide
    bias_mant_max: int          # |bias_mant| bound (signed mantissa)
    bias_exp: int               # bias = bias_mant << bias_exp (fixed by the conversion)
    weight_bits: int            # synaptic weight width (mixed sign mode)
    weight_mant_max: int        # |k| bound of a weight k · 2^E with E = 0
    weight_max: int             # largest |weight| the conversion uses (E ≤ 1)
    dv_max: int                 # largest voltage decay accepted (dv = 2^decay_shift is β = 0)
    input_frac_bits_max: int    # graded input x_int = round(x · 2^s), s ≤ this
    input_bits: int             # graded input messages: |x_int| < 2^(input_bits − 1)

    def __post_init__(self) -> None:
        if not self.act_shift == self.bias_exp == self.vth_shift:
            raise ValueError(f"chip {self.name!r}: the conversion needs act_shift == bias_exp == vth_shift (input, "
                             f"bias and threshold on one scale), got {self.act_shift}, {self.bias_exp}, "
                             f"{self.vth_shift}")
        if not 0 < self.weight_mant_max <= self.weight_max <= 2 * self.weight_mant_max:
            raise ValueError(f"chip {self.name!r}: weight_max must lie in [weight_mant_max, 2·weight_mant_max] "
                             "(the conversion's weights are k·2^E with E ≤ 1)")

    @property
    def decay_unity(self) -> int:
        """``2^decay_shift``: the decay factor's denominator (dv = 0 keeps v, dv = unity clears it)."""
        return 1 << self.decay_shift

    @property
    def du_full(self) -> int:
        """``du`` that clears the current every step (``du + 1 = 2^decay_shift``): no current state."""
        return self.decay_unity - 1

    @property
    def max_uv(self) -> int:
        """``2^(state_bits − 1)``: u wraps beyond it, v clips to ``±(max_uv − 1)``."""
        return 1 << (self.state_bits - 1)

    @property
    def vth_max(self) -> int:
        """The largest threshold mantissa."""
        return (1 << self.vth_bits) - 1

    @property
    def input_max(self) -> int:
        """``|x_int|`` bound of graded input messages."""
        return (1 << (self.input_bits - 1)) - 1

    @property
    def current_max(self) -> int:
        """``|a|`` bound below which ``a << act_shift`` never wraps the current."""
        return self.max_uv >> self.act_shift


LOIHI2 = ChipSpec(
    name="Loihi 2",
    decay_shift=12,             # 12-bit du, dv
    act_shift=6,
    vth_shift=6,
    state_bits=24,
    vth_bits=17,
    bias_mant_max=4095,         # signed 13-bit mantissa
    bias_exp=6,                 # what lava-dl's netx uses
    weight_bits=8,              # 8-bit signed mantissa; effective weight k · 2^E
    weight_mant_max=127,
    weight_max=254,             # E ≤ 1: the largest weight netx's HDF5 'weight' field carries exactly
    dv_max=4096,                # dv = 4096 is β = 0 (accepted by Lava's simulator and by netx)
    input_frac_bits_max=12,
    input_bits=16,              # |x_int| ≤ 2^15 − 1
)
"""Loihi 2 as lava-nc 0.10.0 simulates it bit-accurately (docs/targets-lava.md lists the sources)."""


__all__ = ["LOIHI2", "ChipSpec"]

"""A neuron layer in a chip's integers: what the conversion chooses and every integer backend runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .sparse import ConvSpec, SparseMap


@dataclass
class FixedSynapse:
    """Integer synapse: ``a = W · x`` (W = k · 2^E, |k| ≤ weight_mant_max) from ``src`` at step t − lag."""

    src: str
    lag: int
    W: SparseMap                # int64 effective weights
    weight_exp: int             # E: every weight is a multiple of 2^E
    conv: ConvSpec | None       # int64 kernel when the synapse is one convolution
    graded: bool
    delay: int


@dataclass
class FixedLayer:
    """One neuron population with its integer parameters (shifts and widths: the network's :class:`.ChipSpec`)."""

    name: str
    kind: str                   # lif | li | or
    shape: tuple[int, ...]
    synapses: list[FixedSynapse]
    vth: int                    # fire v > vth << vth_shift
    dv: np.ndarray              # per neuron, int64 in [0, dv_max]
    bias_mant: np.ndarray       # per neuron, int64, bias = bias_mant << bias_exp
    reset: str                  # zero | subtract | subtract_delayed | none
    reset_amount: np.ndarray    # per neuron, V units (subtract resets)
    depth: int
    readout_scale: np.ndarray   # per neuron θ', LI output = V · θ' / readout_den (exact division)
    readout_den: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def readout(self, v: np.ndarray) -> np.ndarray:
        """LI output values from membranes ``V`` (``(..., n)``): ``V · θ' / (2^vth_shift · scale)``."""
        return v.astype(np.float64) * self.readout_scale / self.readout_den

    @property
    def uniform_dv(self) -> bool:
        return bool(np.all(self.dv == self.dv.flat[0]))


__all__ = ["FixedLayer", "FixedSynapse"]

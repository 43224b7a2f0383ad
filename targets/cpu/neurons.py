"""Neuron layers (LIF and the LI readout): parameters, state, and the per-layer op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slt_deploy.ir.neurons import LI, LIF

from .values import Value

CHARGE_CODES = {"leaky": 0, "decay_input": 1, "leaky_tau": 2}
RESET_CODES = {"zero": 0, "subtract": 1, "subtract_delayed": 2, "none": 3, "zero_delayed": 4}


@dataclass
class NeuronParams:
    """Flat float32 per-neuron parameters ``(N,)`` and the variant codes of one layer.

    ``charge``: 0 leaky, 1 decay_input, 2 leaky_tau; ``reset``: 0 zero, 1 subtract,
    2 subtract_delayed, 3 none, 4 zero_delayed (RLIF; see :mod:`slt_deploy.ir.neurons` for the equations).
    Absent parameters are zero arrays with ``has_bias`` / ``li`` telling the kernels.
    """

    li: bool
    beta: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray | None
    reset_amount: np.ndarray
    tau: np.ndarray
    charge: int
    reset: int

    @classmethod
    def of(cls, node: LIF | LI) -> NeuronParams:
        def flat(a: Any) -> np.ndarray:
            return np.ascontiguousarray(np.asarray(a, dtype=np.float32).reshape(-1))

        n = int(np.prod(node.shape))
        ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
        bias = None if node.bias is None else flat(node.bias)
        if isinstance(node, LI):
            return cls(True, flat(node.beta), zeros, bias, zeros, ones, 0, 3)
        tau = ones if node.tau is None else flat(node.tau)
        return cls(False, flat(node.beta), flat(node.threshold), bias, flat(node.reset_amount), tau,
                   CHARGE_CODES[node.charge], RESET_CODES[node.reset])

    @property
    def nbytes(self) -> int:
        arrays = (self.beta, self.threshold, self.bias, self.reset_amount, self.tau)
        return int(sum(a.nbytes for a in arrays if a is not None))


class NeuronState:
    """Membrane ``v`` and the previous step's spikes ``s`` (float32 ``(B, N)``), zero at start."""

    def __init__(self, batch: int, n: int) -> None:
        self.v = np.zeros((batch, n), np.float32)
        self.s = np.zeros((batch, n), np.float32)


class NeuronOp:
    """Runs a neuron layer over a block of steps with the backend's ``neuron_run`` kernel."""

    def __init__(self, node: LIF | LI, kernels: Any) -> None:
        self.name = node.name
        self.shape = tuple(node.shape)
        self.n = int(np.prod(node.shape))
        self.params = NeuronParams.of(node)
        self.kernels = kernels

    @property
    def spiking(self) -> bool:
        return not self.params.li

    def new_state(self, batch: int) -> NeuronState:
        return NeuronState(batch, self.n)

    def forward(self, x: Value, steps: int, state: NeuronState, rec: Value | None = None) -> tuple[Value, np.ndarray]:
        """``rec``: an RLIF layer's recurrent current, added after the leak."""
        data = x.as_float()
        cur = np.ascontiguousarray(data.reshape(data.shape[0], data.shape[1], self.n), dtype=np.float32)
        rc = None
        if rec is not None:
            rd = rec.as_float()
            rc = np.ascontiguousarray(rd.reshape(rd.shape[0], rd.shape[1], self.n), dtype=np.float32)
        out, counts = self.kernels.neuron_run(cur, steps, self.params, state, rc)
        value = Value(out.reshape(steps, out.shape[1], *self.shape), static=False, binary=self.spiking,
                      rate_known=x.rate_known)
        return value, counts

"""slt's own Lava neuron process, for what Lava's LIF cannot express.

Lava's ``LIF`` has one threshold and one voltage decay per population and only the zero
reset. ``SltLIF`` adds, per neuron: ``du``, ``dv``, ``vth``; and the resets of the ticket
IR: ``subtract`` (v -= r at a spike), ``subtract_delayed`` (snnTorch: v -= r·s[t−1] after
the charge, before the threshold) and ``none``; with ``spiking=False`` it is the LI readout
and sends its membrane ``v`` every step.

The fixed-point model *inherits* Lava's ``AbstractPyLifModelFixed`` and calls its
``scale_bias`` and ``subthr_dynamics`` unchanged, so the integer current and voltage
updates are Lava's own bit-accurate code; only the threshold/reset step is ours. The
float model inherits ``AbstractPyLifModelFloat`` the same way. Loihi 2 runs such neurons as
microcode; this is the simulation of that program.

Import this module only after :func:`._compat.import_lava` (it imports Lava).
"""

from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

RESETS = ("zero", "subtract", "subtract_delayed", "none")


class SltLIF(AbstractProcess):
    """LIF population with per-neuron du/dv/vth, a choice of reset, or a membrane readout."""

    def __init__(self, *, shape: tuple[int, ...], du: ty.Any, dv: ty.Any, vth: ty.Any, bias_mant: ty.Any = 0,
                 bias_exp: ty.Any = 0, reset: str = "zero", reset_amount: ty.Any = 0, spiking: bool = True,
                 name: str | None = None) -> None:
        if reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
        super().__init__(shape=shape, reset=reset, spiking=spiking, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.du = Var(shape=shape, init=du)
        self.dv = Var(shape=shape, init=dv)
        self.vth = Var(shape=shape, init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.reset_amount = Var(shape=shape, init=reset_amount)
        self.s_prev = Var(shape=shape, init=0)


def _threshold_and_reset(model: ty.Any, vth: np.ndarray) -> np.ndarray:
    reset = model.proc_params["reset"]
    s = model.v > vth
    if reset == "zero":
        model.v[s] = 0
    elif reset == "subtract":
        model.v[s] -= model.reset_amount[s]
    model.s_prev[:] = s
    return s


@implements(proc=SltLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySltLIFModelFixed(AbstractPyLifModelFixed):
    """Lava's fixed-point LIF dynamics (inherited), per-neuron parameters, slt's resets."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    du: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=12)
    dv: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=13)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=17)
    reset_amount: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    s_prev: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)

    def scale_threshold(self) -> None:
        self.effective_vth = np.left_shift(self.vth.astype(np.int64), self.vth_shift)
        self.isthrscaled = True

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        self.scale_bias()
        self.scale_threshold()
        self.subthr_dynamics(activation_in=a_in)
        if self.proc_params["reset"] == "subtract_delayed":
            self.v[:] = self.v - self.reset_amount * self.s_prev
        if not self.proc_params["spiking"]:
            self.s_out.send(self.v.copy())
            return
        self.s_out.send(_threshold_and_reset(self, self.effective_vth))


@implements(proc=SltLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySltLIFModelFloat(AbstractPyLifModelFloat):
    """Lava's floating-point LIF dynamics (inherited), per-neuron parameters, slt's resets."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    du: np.ndarray = LavaPyType(np.ndarray, float)
    dv: np.ndarray = LavaPyType(np.ndarray, float)
    vth: np.ndarray = LavaPyType(np.ndarray, float)
    reset_amount: np.ndarray = LavaPyType(np.ndarray, float)
    s_prev: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        a_in = self.a_in.recv()
        self.subthr_dynamics(activation_in=a_in)
        if self.proc_params["reset"] == "subtract_delayed":
            self.v[:] = self.v - self.reset_amount * self.s_prev
        if not self.proc_params["spiking"]:
            self.s_out.send(self.v.copy())
            return
        self.s_out.send(_threshold_and_reset(self, self.vth))


MODELS = {"fixed_pt": PySltLIFModelFixed, "floating_pt": PySltLIFModelFloat}

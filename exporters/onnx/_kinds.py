"""The ONNX exporter's handler table: one :class:`KindRule` per IR node kind.

A rule says everything the model builder needs to know about a kind:

- ``bound``: the integer bound of the node's values from its inputs' bounds (max |value|
  when every value is an integer: spikes, rate-coded input, sums and maxima of those;
  None otherwise). It decides where a float32 sum is exact (``_synapses``, ``_stateless``).
- ``emit`` (stateless kinds) or ``step`` (neuron kinds, with membrane state carried over
  time steps): the ONNX ops of one node at one step.
- ``records``: the ``record=`` levels whose extra outputs include the node.
- ``spiking``: its values are 0/1 spikes, so a recurrent edge from it reads its previous
  spikes (else its previous membrane); ``own_spikes``: its own update reads them too.

The same table serves the ``onnx`` exporter and the ``onnxruntime`` target
(``slt_deploy.registry``). A node kind missing here fails tests/test_node_kinds.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...dispatch import HandlerTable
from ...ir.neurons import LI, LIF, RLIF
from ...ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from ...ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from ._context import Emitter
from ._graph import Graph, State
from ._neurons import spike_state_needed, step_li, step_lif
from ._stateless import (
    emit_add,
    emit_avg_pool,
    emit_flatten,
    emit_input,
    emit_max_pool,
    emit_output,
    emit_sum_pool,
)
from ._synapses import emit_conv, emit_linear
from ._tokens import (
    bound_mul,
    bound_none,
    emit_matmul,
    emit_mul,
    emit_reduce,
    emit_reshape,
    emit_select,
    emit_transpose,
)

Bound = Callable[[Any, list[float | None]], float | None]
Emit = Callable[[Emitter, Graph, Any, list[str]], str]
Step = Callable[..., tuple[str, State]]  # (ctx, g, node, u, state[, recurrent current]) -> (value, state)

ALL = frozenset({"all"})
NEURONS = frozenset({"neurons", "all"})
NEVER: frozenset[str] = frozenset()


def _never(node: Node) -> bool:
    return False


@dataclass(frozen=True)
class KindRule:
    """How the ONNX exporter builds one node kind (see the module docstring)."""

    bound: Bound
    emit: Emit | None = None
    step: Step | None = None
    records: frozenset[str] = ALL
    spiking: bool = False
    own_spikes: Callable[[Any], bool] = _never

    def __post_init__(self) -> None:
        if (self.emit is None) == (self.step is None):
            raise TypeError("a KindRule has exactly one of emit (stateless) or step (neuron)")

    @property
    def stateful(self) -> bool:
        """A neuron kind: a membrane carried from step to step, never computed once for all steps."""
        return self.step is not None


def _same(node: Node, ins: list[float | None]) -> float | None:
    """Values are some of the input's values (max, reshape, identity): the same bound."""
    return ins[0] if ins else None


def _not_integer(node: Node, ins: list[float | None]) -> float | None:
    return None


def _spikes(node: Node, ins: list[float | None]) -> float | None:
    return 1.0


def _window_sum(node: SumPool2d, ins: list[float | None]) -> float | None:
    b = ins[0] if ins else None
    return None if b is None else b * node.kernel_size[0] * node.kernel_size[1]


def _sum(node: Add, ins: list[float | None]) -> float | None:
    return None if any(x is None for x in ins) else float(sum(ins))  # type: ignore[arg-type]


HANDLERS: HandlerTable[KindRule] = HandlerTable("the ONNX exporter", {
    Input: KindRule(_same, emit=emit_input, records=NEVER),
    Output: KindRule(_same, emit=emit_output, records=NEVER),
    Linear: KindRule(_not_integer, emit=emit_linear),
    Conv2d: KindRule(_not_integer, emit=emit_conv),
    SumPool2d: KindRule(_window_sum, emit=emit_sum_pool),
    AvgPool2d: KindRule(_not_integer, emit=emit_avg_pool),
    MaxPool2d: KindRule(_same, emit=emit_max_pool),
    Flatten: KindRule(_same, emit=emit_flatten),
    Add: KindRule(_sum, emit=emit_add),
    LIF: KindRule(_spikes, step=step_lif, records=NEURONS, spiking=True, own_spikes=spike_state_needed),
    LI: KindRule(_not_integer, step=step_li, records=NEURONS),
    RLIF: KindRule(_spikes, step=step_lif, records=NEURONS, spiking=True, own_spikes=spike_state_needed),
    Reshape: KindRule(_same, emit=emit_reshape), Transpose: KindRule(_same, emit=emit_transpose),
    Select: KindRule(_same, emit=emit_select), MatMul: KindRule(bound_none, emit=emit_matmul),
    Mul: KindRule(bound_mul, emit=emit_mul), Reduce: KindRule(bound_none, emit=emit_reduce),
})
"""``{node kind: KindRule}`` of the ONNX exporter (and the ONNX Runtime target)."""

__all__ = ["HANDLERS", "KindRule"]

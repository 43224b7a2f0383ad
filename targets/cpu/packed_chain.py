"""Feed-forward conv nets on step-packed spikes (numba backend). For a ticket that is a plain
chain (every node one input, no recurrence) with at least one stride-1 conv over spikes
(binary, int8 or certified float32 weights) followed by a LIF layer, the runtime runs the
spike layers as step masks (:mod:`.numba_packed`): ``conv -> LIF`` in one kernel, max pools as
a bytewise OR. What cannot run packed (the analog first layer, the classifier head, any other
node) runs through the graph executor's own node functions, on ``(T, B, ...)`` values, with
masks packed or unpacked at the borders. Built after the first run has fixed every layer's
kernel (:mod:`.costmodel`); a conv joins only where that choice was the event scatter. Results
and spike counts equal the graph executor's (tests/test_packed_chain.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from slt_deploy.ir.nodes import MaxPool2d

from . import numba_packed as npk
from .neurons import NeuronOp
from .numba_conv_event import _LANES
from .numba_pool import pool_spikes
from .stores_conv import ConvEventStore
from .synapse import SynapseOp
from .values import Value

# A stage maps the run's carried value (a Value, or step masks (G, B, N)) to the next one.
Stage = Callable[[Any, int, dict[str, np.ndarray]], Any]


class PackedChain:
    """The stages of one chain for one input kind; :meth:`run` has :meth:`.chain.ChainProgram.run`'s contract."""

    def __init__(self, rt: Any, stages: list[Stage]) -> None:
        self.stages = stages
        self.timesteps = rt.timesteps
        self.lif_names = list(rt.lif_names)
        self.kernels: dict[str, str] = rt.kernels_used()

    @classmethod
    def build(cls, rt: Any, input_binary: bool) -> PackedChain | None:
        """The stages for ``rt`` (a :class:`.runtime.Runtime`), or None where no conv would run packed."""
        if any(b.stepwise for b in rt.blocks):
            return None
        names = [n for b in rt.blocks for n in b.nodes]
        for a, b in zip(names, names[1:], strict=False):
            edges = rt.in_edges[b]
            if len(edges) != 1 or edges[0].recurrent or edges[0].src != a:
                return None
        stages: list[Stage] = []
        packed = False  # is the value flowing into the next node held as step masks?
        spikes = input_binary
        fused = 0
        i = 1
        while i < len(names):
            name, op = names[i], rt.ops.get(names[i])
            nxt = rt.ops.get(names[i + 1]) if i + 1 < len(names) else None
            if spikes and _conv_packs(op) and _spiking(nxt):
                if not packed:
                    stages.append(_pack)
                stages.append(_conv_lif_stage(op, nxt, names[i + 1]))
                packed, fused, i = True, fused + 1, i + 2
            elif packed and isinstance(op, tuple) and isinstance(op[0], MaxPool2d):
                stages.append(_pool_stage(op[0], rt.shapes[names[i - 1]]))
                i += 1
            elif not packed and _spiking(op) and _feeds_packed(rt, names, i):
                stages.append(_lif_stage(op, name))
                packed, spikes, i = True, True, i + 1
            else:
                if packed:
                    stages.append(_unpack_stage(rt.shapes[names[i - 1]]))
                    packed = False
                stages.append(_node_stage(rt, name))
                spikes = _spiking(op) or (spikes and rt.kinds[name] in ("maxpool2d", "flatten", "output"))
                i += 1
        if packed:
            stages.append(_unpack_stage(rt.shapes[names[-1]]))
        return cls(rt, stages) if fused else None

    def run(self, x: np.ndarray, binary: bool) -> tuple[np.ndarray, np.ndarray, None]:
        """``x``: input rows ``(steps, B, *in)`` (steps 1 when static). Returns (output ``(T, B, *out)``,
        spike counts ``(n_lif, T)``, None: the slow-path sums of its generic stages (the first conv
        on analog input) are counted on :func:`slt_deploy.exact.fallback_count`)."""
        T = self.timesteps
        carried: Any = Value(x, x.shape[0] == 1 and T != 1, binary)
        counts: dict[str, np.ndarray] = {}
        for stage in self.stages:
            carried = stage(carried, T, counts)
        out = np.asarray(carried.expanded(T), np.float32)
        spike_counts = np.zeros((max(1, len(self.lif_names)), T), np.int64)
        for i, name in enumerate(self.lif_names):
            spike_counts[i] = counts[name]
        return out, spike_counts, None


def _spiking(op: Any) -> bool:
    return isinstance(op, NeuronOp) and op.spiking


def _conv_packs(op: Any) -> bool:
    """A conv whose chosen spike kernel is the stride-1 event scatter: binary weights within the
    byte lanes, int8 codes, or float32 weights whose every row's sums over spikes are certified exact."""
    if not isinstance(op, SynapseOp) or not op.conv or not op.float_rows_all_ok:
        return False
    plan = op._plans.get(True)
    if plan is None:
        return False
    store = plan[1]
    if not isinstance(store, ConvEventStore) or store.padded is None:
        return False
    return store.lane_ok or store.kind != "binary"


def _feeds_packed(rt: Any, names: list[str], i: int) -> bool:
    """Does the LIF at ``names[i]`` feed (through max pools) a conv that runs packed?"""
    j = i + 1
    while j < len(names) and rt.kinds[names[j]] == "maxpool2d":
        j += 1
    return j + 1 < len(names) and _conv_packs(rt.ops.get(names[j])) and _spiking(rt.ops.get(names[j + 1]))


# ------------------------------------------------------------------ stages
def _pack(value: Value, T: int, counts: dict[str, np.ndarray]) -> np.ndarray:
    return npk.pack(value.expanded(T))


def _unpack_stage(shape: tuple[int, ...]) -> Stage:
    def unpack(masks: np.ndarray, T: int, counts: dict[str, np.ndarray]) -> Value:
        return Value(npk.unpack(masks, T).reshape(T, masks.shape[1], *shape), False, True)
    return unpack


def _lif_stage(op: NeuronOp, name: str) -> Stage:
    lif = npk.PackedLif(op.params, op.n)

    def lif_packed(value: Value, T: int, counts: dict[str, np.ndarray]) -> np.ndarray:
        data = value.as_float()
        masks, counts[name] = lif(data.reshape(data.shape[0], data.shape[1], -1), T)
        return masks
    return lif_packed


def _conv_lif_stage(conv: SynapseOp, lif: NeuronOp, name: str) -> Stage:
    kernel = npk.PackedConvLif(conv._plans[True][1], conv.geom, conv.scale, conv.bias, lif.params, _LANES)

    def conv_lif(masks: np.ndarray, T: int, counts: dict[str, np.ndarray]) -> np.ndarray:
        out, counts[name] = kernel(masks, T)
        return out
    return conv_lif


def _pool_stage(node: MaxPool2d, shape: tuple[int, ...]) -> Stage:
    """Max pool of step masks: the bytewise OR (:func:`.numba_pool.pool_spikes`)."""
    def pool(masks: np.ndarray, T: int, counts: dict[str, np.ndarray]) -> np.ndarray:
        g, b = masks.shape[:2]
        out = pool_spikes(masks.reshape(g * b, *shape), node.kernel_size, node.stride, node.padding, False)
        return out.reshape(g, b, -1)
    return pool


def _node_stage(rt: Any, name: str) -> Stage:
    """A node through the graph executor's own function (LIF spike counts into ``counts``)."""
    op, apply = rt.ops.get(name), rt.apply_fns[name]

    def node(value: Value, T: int, counts: dict[str, np.ndarray]) -> Value:
        state = op.new_state(value.data.shape[1]) if isinstance(op, NeuronOp) else None
        per_step: dict[str, list[np.ndarray]] = {}
        out = apply(op, name, [value], T, state, per_step)
        if name in per_step:
            counts[name] = np.concatenate(per_step[name])
        return out
    return node

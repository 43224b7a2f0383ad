"""The graph executor of the CPU runtime: plan once, then run batches.

Execution is *layer-major*: a node outside any cycle processes all T steps of the batch in
one kernel call (rows = T·batch), so synapse kernels see T·batch rows at once and a
neuron kernel loops over T internally. Nodes on a cycle (strongly connected components
through recurrent edges) run *step-major*, one step at a time, with the previous step's
outputs on the recurrent edges. A value that is the same at every step (direct input and
everything computed from it alone, e.g. the analog first layer) is computed once.

The batch is split across ``threads`` worker threads (samples are independent); the
compiled kernels release the GIL. When the pool uses every CPU the process may run on (the
default), worker ``i`` is pinned to the ``i``-th of those CPUs (:mod:`.workers`).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any

import numpy as np

from slt_deploy import exact
from slt_deploy.dispatch import HandlerTable
from slt_deploy.errors import SltInputError, SltUnsupportedError
from slt_deploy.ir.graph import Edge, Ticket
from slt_deploy.ir.neurons import LI, LIF, RLIF
from slt_deploy.ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from slt_deploy.registry import CPU
from slt_deploy.result import Diagnostics, OutputInfo, Result, build_result, check_input
from slt_deploy.untrusted import FLOAT32_MAX

from . import costmodel, ops, workers
from . import tokens as token_ops
from .neurons import NeuronOp
from .synapse import SynapseOp
from .values import Value

BACKENDS = ("auto", "numba", "numpy")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


def kernels_for(backend: str) -> tuple[str, Any]:
    """Resolve ``backend`` to (name, kernel module)."""
    if backend not in BACKENDS:
        raise SltInputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "numba" if numba_available() else "numpy"
    if backend == "numba":
        if not numba_available():
            raise SltUnsupportedError(
                "backend 'numba' needs numba: pip install 'slt-deploy[fast]', or use backend='numpy'"
            )
        from . import kernels_numba as kernels
    else:
        from . import kernels_numpy as kernels
    return backend, kernels


@dataclass
class _Block:
    nodes: tuple[str, ...]
    stepwise: bool


class Runtime:
    """A ticket prepared for the CPU: ops per node, execution blocks, thread pool.

    Holds only what it runs with: weight stores, neuron parameters and the graph's
    structure (not the Ticket). ``weight_bytes`` is what the weights take in RAM.
    """

    def __init__(self, ticket: Ticket, backend: str = "auto", threads: int | None = None,
                 kernel: str | None = None, planes: dict[str, Any] | None = None) -> None:
        if kernel is not None and kernel not in costmodel.KERNELS:
            raise SltInputError(f"kernel must be one of {', '.join(costmodel.KERNELS)} or None, got {kernel!r}")
        self.backend, self.kernels = kernels_for(backend)
        self.threads = workers.thread_count(threads)
        self.kernel = kernel
        self.spec = SimpleNamespace(input_shape=ticket.input_shape, timesteps=ticket.timesteps,
                                    encoding=ticket.encoding)
        self.timesteps = ticket.timesteps
        self.order = tuple(ticket.order)
        self.input_name = ticket.input.name
        self.output_name = ticket.output.name
        self.info = OutputInfo.of(ticket)
        self.shapes = dict(ticket.shapes)
        self.in_edges: dict[str, list[Edge]] = {n: ticket.inputs_of(n) for n in self.order}
        self.lif_names = list(self.info.lif_names)
        self.ops: dict[str, Any] = {}
        self.kinds: dict[str, str] = {}
        self.apply_fns: dict[str, Any] = {}
        HANDLERS.check(ticket.nodes)
        self.planes = planes or {}
        for name in self.order:
            node = ticket.node(name)
            self.kinds[name] = node.kind
            prepare, self.apply_fns[name] = HANDLERS.handler(node)
            self.ops[name] = prepare(self, node)
        self.recurrent_zero = {n: (np.uint8 if isinstance(ticket.node(n), LIF) else np.float32)
                               for n in self.order if isinstance(ticket.node(n), (LIF, LI))}
        self.blocks = _blocks(ticket)
        self._released = False
        self._chains: dict[bool, Any] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------ public
    @property
    def weight_bytes(self) -> int:
        """Bytes of weight stores, scales, biases and neuron parameters held in RAM."""
        total = 0
        for op in self.ops.values():
            if isinstance(op, SynapseOp):
                total += op.nbytes
            elif isinstance(op, NeuronOp):
                total += op.params.nbytes
        return total

    @property
    def mapped_bytes(self) -> int:
        """Bytes of bit planes memory-mapped from the .slt file (shared page cache, read on demand)."""
        return sum(op.mapped_bytes for op in self.ops.values() if isinstance(op, SynapseOp))

    def kernels_used(self) -> dict[str, str]:
        """Synapse layer (and spike x spike MatMul) -> kernel chosen so far (``gather`` for analog input)."""
        return {name: "/".join(sorted(set(op.choice.values()))) for name, op in self.ops.items()
                if isinstance(op, (SynapseOp, token_ops.TokenOp)) and op.choice}

    def run(self, x: np.ndarray, record: bool = False) -> Result:
        """Run the batch ``x`` for T steps; see :func:`slt_deploy.result.check_input` for shapes.

        ``diagnostics.slow_path_sums``: sums that took the exact slow path during the run
        (:func:`slt_deploy.exact.fallback_count`, process-wide).
        """
        before = exact.fallback_count()
        result = self._run(x, record)
        if result.diagnostics.slow_path_sums is None:  # set only by the compiled chain program, which counts its own
            result.diagnostics = replace(result.diagnostics, slow_path_sums=exact.fallback_count() - before)
        return result

    def _run(self, x: np.ndarray, record: bool) -> Result:
        xs = self._checked(x)
        inp = self._encode(xs)
        batch = inp.data.shape[1]
        chunks = workers.split(batch, self.threads)
        fused = None if record else self._fused(inp, chunks)
        if fused is not None:
            return fused
        if len(chunks) == 1:
            parts = [self._execute(inp, record)]
        else:
            pool = self._executor()
            futures = [pool.submit(self._execute, Value(inp.data[:, lo:hi], inp.static, inp.binary), record)
                       for lo, hi in chunks]
            parts = [f.result() for f in futures]
        if not self._released:
            for op in self.ops.values():
                if isinstance(op, SynapseOp) and op.stores:
                    op.release_source()
            self._released = all(op.stores for op in self.ops.values() if isinstance(op, SynapseOp))
        return self._result(parts, record)

    # ------------------------------------------------------------------ fused chains
    def _fused(self, inp: Value, chunks: tuple[tuple[int, int], ...]) -> Result | None:
        """Run a feed-forward chain in one compiled call per chunk (numba), or None."""
        if self.backend != "numba" or not (inp.static or not inp.binary or inp.data.shape[0] == self.timesteps):
            return None
        key = inp.binary
        if key not in self._chains:
            if not self._plans_ready(inp.binary):
                return None  # the first generic run fixes the kernels
            from .chain import ChainProgram
            from .packed_chain import PackedChain

            self._chains[key] = ChainProgram.build(self, inp.binary) or PackedChain.build(self, inp.binary)
        chain = self._chains[key]
        if chain is None:
            return None
        if len(chunks) == 1:
            parts = [chain.run(inp.data, inp.binary)]
        else:
            pool = self._executor()
            futures = [pool.submit(chain.run, inp.data[:, lo:hi], inp.binary) for lo, hi in chunks]
            parts = [f.result() for f in futures]
        output = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts], axis=1)
        counts = parts[0][1] if len(parts) == 1 else np.sum([p[1] for p in parts], axis=0)
        # the compiled program counts its own slow-path sums; None: counted process-wide (run())
        slow = None if any(p[2] is None for p in parts) else sum(p[2] for p in parts)
        output = np.asarray(output, dtype=np.float32)
        spike_counts = {name: counts[i].copy() for i, name in enumerate(chain.lif_names)}
        return build_result(self.info, CPU.name, {self.output_name: output}, record=False, spike_counts=spike_counts,
                            diagnostics=Diagnostics(kernels=dict(chain.kernels), slow_path_sums=slow))

    def _plans_ready(self, binary_input: bool) -> bool:
        first = True
        for name in self.order:
            op = self.ops.get(name)
            if isinstance(op, SynapseOp):
                if not op._plans.get(binary_input if first else True):
                    return False
                first = False
        return True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # ------------------------------------------------------------------ encoding
    def _checked(self, x: Any) -> np.ndarray:
        """The input as a float array; plain float arrays of the right shape take a compiled check,
        anything else (and any failure) goes through :func:`slt_deploy.result.check_input`,
        which raises the one-line :class:`SltInputError`."""
        spec = self.spec
        if type(x) is np.ndarray and x.dtype in _FLOATS:
            spikes = spec.encoding.kind == "spikes"
            lead = 2 if spikes else 1
            if (x.shape[lead:] == spec.input_shape and x.ndim == lead + len(spec.input_shape) and x.shape[lead - 1] > 0
                    and (not spikes or x.shape[0] == self.timesteps)
                    and self.kernels.finite_in(x, spec.encoding.kind == "rate")
                    and (x.dtype == np.float32 or float(np.max(np.abs(x))) <= FLOAT32_MAX)):
                return x
        return check_input(spec, x)

    def _encode(self, x: np.ndarray) -> Value:
        kind, T = self.spec.encoding.kind, self.timesteps
        if kind == "rate":  # slt_deploy.ratecode, compiled with the numba backend
            if self.backend == "numba":
                from .rate_numba import spikes
            else:
                from slt_deploy.ratecode import spikes
            return Value(spikes(self.spec.encoding, x, T), static=False, binary=True)
        data = x[None] if kind == "direct" else x
        if self.kernels.is_binary(data):
            return Value(data.astype(np.uint8), static=kind == "direct", binary=True)
        return Value(data.astype(np.float32), static=kind == "direct", binary=False)

    # ------------------------------------------------------------------ execution
    def _execute(self, inp: Value, record: bool) -> tuple[dict[str, Value], dict[str, list[np.ndarray]]]:
        T = self.timesteps
        values: dict[str, Value] = {self.input_name: inp}
        counts: dict[str, list[np.ndarray]] = {}
        batch = inp.data.shape[1]
        for block in self.blocks:
            if block.stepwise:
                self._run_steps(block, values, counts, batch)
                continue
            name = block.nodes[0]
            if name == self.input_name:
                continue
            ins = [self._layer_input(e, values, batch) for e in self.in_edges[name]]
            state = self.ops[name].new_state(batch) if isinstance(self.ops.get(name), NeuronOp) else None
            values[name] = self._apply(name, ins, T, state, counts)
        return values, counts

    def _layer_input(self, e: Edge, values: dict[str, Value], batch: int) -> Value:
        v = values[e.src]
        if not e.recurrent:
            return v
        data = v.expanded(self.timesteps)
        shifted = np.concatenate([np.zeros((1, *data.shape[1:]), data.dtype), data[:-1]])
        return Value(shifted, False, v.binary, v.rate_known)

    def _zeros(self, name: str, batch: int) -> Value:
        dtype = self.recurrent_zero[name]
        return Value(np.zeros((1, batch, *self.shapes[name]), dtype), False, dtype == np.uint8, False)

    def _run_steps(self, block: _Block, values: dict[str, Value], counts: dict[str, list[np.ndarray]],
                   batch: int) -> None:
        members = set(block.nodes)
        states = {n: self.ops[n].new_state(batch) for n in block.nodes if isinstance(self.ops.get(n), NeuronOp)}
        prev: dict[str, Value] = {}
        outs: dict[str, list[np.ndarray]] = {n: [] for n in block.nodes}
        flags: dict[str, bool] = {}
        for t in range(self.timesteps):
            cur: dict[str, Value] = {}
            for name in block.nodes:
                ins = []
                for e in self.in_edges[name]:
                    if e.src in members:
                        v = (prev.get(e.src) or self._zeros(e.src, batch)) if e.recurrent else cur[e.src]
                    elif e.recurrent:
                        v = values[e.src].steps(t - 1, t) if t > 0 else self._zeros(e.src, batch)
                    else:
                        v = values[e.src].steps(t, t + 1)
                    ins.append(Value(v.data, v.static, v.binary, False))
                cur[name] = self._apply(name, ins, 1, states.get(name), counts)
            for name, v in cur.items():
                outs[name].append(v.expanded(1))
                flags[name] = v.binary
            prev = cur
        for name in block.nodes:
            values[name] = Value(np.concatenate(outs[name]), False, flags[name], True)

    def _apply(self, name: str, ins: list[Value], steps: int, state: Any,
               counts: dict[str, list[np.ndarray]]) -> Value:
        return self.apply_fns[name](self.ops.get(name), name, ins, steps, state, counts)

    # ------------------------------------------------------------------ result
    def _result(self, parts: list[tuple[dict[str, Value], dict[str, list[np.ndarray]]]], record: bool) -> Result:
        T = self.timesteps

        def merged(name: str) -> np.ndarray:
            arrays = [p[0][name].expanded(T) for p in parts]
            data = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1)
            return np.array(data, dtype=np.float32)  # a fresh array (never a view of run state)

        output = merged(self.output_name)
        names = self.order if record else (self.output_name,)
        layers = {n: (output if n == self.output_name else merged(n)) for n in names}
        spike_counts = {}
        for name in self.lif_names:
            per_part = [c[name][0] if len(c[name]) == 1 else np.concatenate(c[name]) for _, c in parts]
            spike_counts[name] = per_part[0].copy() if len(per_part) == 1 else np.sum(per_part, axis=0)
        return build_result(self.info, CPU.name, layers, record=record, spike_counts=spike_counts,
                            diagnostics=Diagnostics(kernels=self.kernels_used()))

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = workers.pool(self.threads)
            return self._pool


# ------------------------------------------------------------------ node kinds: (prepare, apply)
def _prepare_synapses(rt: Runtime, node: Linear | Conv2d) -> SynapseOp:
    src = rt.in_edges[node.name][0].src
    return SynapseOp(node, rt.shapes[src], rt.shapes[node.name], rt.backend, rt.kernels, rt.kernel,
                     rt.planes.get(node.name))


def _prepare_neurons(rt: Runtime, node: LIF | LI) -> NeuronOp:
    return NeuronOp(node, rt.kernels)


def _prepare_nothing(rt: Runtime, node: Node) -> None:
    return None


def _prepare_pool(rt: Runtime, node: SumPool2d | AvgPool2d | MaxPool2d) -> tuple[Node, Any]:
    """Weight-free: the IR node (window sizes) and the backend's compiled spike pool, if any."""
    return node, getattr(rt.kernels, "pool_spikes", None)


def _apply_synapses(op: SynapseOp, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    return op.forward(ins[0])


def _apply_neurons(op: NeuronOp, name: str, ins: list[Value], steps: int, state: Any,
                   counts: dict[str, list[np.ndarray]]) -> Value:
    out, c = op.forward(ins[0], steps, state, ins[1] if len(ins) > 1 else None)
    if op.spiking:
        counts.setdefault(name, []).append(c)
    return out


def _apply_pool(op: tuple[Node, Any], name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    return ops.pool(op[0], ins[0], op[1])  # type: ignore[arg-type]


def _apply_flatten(op: None, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    return ops.flatten(ins[0])


def _apply_add(op: None, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    return ops.add(ins)


def _apply_identity(op: None, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    return ins[0]


def _apply_input(op: None, name: str, ins: list[Value], steps: int, state: Any, counts: Any) -> Value:
    raise SltUnsupportedError(f"node '{name}': the input is encoded before the graph runs")  # never scheduled


HANDLERS: HandlerTable[tuple[Any, Any]] = HandlerTable("the cpu target", {
    Input: (_prepare_nothing, _apply_input),
    Output: (_prepare_nothing, _apply_identity),
    Linear: (_prepare_synapses, _apply_synapses),
    Conv2d: (_prepare_synapses, _apply_synapses),
    SumPool2d: (_prepare_pool, _apply_pool),
    AvgPool2d: (_prepare_pool, _apply_pool),
    MaxPool2d: (_prepare_pool, _apply_pool),
    Flatten: (_prepare_nothing, _apply_flatten),
    Add: (_prepare_nothing, _apply_add),
    LIF: (_prepare_neurons, _apply_neurons),
    LI: (_prepare_neurons, _apply_neurons),
    RLIF: (_prepare_neurons, _apply_neurons),
    **token_ops.HANDLERS,
})


def _blocks(ticket: Ticket) -> list[_Block]:
    """Strongly connected components over all edges, in a topological order of the condensation.

    Ties go to the component whose first node comes first in ``ticket.order``. A component
    with more than one node, or a node with a recurrent self-edge, runs step by step.
    """
    names = list(ticket.order)
    index = {n: i for i, n in enumerate(names)}
    succ: dict[str, list[str]] = {n: [] for n in names}
    pred: dict[str, list[str]] = {n: [] for n in names}
    for e in ticket.edges:
        succ[e.src].append(e.dst)
        pred[e.dst].append(e.src)
    # Kosaraju, iterative: finishing order on the graph, then components on the reverse.
    seen: set[str] = set()
    finish: list[str] = []
    for root in names:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next((m for m in it if m not in seen), None)
            if nxt is None:
                stack.pop()
                finish.append(node)
            else:
                seen.add(nxt)
                stack.append((nxt, iter(succ[nxt])))
    comp: dict[str, int] = {}
    members: list[list[str]] = []
    for root in reversed(finish):
        if root in comp:
            continue
        cid = len(members)
        members.append([])
        stack2 = [root]
        comp[root] = cid
        while stack2:
            node = stack2.pop()
            members[cid].append(node)
            for m in pred[node]:
                if m not in comp:
                    comp[m] = cid
                    stack2.append(m)
    # Topological order of the condensation (Kahn, smallest ticket-order index first).
    n_comp = len(members)
    indeg = [0] * n_comp
    out: dict[int, set[int]] = {c: set() for c in range(n_comp)}
    for e in ticket.edges:
        a, b = comp[e.src], comp[e.dst]
        if a != b and b not in out[a]:
            out[a].add(b)
            indeg[b] += 1
    key = [min(index[n] for n in m) for m in members]
    ready = sorted((c for c in range(n_comp) if indeg[c] == 0), key=lambda c: key[c])
    blocks: list[_Block] = []
    self_loops = {e.src for e in ticket.edges if e.src == e.dst}
    while ready:
        c = ready.pop(0)
        nodes = tuple(sorted(members[c], key=lambda n: index[n]))
        blocks.append(_Block(nodes, len(nodes) > 1 or nodes[0] in self_loops))
        for d in out[c]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
        ready.sort(key=lambda c2: key[c2])
    return blocks

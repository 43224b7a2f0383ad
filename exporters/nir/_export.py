"""Ticket -> NIR graph (see the package docstring and docs/targets-nir.md)."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...dispatch import HandlerTable, refuse
from ...errors import SltError, SltUnsupportedError
from ...ir.graph import Ticket
from ...ir.neurons import LI, LIF, RLIF, NeuronLayer
from ...ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, SumPool2d
from ...ir.tokens import TOKEN_KINDS
from ._common import (
    DEFAULT_DT,
    DT_KEY,
    FORMAT,
    TICKET_KEY,
    VERSION,
    encode_weights,
    tau64_for_beta,
    tau_for_beta,
    unit_resistance,
)


@dataclass
class _Build:
    """What one export found: the NIR pieces plus approximations and consumer notes."""

    ticket: Ticket
    dt: float
    nodes: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    approximations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folds: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)  # synapse -> (neuron, NIR bias)


def check_dt(dt: Any) -> float:
    try:
        value = float(dt) if not isinstance(dt, (bool, str)) else math.nan
    except (TypeError, ValueError):
        raise SltError(f"dt must be a positive number of seconds, got {dt!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SltError(f"dt must be a positive, finite number of seconds, got {dt!r}")
    return value


def build_graph(ticket: Ticket, dt: float = DEFAULT_DT, allow_approximate: bool = False,
                notes: bool = True) -> tuple[Any, dict[str, Any]]:
    """``(nir.NIRGraph, report)``; raises :class:`SltUnsupportedError` for what NIR cannot state.

    ``notes=False`` skips the consumer notes (the importer's consistency check needs only the graph).
    """
    import nir

    if not isinstance(ticket, Ticket):
        raise SltError(f"expected a Ticket, got {type(ticket).__name__}")
    b = _Build(ticket, check_dt(dt))
    # the attention products first: they are what NIR lacks (a token view is refused only along with them)
    HANDLERS.check(sorted(ticket.nodes, key=lambda n: n.kind not in ("matmul", "mul")))
    _plan_bias_folds(b)
    for node in ticket.nodes:
        _export_node(b, node)
    _export_edges(b)
    if notes:
        _consumer_notes(b)
    if b.approximations and not allow_approximate:
        more = f" (and {len(b.approximations) - 1} more)" if len(b.approximations) > 1 else ""
        raise SltUnsupportedError(
            f"{b.approximations[0]}{more}; NIR consumers would compute something else. "
            "Pass --allow-approximate (slt export) to write it anyway; slt itself reads the file back exactly"
        )
    metadata = {DT_KEY: b.dt, TICKET_KEY: _ticket_document(ticket)}
    try:
        graph = nir.NIRGraph(nodes=b.nodes, edges=b.edges, metadata=metadata, type_check=False)
    except Exception as exc:  # noqa: BLE001 - nir validates with ValueError / AssertionError
        raise SltError(f"internal error: nir rejected the exported graph: {type(exc).__name__}: {exc}") from None
    if notes:
        _nir_type_check_note(b, graph)
    report = {
        "format": "nir",
        "nir_version": getattr(nir, "version", "unknown"),
        "dt": b.dt,
        "nodes": len(b.nodes),
        "edges": len(b.edges),
        "exact": not b.approximations,
        "approximations": list(b.approximations),
        "consumer_notes": list(b.notes),
    }
    return graph, report


def _encoding_document(ticket: Ticket) -> dict[str, Any]:
    """``{"kind", "seed"}``, plus the rate code's name for a rate encoding (slt_deploy.ratecode)."""
    enc = ticket.encoding
    doc: dict[str, Any] = {"kind": enc.kind, "seed": enc.seed}
    if enc.kind == "rate":
        doc["code"] = enc.code
    return doc


def _ticket_document(ticket: Ticket) -> str:
    """The exact IR structure (node order, kinds, edges with recurrent flags, T, encoding, metadata)."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "timesteps": ticket.timesteps,
        "encoding": _encoding_document(ticket),
        "metadata": dict(ticket.metadata),
        "nodes": [[n.name, n.kind] for n in ticket.nodes],
        "edges": [[e.src, e.dst, bool(e.recurrent)] for e in ticket.edges],
    }
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))  # ASCII: HDF5 strings end at NUL


# ------------------------------------------------------------------ biases
def _plan_bias_folds(b: _Build) -> None:
    """NIR neurons have no bias: put a neuron layer's bias into the synapse node right before it."""
    t = b.ticket
    for neuron in t.neuron_layers():
        if neuron.bias is None:
            continue
        if isinstance(neuron, RLIF):
            raise SltUnsupportedError(
                f"node '{neuron.name}' (rlif): its bias has no NIR form (NIR neurons have no bias, and an RLIF's two "
                "inputs leave no single synapse to fold it into); fold it into the feed-forward Linear first"
            )
        (edge,) = t.inputs_of(neuron.name)
        src = t.node(edge.src)
        sole = [e.dst for e in t.edges if e.src == src.name] == [neuron.name]
        if edge.recurrent or not isinstance(src, (Linear, Conv2d)) or not sole:
            raise SltUnsupportedError(
                f"node '{neuron.name}': its bias has no NIR form (NIR neurons have no bias; slt folds it only into "
                "a directly preceding Linear/Conv2d that feeds nothing else)"
            )
        bias = neuron.bias
        if isinstance(src, Conv2d):
            per_channel = bias.reshape(bias.shape[0], -1)
            if not np.all(per_channel == per_channel[:, :1]):
                raise SltUnsupportedError(
                    f"node '{neuron.name}': its bias varies within a channel, which a Conv2d bias "
                    f"('{src.name}') cannot state"
                )
            bias = per_channel[:, 0].copy()
        if src.bias is None:
            folded = bias.astype(np.float32)
        else:
            folded = (src.bias + bias).astype(np.float32)
            b.approximations.append(
                f"node '{neuron.name}': bias folded into '{src.name}' as float32(b_syn + b_neuron), while slt "
                "adds them one after the other, so the rounding can differ"
            )
        b.folds[src.name] = (neuron.name, folded)


# ------------------------------------------------------------------ nodes
def _export_node(b: _Build, node: Node) -> None:
    meta: dict[str, Any] = {"slt.kind": node.kind}
    exported = HANDLERS.handler(node)(b, node, meta)
    if exported is not None:
        b.nodes[node.name] = exported


def _export_input(b: _Build, node: Input, meta: dict[str, Any]) -> Any:
    import nir

    return nir.Input(input_type=np.array(node.shape, dtype=np.int64), metadata=meta)


def _export_output(b: _Build, node: Output, meta: dict[str, Any]) -> Any:
    import nir

    return nir.Output(output_type=np.array(b.ticket.shapes[node.name], dtype=np.int64), metadata=meta)


def _export_synapses(b: _Build, node: Linear | Conv2d, meta: dict[str, Any]) -> Any:
    import nir

    dense, wmeta = encode_weights(node.weights)
    meta.update(wmeta)
    if not np.all(np.isfinite(dense)):
        b.approximations.append(
            f"node '{node.name}': scale x code overflows float32 in the dense weights (inf), while slt scales "
            "the exact integer sum"
        )
    if node.bias is not None:
        meta["slt.bias"] = node.bias.copy()
    bias = node.bias
    if node.name in b.folds:
        meta["slt.bias_from"], bias = b.folds[node.name]
    if isinstance(node, Linear):
        return (nir.Linear(weight=dense, metadata=meta) if bias is None
                else nir.Affine(weight=dense, bias=bias.astype(np.float32), metadata=meta))
    (edge,) = b.ticket.inputs_of(node.name)
    in_shape = b.ticket.shapes[edge.src]
    if bias is None:
        bias = np.zeros(node.weights.mask.shape[0], np.float32)
    return nir.Conv2d(
        input_shape=tuple(int(v) for v in in_shape[1:]), weight=dense,
        stride=np.array(node.stride), padding=np.array(node.padding), dilation=np.array(node.dilation),
        groups=int(node.groups), bias=bias.astype(np.float32), metadata=meta,
    )


def _export_window_pool(b: _Build, node: SumPool2d | AvgPool2d, meta: dict[str, Any]) -> Any:
    import nir

    cls = nir.SumPool2d if isinstance(node, SumPool2d) else nir.AvgPool2d
    return cls(kernel_size=np.array(node.kernel_size), stride=np.array(node.stride),
               padding=np.array(node.padding), metadata=meta)


def _export_flatten(b: _Build, node: Flatten, meta: dict[str, Any]) -> Any:
    import nir

    (edge,) = b.ticket.inputs_of(node.name)
    in_shape = np.array(b.ticket.shapes[edge.src], dtype=np.int64)
    return nir.Flatten(input_type={"input": in_shape}, start_dim=0, end_dim=-1, metadata=meta)


def _export_add(b: _Build, node: Add, meta: dict[str, Any]) -> None:
    return None  # NIR sums the edges into a node: see _export_edges


def _neuron_meta(node: NeuronLayer, meta: dict[str, Any]) -> None:
    meta["slt.beta"] = node.beta.copy()  # type: ignore[attr-defined]
    if node.bias is not None:  # type: ignore[attr-defined]
        meta["slt.bias"] = node.bias.copy()  # type: ignore[attr-defined]


def _leak(b: _Build, node: NeuronLayer, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(tau, r)`` for a leaky layer: float32 tau where every β has one, else float64 (see _common)."""
    tau, exact = tau_for_beta(beta, b.dt)
    if not exact.all():
        tau, exact = tau64_for_beta(beta, b.dt)
    if not exact[beta < 1].all():
        worst = int(np.flatnonzero(~exact.reshape(-1) & (beta.reshape(-1) < 1))[0])
        b.approximations.append(
            f"node '{node.name}': beta of {int((~exact & (beta < 1)).sum())} neuron(s) (e.g. "
            f"{beta.reshape(-1)[worst]!r}) is not 1 - dt/tau for any float32 or float64 tau at dt={b.dt:g}, which is "
            f"how {_SNNTORCH} and slt read a NIR LIF back; the nearest tau is written (slt.beta keeps the exact value)"
        )
    if np.any(beta == 1):
        b.approximations.append(
            f"node '{node.name}': some neurons have beta = 1 inside a leaky layer; NIR needs tau = r = inf for them, "
            f"which {_SNNTORCH} reads as a NaN gain"
        )
    return tau, unit_resistance(tau, b.dt)


def _export_lif(b: _Build, node: LIF, meta: dict[str, Any]) -> Any:
    import nir

    _neuron_meta(node, meta)
    meta.update({"slt.threshold": node.threshold.copy(), "slt.reset": node.reset, "slt.charge": node.charge,
                 "slt.reset_amount": node.reset_amount.copy()})
    zeros = np.zeros(node.shape, np.float32)
    theta = node.threshold.astype(np.float32)
    if node.reset != "zero":
        b.approximations.append(_reset_reason(node))
    if node.charge != "leaky":
        tau_steps = node.tau.astype(np.float32)  # type: ignore[union-attr]
        meta["slt.tau"] = tau_steps.copy()
        b.approximations.append(
            f"node '{node.name}': charge {node.charge!r} (SpikingJelly) is written as the same continuous-time LIF "
            "(tau = tau_steps*dt), but NIR consumers compute beta*v + gain*I, which rounds differently"
        )
        tau = (tau_steps * np.float32(b.dt)).astype(np.float32)
        r = np.ones(node.shape, np.float32) if node.charge == "decay_input" else tau_steps
        return nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=theta, v_reset=zeros.copy(), metadata=meta)
    if node.is_if:
        return nir.IF(r=np.ones(node.shape, np.float32), v_threshold=theta, v_reset=zeros, metadata=meta)
    tau, r = _leak(b, node, node.beta)
    return nir.LIF(tau=tau, r=r, v_leak=zeros, v_threshold=theta, v_reset=zeros.copy(), metadata=meta)


def _export_rlif(b: _Build, node: RLIF, meta: dict[str, Any]) -> Any:
    """An RLIF as a NIR LIF fed by both currents; ``slt.kind = rlif`` keeps the exact form for slt's reader."""
    b.approximations.append(
        f"node '{node.name}' (rlif): NIR sums a neuron's incoming edges before it integrates, beta*v + (I + rec), "
        "where the RLIF (snnTorch RLeaky) computes (beta*v + I) + rec, which rounds differently; and "
        f"{_SNNTORCH} reads the LIF <-> Affine cycle as RLeaky(reset_delay=False) with a zero reset"
    )
    return _export_lif(b, node, meta)


def _reset_reason(node: LIF) -> str:
    """Why a non-zero reset has no NIR form that a NIR reader runs exactly (tests/test_nir.py checks the claims)."""
    if node.reset == "none":
        form = (f"its NIR form, an LI followed by a Threshold, is not read by {_SNNTORCH} (it maps neither LI nor "
                "Threshold and reads every LIF as a zero reset)")
    else:
        slt = {"subtract_delayed": "(beta*v + I) - theta*s", "subtract": "beta*(v - theta*s) + I",
               "zero_delayed": "v = 0 after a spike, else beta*v + I"}[node.reset]
        form = (f"the decomposition into LI, Threshold and a recurrent Affine(-theta) is not read by {_SNNTORCH} "
                "(it maps neither LI nor Threshold and reads every LIF as a zero reset), and a reader that sums the "
                f"edges into the LI computes beta*v + (I - theta*s) where slt computes {slt}")
    what = {"subtract_delayed": " (snnTorch's default subtract reset)", "subtract": " (subtract at the spike)",
            "none": "",
            "zero_delayed": " (snnTorch RLeaky's zero reset: the charge after a spike is dropped)"}[node.reset]
    return (
        f"node '{node.name}': reset {node.reset!r}{what} has no NIR form a NIR reader runs exactly: a NIR LIF sets "
        f"v to v_reset after a spike (reset 'zero'); {form}. Train with reset_mechanism='zero' (slt search's "
        "default) for an exact export; the file written anyway has v_reset = 0 and slt.reset keeps the exact mode"
    )


def _export_li(b: _Build, node: LI, meta: dict[str, Any]) -> Any:
    import nir

    _neuron_meta(node, meta)
    if np.all(node.beta == 1):
        return nir.I(r=np.ones(node.shape, np.float32), metadata=meta)
    tau, r = _leak(b, node, node.beta)
    return nir.LI(tau=tau, r=r, v_leak=np.zeros(node.shape, np.float32), metadata=meta)


HANDLERS = HandlerTable("the NIR exporter", {
    Input: _export_input, Output: _export_output, Linear: _export_synapses, Conv2d: _export_synapses,
    SumPool2d: _export_window_pool, AvgPool2d: _export_window_pool,
    MaxPool2d: refuse("MaxPool2d has no NIR 1.0 primitive (NIR has SumPool2d and AvgPool2d); replace it before "
                      "exporting to NIR, or export to ONNX"),
    Flatten: _export_flatten, Add: _export_add, LIF: _export_lif, LI: _export_li,
    RLIF: _export_rlif,
    **dict.fromkeys(TOKEN_KINDS, refuse(
        "NIR 1.0 has no activation x activation matmul, product, reduction, reshape or token "
        "selection primitive, so a spiking transformer has no NIR form; export it to ONNX (--to onnx)")),
})


# ------------------------------------------------------------------ edges
def _export_edges(b: _Build) -> None:
    """IR edges -> NIR edges. An Add disappears: each of its inputs gets an edge into its consumers
    (NIR sums the edges into a node)."""
    t = b.ticket

    def leaves(name: str) -> list[str]:
        out: list[str] = []
        for e in t.inputs_of(name):
            out.extend(leaves(e.src) if isinstance(t.node(e.src), Add) else [e.src])
        return out

    seen: set[tuple[str, str]] = set()
    for e in t.edges:
        dst = t.node(e.dst)
        if isinstance(dst, Add):
            continue
        srcs = leaves(e.src) if isinstance(t.node(e.src), Add) else [e.src]
        if len(srcs) > 1:
            if isinstance(dst, Output):
                raise SltUnsupportedError(
                    f"node '{e.src}': an Add feeding the Output has no NIR form (NIR Output nodes do not sum)"
                )
            if len(srcs) > 2:
                b.approximations.append(
                    f"node '{e.src}': NIR sums the {len(srcs)} edges into '{e.dst}' in an unspecified order, "
                    "slt sums in edge order ((x0 + x1) + x2), so the rounding can differ"
                )
        for s in srcs:
            if (s, e.dst) in seen:
                raise SltUnsupportedError(
                    f"edge {s} -> {e.dst}: NIR cannot state the same edge twice (an Add summing one source twice)"
                )
            seen.add((s, e.dst))
            b.edges.append((s, e.dst))


# ------------------------------------------------------------------ notes for known consumers
def _nir_type_check_note(b: _Build, graph: Any) -> None:
    """nir 1.0's own type inference mis-sizes grouped and non-square convolutions; say so if it trips."""
    try:
        probe = copy.deepcopy(graph)
        probe.infer_types()
        probe.check_types()
    except Exception as exc:  # noqa: BLE001
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        b.notes.append(
            f"nir.read(path) with its default type_check=True rejects this graph ({text}): nir 1.0's type inference "
            "takes weight.shape[1] as the input channels and kH as both kernel sizes; read it with type_check=False"
        )


_SNNTORCH = "snnTorch import_from_nir"


def _lif_notes(n: LIF) -> list[str]:
    if n.charge != "leaky":
        return []
    notes = []
    if n.is_if:
        notes.append(f"{_SNNTORCH} reads nir.IF '{n.name}' as Leaky(beta=0.9, reset by subtraction), not as IF")
    if np.unique(n.threshold).size > 1:
        notes.append(f"{_SNNTORCH} needs one v_threshold per layer; '{n.name}' has per-neuron thresholds")
    if np.any(n.threshold < 0):
        notes.append(f"{_SNNTORCH} uses reset_delay=False, which re-fires after a zero reset when the threshold "
                     f"of '{n.name}' is negative")
    return notes


_CONSUMER_NOTES = {  # node kind -> how snnTorch 1.0's import_from_nir reads it, where that differs
    LIF.kind: _lif_notes,
    RLIF.kind: _lif_notes,
    LI.kind: lambda n: [f"{_SNNTORCH} has no mapping for nir.LI / nir.I ('{n.name}')"],
    SumPool2d.kind: lambda n: [f"{_SNNTORCH} has no mapping for nir.SumPool2d ('{n.name}'); nirtorch's default is "
                               "LPPool2d (norm 1) without padding"],
    Flatten.kind: lambda n: [f"{_SNNTORCH} builds torch.nn.Flatten(0, -1) for '{n.name}', which flattens the batch "
                             "axis too: run it with batch size 1"],
}


def _consumer_notes(b: _Build) -> None:
    """How snnTorch 1.0's ``import_from_nir`` will read this graph where it differs from the file."""
    t, notes = b.ticket, b.notes
    pre = _SNNTORCH
    if not math.isclose(b.dt, DEFAULT_DT, rel_tol=0, abs_tol=0):
        notes.append(f"{pre} assumes dt = 1e-4 and ignores the graph's dt = {b.dt:g}: its beta will differ")
    for n in t.nodes:
        notes.extend(_CONSUMER_NOTES.get(n.kind, lambda _: [])(n))
    if any(e.recurrent for e in t.edges):
        notes.append(
            f"{pre} reads a LIF <-> Affine/Linear cycle as RLeaky (reset_delay=False, zero reset discards the next "
            "charge), and nirtorch delays the edge into the neuron rather than the edge leaving it "
            "(slt.ticket marks the recurrent edges exactly)"
        )

"""The ANN baseline, counted as NeuroBench 2.3's ``SynapticOperations`` counts it.

NeuroBench hooks every ``Linear``/``Conv`` module, binarises the layer's input (``x ≠ 0``)
and weights (``w ≠ 0``), and counts one operation per (nonzero weight, nonzero input) pair
of each call, bias excluded: *effective* operations, AC when every input value of the call
is in {−1, 0, 1}, MAC otherwise. For a ReLU ANN that skips the zero pixels of the first
layer and every zero activation after a ReLU. Here the same pairs are counted with the
same integer kernels as the ticket (:func:`.counting.count_inputs`, mask = ``w ≠ 0``), one
layer call per sample (NeuroBench classifies a batched call; an ANN's analog inputs make
every call a MAC call either way)::

    Eff_MACs = Σ_l Σ_b eff_l[b] · (1 − bin_l[b]) / N,     Eff_ACs likewise with bin_l[b]
    Dense    = Σ_l (ops with every weight and input value taken as nonzero) = NeuroBench "Dense"

Two sources for the ANN (same architecture as the ticket: one Linear/Conv2d per synapse
layer, in graph order, with the ticket's weight shapes):

- **measured**: a trained ReLU ANN, run on the same inputs. Either a ``torch.nn.Module``
  (its own forward pass, inputs captured by forward pre-hooks as NeuroBench does), or its
  weights: a ``.safetensors`` file or a ``.pt`` state dict read with
  ``torch.load(weights_only=True)`` (never an arbitrary pickle). Weights are matched to the
  ticket's synapse layers by name (``<layer>.weight``, ``<layer>.bias``) or else in order,
  and run through the ticket's graph with every neuron layer replaced by a ReLU (the
  layer feeding the output: identity, the logits).
- **estimated** (no ANN given): the first layers' inputs are the analog input, measured;
  every later layer's inputs are ReLU outputs whose zero fraction ``s`` is *assumed*::

      Eff_l = Σ_b dense_eff_l[b] / N          first layers (reached from the input without a neuron layer)
      Eff_l = (1 − s) · Dense_l               every other layer
      Eff_l = Π_operands d · Dense_l          attention (MatMul, Mul; Reduce: adds, so ACs), d = 1 − s for an
                                              operand that is a ReLU output, 1 for a product or sum of them

  (spiking transformers: every token kept, each layer times its token factor, :mod:`.tokenops`;
  the ANN twin of spiking self-attention is real-valued attention ``Q·Kᵀ·V``, counted as MACs)

  ``s`` defaults to 0.5 (:data:`ASSUMED_SPARSITY`): Glorot, Bordes & Bengio (AISTATS 2011)
  observe that about half of a rectifier network's hidden outputs are exactly zero (after
  uniform initialisation; sparsity penalties raise it). A sparser real ANN is cheaper, so
  the estimate can overstate the saving; a measured twin removes the assumption.

ANN input: the ticket's input for direct and rate encoding (the analog values); for a
spike-train ticket the given ``ann_input``, else the spike counts over T (an event frame).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..dispatch import HandlerTable, refuse
from ..ir.graph import Encoding, Ticket
from ..ir.neurons import LI, LIF, RLIF
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Output, SumPool2d
from ..ir.tokens import TOKEN_KINDS
from .ann_files import SltAnnError, _torch, load_ann_file
from .counting import count_inputs, first_layers
from .stats import Progress, RunStats, StatsBuilder, batch_size_for
from .tokenops import operand_density

ASSUMED_SPARSITY = 0.5
SPARSITY_SOURCE = ("Glorot, Bordes & Bengio, 'Deep Sparse Rectifier Neural Networks', AISTATS 2011: "
                   "about half of a ReLU network's hidden outputs are exactly zero")
SCHEMA = "slt-ann/1"
ANN_SUFFIX = ".ann.safetensors"


@dataclass(frozen=True)
class AnnCounts:
    """The ANN baseline's effective operations, per layer and per sample.

    ``stats`` holds the measured run (one pass, ``timesteps = 1``); an estimate has the
    first layers' measured counts there and the rest in ``assumed``
    (layer → assumed effective MACs per inference).
    """

    measured: bool
    source: str
    stats: RunStats
    sparsity: float
    sparsity_source: str
    assumed: dict[str, float]
    metadata: dict[str, str]
    assumed_ac: dict[str, float] = field(default_factory=dict)  # assumed layers that only add (a Reduce)

    def layer_ops(self, name: str) -> tuple[float, float]:
        """(ACs, MACs) per inference of one layer."""
        if name in self.assumed_ac:
            return self.assumed_ac[name], 0.0
        if name in self.assumed:
            return 0.0, self.assumed[name]
        s = self.stats.synapse(name)
        return s.ac / self.stats.samples, s.mac / self.stats.samples

    def per_sample(self) -> tuple[np.ndarray, np.ndarray]:
        """(ACs, MACs) per sample, all layers, ``(N,)`` each."""
        skip = self.assumed.keys() | self.assumed_ac.keys()
        ac = sum((s.ac_b for s in self.stats.synapses if s.name not in skip),
                 np.zeros(self.stats.samples, np.int64)).astype(np.float64)
        mac = sum((s.mac_b for s in self.stats.synapses if s.name not in skip),
                  np.zeros(self.stats.samples, np.int64)).astype(np.float64)
        return ac + sum(self.assumed_ac.values()), mac + sum(self.assumed.values())

    @property
    def effective_ac(self) -> float:
        """ACs per inference: the integer total over measured layers divided once by the samples
        (NeuroBench's ``Effective_ACs``), plus assumed layers."""
        n = self.stats.samples
        skip = self.assumed.keys() | self.assumed_ac.keys()
        return sum(s.ac for s in self.stats.synapses if s.name not in skip) / n + sum(self.assumed_ac.values())

    @property
    def effective_mac(self) -> float:
        """MACs per inference, as :attr:`effective_ac` (NeuroBench's ``Effective_MACs``)."""
        n = self.stats.samples
        skip = self.assumed.keys() | self.assumed_ac.keys()
        return sum(s.mac for s in self.stats.synapses if s.name not in skip) / n + sum(self.assumed.values())

    @property
    def dense(self) -> int:
        """NeuroBench's ``Dense`` per inference: every weight and input value taken as nonzero
        (every token kept: each layer times its token factor)."""
        return round(sum(s.dense_ops * s.token_factor for s in self.stats.synapses))


# ------------------------------------------------------------------------------ files
def twin_path(slt_path: str | os.PathLike[str]) -> Path:
    """Where ``slt search --ann-twin`` puts a ticket's ANN twin: ``t.slt`` → ``t.ann.safetensors``."""
    p = Path(slt_path)
    return p.with_name(p.name[: -len(p.suffix)] + ANN_SUFFIX if p.suffix else p.name + ANN_SUFFIX)


def available_twin(slt_path: str | os.PathLike[str] | None) -> Path | None:
    """The ANN twin next to ``slt_path`` when it exists and PyTorch (which runs it) is installed, else None."""
    if slt_path is None or not twin_path(slt_path).is_file():
        return None
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    return twin_path(slt_path)


# ------------------------------------------------------------------------------ architecture
@dataclass(frozen=True)
class AnnLayer:
    """Weights and bias (float32) of the ANN's layer matching the ticket's synapse layer ``name``."""

    name: str
    weight: np.ndarray
    bias: np.ndarray | None


def check_architecture(ticket: Ticket) -> None:
    """An ANN twin needs a feed-forward ticket (a recurrent edge has no ANN counterpart here)."""
    if any(e.recurrent for e in ticket.edges):
        e = next(e for e in ticket.edges if e.recurrent)
        raise SltAnnError(f"the ticket has a recurrent edge {e.src} -> {e.dst}; an ANN twin is defined for "
                          "feed-forward tickets only")


def match_layers(ticket: Ticket, tensors: Mapping[str, np.ndarray], origin: str) -> list[AnnLayer]:
    """The ANN weights of each synapse layer of ``ticket``: by name (``<layer>.weight``), else in order."""
    layers = ticket.synapse_layers()
    bn = sorted(k for k in tensors if k.endswith(("running_mean", "running_var")))
    by_name = all(f"{n.name}.weight" in tensors for n in layers)
    if by_name:
        pairs = [(n, f"{n.name}.weight", f"{n.name}.bias") for n in layers]
    else:
        if bn:
            raise SltAnnError(f"{origin}: holds BatchNorm statistics ({bn[0]}); fold BatchNorm into the preceding "
                              "layer first (slt search --ann-twin does), or name the tensors after the ticket's layers")
        weights = [k for k, v in tensors.items() if k.endswith("weight") and np.ndim(v) in (2, 4)]
        if len(weights) != len(layers):
            names = ", ".join(n.name for n in layers)
            raise SltAnnError(f"{origin}: has {len(weights)} Linear/Conv2d weight tensor(s), the ticket {len(layers)} "
                              f"synapse layer(s) ({names}); not the same architecture")
        pairs = [(n, k, k[: -len("weight")] + "bias") for n, k in zip(layers, weights, strict=True)]
    out = []
    for node, wkey, bkey in pairs:
        w = np.asarray(tensors[wkey])
        want = node.weights.mask.shape
        if w.shape != want:
            raise SltAnnError(f"{origin}: {wkey} has shape {w.shape}, the ticket's layer '{node.name}' {want}")
        b = tensors.get(bkey)
        if b is not None and np.shape(b) != (want[0],):
            raise SltAnnError(f"{origin}: {bkey} has shape {np.shape(b)}, expected ({want[0]},)")
        w32 = w.astype(np.float32)
        if not np.all(np.isfinite(w32)) or (b is not None and not np.all(np.isfinite(b))):
            raise SltAnnError(f"{origin}: {wkey} or its bias holds NaN or inf")
        out.append(AnnLayer(node.name, w32, None if b is None else np.asarray(b, np.float32)))
    return out


def _output_feeders(ticket: Ticket) -> set[str]:
    return {e.src for e in ticket.edges if isinstance(ticket.node(e.dst), Output)}


def graph_forward(ticket: Ticket, layers: list[AnnLayer]) -> Callable[[Any], dict[str, Any]]:
    """A torch function ``x -> {synapse layer: its input}`` running the ticket's graph as a ReLU ANN."""
    torch = _torch()
    import torch.nn.functional as F

    params = {a.name: (torch.tensor(a.weight), None if a.bias is None else torch.tensor(a.bias))
              for a in layers}
    logits = _output_feeders(ticket)

    HANDLERS.check(ticket.nodes)

    def run(x: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        seen: dict[str, Any] = {}
        for name in ticket.order:
            node = ticket.node(name)
            ins = [x] if name == ticket.input.name else [values[e.src] for e in ticket.inputs_of(name)]
            if node.kind in (Linear.kind, Conv2d.kind):
                seen[name] = ins[0]
            values[name] = HANDLERS.handler(node)(F, node, ins, params.get(name), name in logits)
        return seen

    return run


def _ann_synapses(F: Any, node: Linear | Conv2d, ins: list[Any], param: Any, logits: bool) -> Any:
    if node.kind == Linear.kind:
        return F.linear(ins[0], *param)
    return F.conv2d(ins[0], *param, stride=node.stride, padding=node.padding, dilation=node.dilation,
                    groups=node.groups)


def _ann_window_pool(F: Any, node: AvgPool2d | SumPool2d, ins: list[Any], param: Any, logits: bool) -> Any:
    out = F.avg_pool2d(ins[0], node.kernel_size, node.stride, node.padding, count_include_pad=True)
    return out * (node.kernel_size[0] * node.kernel_size[1]) if node.kind == SumPool2d.kind else out


def _ann_add(F: Any, node: Add, ins: list[Any], param: Any, logits: bool) -> Any:
    out = ins[0]
    for other in ins[1:]:
        out = out + other
    return out


HANDLERS: HandlerTable[Callable[..., Any]] = HandlerTable("the ANN twin", {
    Input: lambda F, node, ins, param, logits: ins[0],
    Output: lambda F, node, ins, param, logits: ins[0],
    Linear: _ann_synapses, Conv2d: _ann_synapses,
    LIF: lambda F, node, ins, param, logits: ins[0] if logits else F.relu(ins[0]),  # a neuron layer is a ReLU
    LI: lambda F, node, ins, param, logits: ins[0] if logits else F.relu(ins[0]),
    RLIF: refuse("a recurrent LIF layer (rlif) has no feed-forward ANN twin; compare recurrent tickets by "
                 "their synaptic operations alone"),
    MaxPool2d: lambda F, node, ins, param, logits: F.max_pool2d(ins[0], node.kernel_size, node.stride, node.padding),
    AvgPool2d: _ann_window_pool, SumPool2d: _ann_window_pool,
    Flatten: lambda F, node, ins, param, logits: ins[0].flatten(1),
    Add: _ann_add,
    **dict.fromkeys(TOKEN_KINDS, refuse(
        "a measured ANN of a token/attention ticket is not supported yet; leave out --ann: the report then "
        "estimates the ANN twin (real-valued attention Q·Kᵀ·V counted as MACs, every token kept)")),
})


def module_forward(ticket: Ticket, model: Any) -> tuple[Callable[[Any], dict[str, Any]], list[AnnLayer]]:
    """Run a user's ``nn.Module`` itself; forward pre-hooks capture each Linear/Conv2d input (in module
    order, matched to the ticket's synapse layers in graph order, shapes checked)."""
    torch = _torch()
    from torch import nn

    mods = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    others = [type(m).__name__ for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv3d, nn.RNNBase,
                                                                          nn.RNNCellBase))]
    if others:
        raise SltAnnError(f"the ANN has a {others[0]} layer; the ticket's architecture has Linear and Conv2d only")
    nodes = ticket.synapse_layers()
    if len(mods) != len(nodes):
        raise SltAnnError(f"the ANN has {len(mods)} Linear/Conv2d layer(s), the ticket {len(nodes)} synapse layer(s); "
                          "not the same architecture")
    layers = []
    for m, node in zip(mods, nodes, strict=True):
        w = m.weight.detach().to(torch.float64).numpy()
        if w.shape != node.weights.mask.shape or isinstance(m, nn.Conv2d) != isinstance(node, Conv2d):
            raise SltAnnError(f"ANN layer {type(m).__name__}{tuple(w.shape)} does not match the ticket's layer "
                              f"'{node.name}' ({node.kind} {node.weights.mask.shape})")
        if isinstance(m, nn.Conv2d):
            geometry = (tuple(m.stride), m.padding, tuple(m.dilation), m.groups, m.padding_mode)
            want = (node.stride, node.padding, node.dilation, node.groups, "zeros")
            if geometry != want:
                raise SltAnnError(f"ANN conv for '{node.name}' has stride/padding/dilation/groups/padding mode "
                                  f"{geometry}, the ticket {want}")
        b = None if m.bias is None else m.bias.detach().to(torch.float64).numpy()
        layers.append(AnnLayer(node.name, w, b))
    names = [n.name for n in nodes]

    def run(x: Any) -> dict[str, Any]:
        seen: dict[int, list[Any]] = {id(m): [] for m in mods}
        hooks = [m.register_forward_pre_hook(lambda mod, inp: seen[id(mod)].append(inp[0])) for m in mods]
        try:
            model(x)
        finally:
            for h in hooks:
                h.remove()
        out: dict[str, Any] = {}
        for m, name in zip(mods, names, strict=True):
            calls = seen[id(m)]
            if len(calls) != 1:
                raise SltAnnError(f"ANN layer for '{name}' ran {len(calls)} times in one forward pass; expected once")
            out[name] = calls[0]
        return out

    return run, layers


# ------------------------------------------------------------------------------ inputs
def ann_input(ticket: Ticket, x: np.ndarray, given: np.ndarray | None, samples: int) -> np.ndarray:
    """What the ANN sees (see the module docstring), ``(N, *input)``."""
    shape = tuple(ticket.input_shape)
    if given is not None:
        arr = np.asarray(given)
        if arr.shape != (samples, *shape):
            raise SltAnnError(f"ANN input has shape {arr.shape}, expected {(samples, *shape)} (one sample per input of "
                              "the ticket)")
    elif ticket.encoding.kind == "spikes":
        arr = np.asarray(x).sum(axis=0)
    else:
        arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool) or np.iscomplexobj(arr):
        raise SltAnnError(f"ANN input dtype {arr.dtype} is not real numbers")
    return arr


# ------------------------------------------------------------------------------ counting
def _count(ticket: Ticket, run: Callable[[Any], dict[str, Any]], layers: list[AnnLayer], x: np.ndarray,
           batch_size: int | None, progress: Progress | None, dtype: Any) -> RunStats:
    torch = _torch()
    N = len(x)
    masks = {a.name: a.weight != 0 for a in layers}
    builder = StatsBuilder(ticket, N, timesteps=1, masks=masks)
    nodes = {n.name: n for n in ticket.synapse_layers()}
    size = batch_size or max(64, batch_size_for(ticket))
    with torch.no_grad():
        for a in range(0, N, size):
            chunk = np.asarray(x[a:a + size])
            if not np.all(np.isfinite(chunk)):
                raise SltAnnError("ANN input contains NaN or inf values")
            inputs = run(torch.from_numpy(np.array(chunk)).to(dtype))  # a writable copy
            for name, t in inputs.items():
                arr = t.detach().cpu().numpy()
                eff, dense, binary, nonzero = count_inputs(nodes[name], masks[name], arr)
                builder.add_synapse(name, a, eff[None], dense[None], binary[None], nonzero[None])
            if progress is not None:
                progress(min(a + size, N), N)
    return builder.build()


def hidden_sparsity(ticket: Ticket, stats: RunStats) -> float:
    """Fraction of zero input values of the layers after the first (ReLU outputs), over the run."""
    first = first_layers(ticket)
    hidden = [s for s in stats.synapses if s.name not in first]
    values = sum(s.input_size for s in hidden) * stats.samples
    if values == 0:
        return 0.0
    return 1.0 - sum(int(s.nonzero_t.sum()) for s in hidden) / values


def measure_ann(ticket: Ticket, ann: Any, x: np.ndarray, *, given_input: np.ndarray | None = None,
                batch_size: int | None = None, progress: Progress | None = None) -> AnnCounts:
    """Run a trained ReLU ANN (``nn.Module``, or a weights file) on the ticket's inputs and count it."""
    check_architecture(ticket)
    HANDLERS.check(ticket.nodes)  # token/attention kinds: refused by name (the estimate counts them)
    torch = _torch()
    samples = len(x) if ticket.encoding.kind != "spikes" else np.shape(x)[1]
    xa = ann_input(ticket, x, given_input, samples)
    metadata: dict[str, str] = {}
    if isinstance(ann, (str, os.PathLike)):
        tensors, metadata = load_ann_file(ann)
        layers = match_layers(ticket, tensors, str(ann))
        run, dtype, source = graph_forward(ticket, layers), torch.float32, str(ann)
    elif isinstance(ann, torch.nn.Module):
        run, layers = module_forward(ticket, ann)
        params = list(ann.parameters())
        dtype = params[0].dtype if params else torch.float32
        source = f"nn.Module {type(ann).__name__}"
        ann.eval()
    elif isinstance(ann, Mapping):
        tensors = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in ann.items()}
        layers = match_layers(ticket, tensors, "ANN state dict")
        run, dtype, source = graph_forward(ticket, layers), torch.float32, "state dict"
    else:
        raise SltAnnError(f"ann must be an nn.Module, a state dict or a .safetensors/.pt path, got "
                          f"{type(ann).__name__}")
    stats = _count(ticket, run, layers, xa, batch_size, progress, dtype)
    s = hidden_sparsity(ticket, stats)
    return AnnCounts(True, source, stats, s, "measured (the ANN's run)", {}, metadata)


def estimate_ann(ticket: Ticket, x: np.ndarray, sparsity: float = ASSUMED_SPARSITY, *,
                 given_input: np.ndarray | None = None, batch_size: int | None = None,
                 source: str = SPARSITY_SOURCE) -> AnnCounts:
    """The ANN's effective ops without an ANN: first layers measured on the analog input, the rest
    ``(1 − sparsity) · Dense`` (see the module docstring)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= sparsity <= 1:
        raise SltAnnError(f"assumed ANN activation sparsity must be a number in [0, 1], got {sparsity!r}")
    from ..reference import simulate
    from .counting import count_run

    samples = len(x) if ticket.encoding.kind != "spikes" else np.shape(x)[1]
    xa = ann_input(ticket, x, given_input, samples)
    one_pass = Ticket(ticket.nodes, ticket.edges, 1, Encoding(), ticket.metadata)
    builder = StatsBuilder(one_pass, samples, timesteps=1)
    first = first_layers(ticket)
    size = batch_size or batch_size_for(one_pass)
    for a in range(0, samples, size):
        counts = count_run(one_pass, simulate(one_pass, np.asarray(xa[a:a + size]), record=True))
        for c in counts.synapses:
            if c.name in first:  # the dense network's ops: every weight kept, on the measured input
                builder.add_synapse(c.name, a, c.dense_effective, c.dense_effective, c.binary, c.input_nonzero)
    stats = builder.build()
    assumed: dict[str, float] = {}
    adds: dict[str, float] = {}
    for s in stats.synapses:
        if s.name in first:
            continue
        if not s.is_op:
            assumed[s.name] = (1.0 - float(sparsity)) * s.dense_ops * s.token_factor
            continue
        density = math.prod(operand_density(ticket, e.src, float(sparsity)) for e in ticket.inputs_of(s.name))
        (adds if s.kind == "reduce" else assumed)[s.name] = density * s.dense_ops * s.token_factor
    return AnnCounts(False, "estimate", stats, float(sparsity), source, assumed, {}, adds)

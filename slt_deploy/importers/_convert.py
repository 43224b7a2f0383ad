"""The torch.fx converter behind :func:`slt_deploy.importers.torch.import_module`.

Traces one time step of a module (neurons, synapse layers, pools and BatchNorm kept as leaf
calls) and maps each traced node to IR nodes: synapse layers with their masks (prune masks,
explicit masks or the nonzero pattern) and optional binarisation, BatchNorm folded into the
synapse layer before it, snnTorch / SpikingJelly neurons through their own importers, adds,
flattens and pools. See docs/importers.md for the equations and everything refused.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import SltImportError, SltUnsupportedError, SltValidationError
from ..ir.graph import Edge, Encoding, Ticket
from ..ir.nodes import Add, AvgPool2d, Conv2d, Flatten, Input, Linear, MaxPool2d, Node, Output, Shape
from ..ir.weights import BinaryWeights, FloatWeights, Weights
from ..ir.weights import binarize as binarize_weights
from . import _sj_recurrent as sj_recurrent
from . import snntorch as snn_import
from . import spikingjelly as sj_import
from ._tokens import _PASS, TokenOps, is_token_graph, token_rank
from ._trace import _ADDS, _NAME_BAD, _NORMS, _PASSTHROUGH, _POOLS, _SYNAPSES, _as_numpy, _declares_neuron, _f32
from ._trace import bn_affine as bn_affine


# ================================================================== converter
@dataclass
class _Options:
    binarize: bool | frozenset[str]  # every layer, or these module paths only
    fold_bn: bool
    masks: dict[str, Any]
    alpha: dict[str, Any]
    allow_reassociation: bool


@dataclass
class _Synapse:
    """A Linear/Conv2d before finalisation (BatchNorm may still fold into it)."""

    name: str
    path: str
    values: np.ndarray
    mask: np.ndarray
    bias: np.ndarray | None
    conv: dict[str, Any] | None
    fx_node: fx.Node | None
    scale: np.ndarray | None = None  # folded BatchNorm, float64
    shift: np.ndarray | None = None
    folded: str = ""


class _Pair:
    """An snnTorch neuron's ``(spk, mem)`` output."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path


class _Membrane:
    """An snnTorch neuron's membrane output (not importable)."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path


_Value = Any  # str (an IR node name), _Pair, _Membrane


class _Converter(TokenOps):
    def __init__(self, root: nn.Module, options: _Options) -> None:
        self.root = root
        self.opt = options
        self.modules = dict(root.named_modules())
        self.nodes: list[Node | _Synapse] = []
        self.edges: list[Edge] = []
        self.shapes: dict[str, Shape] = {}
        self.names: set[str] = {"input", "output"}
        self.values: dict[fx.Node, _Value] = {}
        self.synapses: dict[str, _Synapse] = {}
        self.neurons_called: set[str] = set()
        self.used_masks: set[str] = set()
        self.used_alpha: set[str] = set()
        self.frameworks: set[str] = set()
        self.notes: list[str] = []
        self.foldable: dict[str, Any] = {}  # token synapse outputs BatchNorm1d may fold into (_tokens)
        self.token_graph = False

    # ------------------------------------------------------------- driver
    def run(self, graph: fx.Graph, shape: Shape, timesteps: int, encoding: Encoding) -> Ticket:
        placeholders = [n for n in graph.nodes if n.op == "placeholder"]
        if not placeholders:
            raise SltImportError("the module's forward takes no input")
        for extra in placeholders[1:]:
            if extra.users:
                raise SltUnsupportedError(
                    f"forward argument '{extra.target}' is used; the ticket has one input (pass state through modules)"
                )
        self.token_graph = is_token_graph(graph)
        self._emit(Input("input", shape=shape), [])
        self.values[placeholders[0]] = "input"
        out: str | None = None
        for node in graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output":
                out = self._output(node)
            elif not node.users and node.op == "call_function" and node.target is operator.getitem:
                continue  # an unused (spk, mem)[1]
            else:
                self.values[node] = self._convert(node)
        assert out is not None
        self._emit(Output("output"), [out])
        return self._ticket(timesteps, encoding)

    def _ticket(self, timesteps: int, encoding: Encoding) -> Ticket:
        nodes = [self._finalise(n) if isinstance(n, _Synapse) else n for n in self.nodes]
        self._unused_options()
        meta = {"source": "torch", "frameworks": ",".join(sorted(self.frameworks)) or "torch",
                "binarized": (",".join(sorted(self.opt.binarize)) if isinstance(self.opt.binarize, frozenset)
                              else str(bool(self.opt.binarize)).lower())}
        folded = [f"{s.folded}->{s.name}" for s in self.synapses.values() if s.folded]
        if folded:
            meta["folded_batchnorm"] = ",".join(folded)
        if self.notes:
            meta["approximations"] = "; ".join(self.notes)
        try:
            return Ticket(tuple(nodes), tuple(self.edges), timesteps, encoding, meta)
        except SltValidationError as exc:
            raise SltImportError(f"the imported graph is invalid: {exc}") from None

    # ------------------------------------------------------------- graph building
    def _name(self, hint: str) -> str:
        base = _NAME_BAD.sub("_", hint or "node")[:120]
        if not re.match(r"^[A-Za-z0-9_]", base):
            base = "n" + base
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def _emit(self, node: Node | _Synapse, inputs: list[str], recurrent: tuple[str, ...] = (),
              in_shapes: list[Shape] | None = None) -> str:
        name = node.name
        shapes = in_shapes if in_shapes is not None else [self.shapes[i] for i in inputs]
        probe = self._finalise(node, shape_only=True) if isinstance(node, _Synapse) else node
        try:
            self.shapes[name] = probe.shape if isinstance(probe, Input) else probe.out_shape(shapes)
        except SltValidationError as exc:
            raise SltImportError(f"{exc}") from None
        self.nodes.append(node)
        for i in inputs:
            self.edges.append(Edge(i, name, recurrent=i in recurrent))
        return name

    def _tensor(self, value: _Value, user: fx.Node) -> str:
        where = f"module '{user.target}'" if user.op == "call_module" else f"'{user.name}'"
        if isinstance(value, _Membrane):
            raise SltUnsupportedError(
                f"{where} uses the membrane potential of snnTorch neuron '{value.path}'; only spikes can be imported"
            )
        if isinstance(value, _Pair):
            raise SltUnsupportedError(
                f"{where} takes the (spk, mem) tuple of snnTorch neuron '{value.path}'; "
                "use init_hidden=True in nn.Sequential, or index the spikes [0]"
            )
        if not isinstance(value, str):
            raise SltUnsupportedError(f"{where} takes a constant or non-tensor argument {value!r}")
        return value

    def _arg(self, node: fx.Node, i: int = 0) -> str:
        arg = node.args[i]
        if not isinstance(arg, fx.Node):
            raise SltUnsupportedError(f"'{node.name}' takes a constant argument {arg!r}; only tensors from the graph")
        return self._tensor(self.values[arg], node)

    # ------------------------------------------------------------- node kinds
    def _convert(self, node: fx.Node) -> _Value:
        if node.op == "call_module":
            return self._module(node)
        if node.op == "call_function":
            return self._function(node, node.target)
        if node.op == "call_method":
            return self._method(node)
        if node.op == "get_attr":
            if self.token_attr(node) is not _PASS:
                return self.token_attr(node)
            owner = str(node.target).rpartition(".")[0]
            if snn_import.owns(self.modules.get(owner)) or sj_import.owns(self.modules.get(owner)):
                raise SltUnsupportedError(
                    f"forward reads the neuron state '{node.target}' directly: this looks like a model that runs its "
                    "own time loop (init_leaky() and mem passed in, as in the snnTorch tutorials); slt imports one "
                    "time step: write forward() for one step with the neurons built with init_hidden=True")
            raise SltUnsupportedError(f"forward reads tensor '{node.target}' directly; only module calls are imported")
        raise SltUnsupportedError(f"unsupported graph operation {node.op} at '{node.name}'")

    def _output(self, node: fx.Node) -> str:
        result = node.args[0]
        if isinstance(result, (tuple, list)):
            first = result[0] if result else None
            rest = [self.values.get(r) for r in result[1:] if isinstance(r, fx.Node)]
            if first is None or not isinstance(first, fx.Node) or len(rest) != len(result) - 1 or not all(
                    isinstance(r, _Membrane) for r in rest):
                raise SltUnsupportedError("forward returns several values; return the output spikes (or (spk, mem))")
            result = first
        if not isinstance(result, fx.Node):
            raise SltUnsupportedError(f"forward returns {result!r}, not a tensor")
        value = self.values[result]
        if isinstance(value, _Pair):
            return value.name  # (spk, mem) of the last neuron: the spikes are the output
        return self._tensor(value, node)

    def _module(self, node: fx.Node) -> _Value:
        path = str(node.target)
        m = self.modules[path]
        if node.kwargs or len(node.args) != 1:
            extra = "state arguments (mem=...)" if snn_import.owns(m) or sj_import.owns(m) else "several arguments"
            raise SltUnsupportedError(f"module '{path}' ({type(m).__name__}) is called with {extra}; "
                                      "only single-input calls are imported")
        if isinstance(m, _PASSTHROUGH):
            return self._arg(node)
        if isinstance(m, nn.Linear) and self.token_graph and token_rank(self.shapes[self._arg(node)]):
            return self._token_linear(m, path, self._arg(node), node)
        if isinstance(m, _SYNAPSES):
            return self._synapse(m, path, self._arg(node), node)
        if isinstance(m, _NORMS):
            folded = self._token_batchnorm(m, path, self._arg(node))
            return folded if folded is not None else self._batchnorm(m, path, node)
        if isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise SltUnsupportedError(f"Flatten '{path}' must flatten dims 1..-1 (per sample), has "
                                          f"start_dim={m.start_dim}, end_dim={m.end_dim}")
            return self._emit(Flatten(self._name(path)), [self._arg(node)])
        if isinstance(m, _POOLS):
            return self._pool(m, path, self._arg(node))
        if snn_import.owns(m):
            return self._snntorch(m, path, self._arg(node))
        if sj_import.owns(m) and sj_import.is_neuron(m):
            return self._spikingjelly(m, path, self._arg(node))
        if sj_recurrent.is_recurrent_container(m):
            return sj_recurrent.linear_recurrent(self, m, path, self._arg(node), _Synapse)
        if _declares_neuron(m):
            return self._declared_neuron(m, path, self._arg(node))
        raise SltUnsupportedError(f"module '{path}' of type {type(m).__module__}.{type(m).__name__} is not supported")

    def _function(self, node: fx.Node, fn: Any) -> _Value:
        token = self._token_function(node, fn)
        if token is not _PASS:
            return token
        if fn is operator.getitem:
            return self._getitem(node)
        if fn in _ADDS:
            if fn is torch.add and node.kwargs.get("alpha", 1) != 1:
                raise SltUnsupportedError(f"'{node.name}': torch.add with alpha != 1 is not supported")
            if len(node.args) != 2:
                raise SltUnsupportedError(f"'{node.name}': add needs exactly two tensor operands")
            a, b = self._arg(node, 0), self._arg(node, 1)
            return self._emit(Add(self._name(node.name)), [a, b])
        if fn is torch.flatten:
            return self._flatten(node, node.args[1:], node.kwargs)
        name = getattr(fn, "__name__", repr(fn))
        raise SltUnsupportedError(
            f"function {name} at '{node.name}' is not supported; use the modules listed in docs/importers.md"
        )

    def _method(self, node: fx.Node) -> _Value:
        token = self._token_method(node)
        if token is not _PASS:
            return token
        if node.target == "flatten":
            return self._flatten(node, node.args[1:], node.kwargs)
        if node.target == "add" and not node.kwargs:
            return self._function(node, operator.add)
        raise SltUnsupportedError(f"tensor method .{node.target}() at '{node.name}' is not supported "
                                  "(use nn.Flatten or torch.flatten(x, 1) to flatten)")

    def _flatten(self, node: fx.Node, args: tuple, kwargs: dict) -> str:
        start = args[0] if args else kwargs.get("start_dim", 0)
        end = args[1] if len(args) > 1 else kwargs.get("end_dim", -1)
        if start != 1 or end != -1:
            raise SltUnsupportedError(f"'{node.name}': only flatten(x, 1) (per sample) is supported")
        return self._emit(Flatten(self._name(node.name)), [self._arg(node)])

    def _getitem(self, node: fx.Node) -> _Value:
        src = node.args[0]
        value = self.values.get(src) if isinstance(src, fx.Node) else None
        if not isinstance(value, _Pair):
            raise SltUnsupportedError(f"indexing at '{node.name}' is only supported on snnTorch (spk, mem) outputs")
        index = node.args[1]
        if index == 0:
            return value.name
        if index == 1:
            return _Membrane(value.name, value.path)
        raise SltUnsupportedError(f"'{node.name}': snnTorch neuron '{value.path}' returns (spk, mem); index {index!r}")

    # ------------------------------------------------------------- layers
    def _synapse(self, m: nn.Module, path: str, src: str, fx_node: fx.Node | None, as_conv1x1: bool = False) -> str:
        values, mask = self._weights(m, path)
        bias = _f32(m.bias, f"bias of '{path}'") if m.bias is not None else None
        conv = None
        if isinstance(m, nn.Conv2d):
            conv = self._conv_params(m, path)
        if as_conv1x1:  # a Linear applied per token: the same sums as a 1x1 convolution (_tokens)
            values, mask = values.reshape(*values.shape, 1, 1), mask.reshape(*mask.shape, 1, 1)
            conv = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)
        syn = _Synapse(self._name(path), path, values, mask, bias, conv, fx_node)
        self.synapses[syn.name] = syn
        return self._emit(syn, [src])

    def _conv_params(self, m: nn.Conv2d, path: str) -> dict[str, Any]:
        if m.padding_mode != "zeros":
            raise SltUnsupportedError(f"Conv2d '{path}': padding_mode={m.padding_mode!r}; only 'zeros' is supported")
        padding = m.padding
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:  # 'same': total padding dilation*(k-1) per axis, torch puts the odd one on the right
                totals = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
                if any(t % 2 for t in totals):
                    raise SltUnsupportedError(
                        f"Conv2d '{path}': padding='same' with kernel {m.kernel_size} and dilation {m.dilation} "
                        "pads asymmetrically; the IR pads symmetrically"
                    )
                padding = tuple(t // 2 for t in totals)
        return dict(stride=tuple(m.stride), padding=tuple(padding), dilation=tuple(m.dilation), groups=int(m.groups))

    def _weights(self, m: nn.Module, path: str) -> tuple[np.ndarray, np.ndarray]:
        where = f"weight of '{path}'"
        orig, pmask = getattr(m, "weight_orig", None), getattr(m, "weight_mask", None)
        if isinstance(orig, torch.Tensor) and isinstance(pmask, torch.Tensor):
            values = _f32(orig, where)
            mask = _as_numpy(pmask, where) != 0
        else:
            values = _f32(m.weight, where)
            mask = values != 0
        key = next((k for k in (f"{path}.weight", path) if k in self.opt.masks), None)
        if key is not None:
            self.used_masks.add(key)
            given = _as_numpy(self.opt.masks[key], f"mask {key!r}")
            if given.shape != values.shape:
                raise SltImportError(f"mask {key!r} has shape {given.shape}, the weight of '{path}' {values.shape}")
            mask = given != 0
        return values, mask.astype(bool)

    def _alpha(self, syn: _Synapse) -> np.ndarray | None:
        for key in (f"{syn.path}.weight", syn.path, ""):
            if key in self.opt.alpha:
                self.used_alpha.add(key)
                a = np.asarray(_as_numpy(self.opt.alpha[key], f"alpha {key!r}"), dtype=np.float64)
                n = syn.values.shape[0]
                if a.ndim == 0:
                    a = np.full(n, float(a))
                if a.shape != (n,) or not np.all(np.isfinite(a)):
                    raise SltImportError(f"alpha for '{syn.path}' must be finite, a scalar or {n} values")
                return a
        return None

    def _finalise(self, syn: _Synapse, shape_only: bool = False) -> Linear | Conv2d:
        bias = syn.bias
        if shape_only:
            weights: Weights = FloatWeights(syn.mask, syn.values)
        elif self.opt.binarize is True or (isinstance(self.opt.binarize, frozenset) and syn.path in self.opt.binarize):
            weights = binarize_weights(syn.values, syn.mask, self._alpha(syn))
            if syn.scale is not None:
                s = syn.scale.reshape((-1,) + (1,) * (syn.mask.ndim - 1))
                weights = BinaryWeights(mask=weights.mask, negative=weights.negative ^ (s < 0),
                                        alpha=(weights.alpha.astype(np.float64) * np.abs(syn.scale)).astype(np.float32))
        else:
            values = syn.values
            if syn.scale is not None:
                s = syn.scale.reshape((-1,) + (1,) * (syn.mask.ndim - 1))
                values = (values.astype(np.float64) * s).astype(np.float32)
            weights = FloatWeights(syn.mask, values)
        if syn.scale is not None and not shape_only:
            b = np.zeros(syn.values.shape[0]) if bias is None else bias.astype(np.float64)
            bias = (b * syn.scale + syn.shift).astype(np.float32)
        try:
            if syn.conv is None:
                return Linear(syn.name, weights, bias)
            return Conv2d(syn.name, weights, bias, **syn.conv)
        except SltValidationError as exc:
            raise SltImportError(f"module '{syn.path}': {exc}") from None

    def _batchnorm(self, m: nn.Module, path: str, node: fx.Node) -> str:
        src_node = node.args[0]
        src = self._arg(node)
        syn = self.synapses.get(src)
        kind = "Linear" if isinstance(m, nn.BatchNorm1d) else "Conv2d"
        if not self.opt.fold_bn:
            raise SltUnsupportedError(f"BatchNorm '{path}' can only be imported folded; pass fold_bn=True")
        ok = (syn is not None and not syn.folded and syn.fx_node is src_node and len(src_node.users) == 1
              and (syn.conv is None) == (kind == "Linear"))
        if not ok:
            raise SltUnsupportedError(f"BatchNorm '{path}' does not directly follow a {kind} used only by it; "
                                      "it cannot be folded")
        assert syn is not None
        syn.scale, syn.shift = bn_affine(m, path, syn.values.shape[0], syn.path)
        syn.folded = path
        return src

    def _pool(self, m: nn.Module, path: str, src: str) -> str:
        if m.ceil_mode:
            raise SltUnsupportedError(f"{type(m).__name__} '{path}': ceil_mode=True is not supported")
        if isinstance(m, nn.AvgPool2d):
            if not m.count_include_pad or m.divisor_override is not None:
                raise SltUnsupportedError(f"AvgPool2d '{path}': only count_include_pad=True without divisor_override")
            cls: type = AvgPool2d
        else:
            if m.return_indices or m.dilation not in (1, (1, 1)):
                raise SltUnsupportedError(f"MaxPool2d '{path}': dilation and return_indices are not supported")
            cls = MaxPool2d
        try:
            node = cls(self._name(path), kernel_size=m.kernel_size, stride=m.stride or m.kernel_size, padding=m.padding)
        except SltValidationError as exc:
            raise SltImportError(f"module '{path}': {exc}") from None
        return self._emit(node, [src])

    # ------------------------------------------------------------- neurons
    def _once(self, path: str, m: nn.Module) -> None:
        if path in self.neurons_called:
            raise SltUnsupportedError(f"neuron '{path}' ({type(m).__name__}) is called more than once; "
                                      "its state would be shared between the calls")
        self.neurons_called.add(path)

    def _spikingjelly(self, m: nn.Module, path: str, src: str) -> str:
        self._once(path, m)
        self.frameworks.add("spikingjelly")
        lif = sj_import.convert(m, self._name(path), self.shapes[src], path)
        return self._emit(lif, [src])

    def _declared_neuron(self, m: nn.Module, path: str, src: str) -> str:
        """A module that states its IR layer: ``m.slt_neuron(name, shape, path) -> LIF``."""
        from ..ir.neurons import LIF

        self._once(path, m)
        self.frameworks.add(type(m).__module__.split(".")[0])  # the package that defines the neuron
        lif = m.slt_neuron(self._name(path), self.shapes[src], path)
        if not isinstance(lif, LIF):
            raise SltImportError(f"module '{path}' ({type(m).__name__}): slt_neuron() must return an IR LIF layer")
        return self._emit(lif, [src])

    def _snntorch(self, m: nn.Module, path: str, src: str) -> _Value:
        self._once(path, m)
        self.frameworks.add("snntorch")
        name = self._name(path)
        imp = snn_import.convert(m, name, self.shapes[src], path, self.opt.allow_reassociation)
        if imp.recurrent_path is None and imp.recurrent_gain is None:
            self._emit(imp.lif, [src])
        else:
            self._recurrent(imp, path, src)
        return _Pair(name, path) if imp.returns_pair else name

    def _recurrent(self, imp: snn_import.NeuronImport, path: str, src: str) -> None:
        """RLeaky: rlif -(recurrent)-> rec synapse; rlif takes (ff, rec) and adds rec after the leak."""
        lif = imp.lif
        shape = lif.shape
        if imp.recurrent_path is not None:
            rec_m = self.modules[imp.recurrent_path]
            values, mask = self._weights(rec_m, imp.recurrent_path)
            bias = _f32(rec_m.bias, f"bias of '{imp.recurrent_path}'") if rec_m.bias is not None else None
            conv = self._conv_params(rec_m, imp.recurrent_path) if isinstance(rec_m, nn.Conv2d) else None
            rec = _Synapse(self._name(imp.recurrent_path), imp.recurrent_path, values, mask, bias, conv, None)
        else:
            rec = self._one_to_one(imp.recurrent_gain, shape, path)
        self.synapses[rec.name] = rec
        self._emit(rec, [lif.name], recurrent=(lif.name,), in_shapes=[shape])
        self._emit(lif, [src, rec.name])

    def _one_to_one(self, gain: np.ndarray | None, shape: Shape, path: str) -> _Synapse:
        assert gain is not None
        name = self._name(f"{path}.recurrent" if path else "recurrent")
        if len(shape) == 1:
            values = np.diag(gain).astype(np.float32)
            return _Synapse(name, f"{path}.recurrent", values, values != 0, None, None, None)
        if len(shape) == 3 and np.all(gain == gain[:, :1, :1]):
            values = gain[:, 0, 0].reshape(-1, 1, 1, 1).astype(np.float32)
            conv = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=shape[0])
            return _Synapse(name, f"{path}.recurrent", values, values != 0, None, conv, None)
        raise SltUnsupportedError(f"RLeaky '{path}': one-to-one V must be per neuron of a 1-D layer or per channel")

    def _unused_options(self) -> None:
        unused = sorted(set(self.opt.masks) - self.used_masks)
        if unused:
            raise SltImportError(f"masks name {unused[0]!r}, which is no Linear/Conv2d weight of the module")
        if self.opt.alpha and not self.opt.binarize:
            raise SltImportError("alpha is only used with binarize=True")
        unused = sorted(set(self.opt.alpha) - self.used_alpha - {""})
        if unused:
            raise SltImportError(f"alpha names {unused[0]!r}, which is no Linear/Conv2d weight of the module")

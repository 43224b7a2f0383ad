"""Token and attention operations of a traced module (a mixin of the torch.fx converter).

What a spiking transformer written the usual way calls, mapped onto the IR's token kinds
(:mod:`slt_deploy.ir.tokens`); tensors carry a batch axis first, the IR's axes are per sample:

- ``nn.Linear`` on tokens ``(..., D)`` (in a step that uses token operations,
  :func:`is_token_graph`): the per-token product ``y = W x + b`` as a 1×1 Conv2d
  between views, ``Transpose -> Reshape (D, M, 1) -> Conv2d 1x1 -> Reshape -> Transpose``
  (the same exact synaptic sum as a Linear, M = the other axes). ``BatchNorm1d`` over the
  channels of such a layer (``bn(y.transpose(-1, -2)).transpose(-1, -2)``, or directly on
  ``(O, L)``) folds into it like BatchNorm after a Linear.
- ``x @ y``, ``torch.matmul``/``bmm``, ``.matmul`` -> MatMul; a following multiplication by a
  power-of-two constant (Spikformer's ``* 0.125``) becomes its scale; ``a * b`` of two tensors
  -> Mul.
- ``transpose``/``permute``/``reshape``/``view``/``flatten(start, end)``/``contiguous`` ->
  views (never of the batch axis); ``mean``/``sum`` over one axis -> Reduce.
- ``x.index_select(dim, self.kept)`` with an integer buffer of strictly increasing indices -> Select
  (a token / patch mask).
- ``x.shape`` / ``x.size()`` and integer arithmetic on its entries are evaluated while tracing
  (entry 0, the batch, may only be passed on as the batch size of a reshape).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import SltUnsupportedError
from ..ir.tokens import MatMul, Mul, Reduce, Reshape, Select, Transpose
from ._trace import bn_affine

_MATMULS = (operator.matmul, torch.matmul, torch.bmm)
_MULS = (operator.mul, torch.mul)
_INT_OPS = {operator.floordiv: operator.floordiv, operator.mul: operator.mul, operator.add: operator.add,
            operator.sub: operator.sub}
_VIEW_METHODS = {"transpose", "permute", "reshape", "view", "contiguous", "flatten"}
_PASS = object()  # "not a token operation": the converter goes on with its own rules


_TOKEN_METHODS = {"transpose", "permute", "reshape", "view", "matmul", "mean", "sum"}
_TOKEN_FUNCTIONS = (*_MATMULS, torch.transpose, torch.permute, torch.reshape, torch.mean, torch.sum)


def is_token_graph(graph: fx.Graph) -> bool:
    """True when the traced step uses token operations (matmul, transpose, permute, reshape, view, mean, sum).

    Only then is a Linear on a multi-axis input read as applied per token: in a plain stack of
    layers such an input is far more often a whole spike train given as the example of one step
    (which the importer refuses with a hint).
    """
    return any((n.op == "call_method" and n.target in _TOKEN_METHODS)
               or (n.op == "call_function" and n.target in _TOKEN_FUNCTIONS) for n in graph.nodes)


class Batch:
    """The batch size read from ``x.shape[0]`` (usable only as a reshape's first size)."""


class ShapeOf:
    """``x.shape`` while tracing: the batch marker, then the known per-sample sizes."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.sizes: tuple[Any, ...] = (Batch(), *shape)


@dataclasses.dataclass
class _Foldable:
    """A token synapse's output seen through views: its channel axis and whether only BatchNorm uses it."""

    syn: Any
    axis: int
    sole: bool


class TokenOps:
    """Mixin of :class:`slt_deploy.importers._convert._Converter` (uses its _emit, _arg, _name, shapes, nodes)."""

    foldable: dict[str, _Foldable]

    # ------------------------------------------------------------- dispatch
    def _token_function(self: Any, node: fx.Node, fn: Any) -> Any:
        if fn is getattr:
            return self._shape_of(node, node.args[0], node.args[1])
        if fn is operator.getitem and isinstance(self._value(node.args[0]), ShapeOf):
            return self._value(node.args[0]).sizes[int(node.args[1])]
        if fn in _INT_OPS and any(isinstance(self._value(a), int) for a in node.args) and all(
                isinstance(self._value(a), (int, float)) for a in node.args):
            return _INT_OPS[fn](*(self._value(a) for a in node.args))
        if fn in _MATMULS:
            return self._matmul(node, node.args[0], node.args[1])
        if fn in _MULS:
            return self._mul(node, node.args[0], node.args[1])
        if fn is torch.transpose:
            return self._transpose(node, node.args[0], node.args[1:])
        if fn is torch.permute:
            return self._permute(node, node.args[0], node.args[1:])
        if fn is torch.reshape:
            return self._reshape(node, node.args[0], node.args[1:])
        if fn in (torch.mean, torch.sum):
            return self._reduce(node, node.args[0], fn.__name__, node.args[1:], node.kwargs)
        if fn is torch.index_select:
            return self._select(node, node.args[0], node.args[1], node.args[2])
        return _PASS

    def _token_method(self: Any, node: fx.Node) -> Any:
        name, x, args = node.target, node.args[0], node.args[1:]
        if name in ("size", "shape"):
            return self._shape_of(node, x, "shape", args[0] if args else None)
        if name == "matmul":
            return self._matmul(node, x, args[0])
        if name == "mul":
            return self._mul(node, x, args[0])
        if name in ("mean", "sum"):
            return self._reduce(node, x, name, args, node.kwargs)
        if name == "index_select":
            return self._select(node, x, args[0], args[1])
        if name not in _VIEW_METHODS:
            return _PASS
        if name == "contiguous":
            return self._arg(node)
        if name == "transpose":
            return self._transpose(node, x, args)
        if name == "permute":
            return self._permute(node, x, args)
        if name == "flatten":
            return self._flatten_dims(node, x, args, node.kwargs)
        return self._reshape(node, x, args)

    # ------------------------------------------------------------- values
    def _value(self: Any, a: Any) -> Any:
        return self.values.get(a) if isinstance(a, fx.Node) else a

    def _shape_of(self: Any, node: fx.Node, x: Any, attr: Any, index: Any = None) -> Any:
        if attr != "shape":
            raise SltUnsupportedError(f"'{node.name}': attribute {attr!r} of a tensor is not supported")
        shape = ShapeOf(self.shapes[self._tensor(self._value(x), node)])
        return shape if index is None else shape.sizes[int(self._value(index))]

    def _dim(self: Any, node: fx.Node, d: Any, rank: int) -> int:
        """A torch dim of a tensor with ``rank`` per-sample axes -> the per-sample axis (never the batch)."""
        d = self._value(d)
        if not isinstance(d, int) or not -rank - 1 <= d <= rank:
            raise SltUnsupportedError(f"'{node.name}': dim {d!r} is not a constant axis of a rank-{rank + 1} tensor")
        d = d % (rank + 1)
        if d == 0:
            raise SltUnsupportedError(f"'{node.name}': operations across the batch axis (dim 0) are not supported")
        return d - 1

    def _view(self: Any, node: fx.Node, ir: Any, src: str) -> str:
        out = self._emit(ir, [src])
        fold = self.foldable.get(src)
        if fold is not None and isinstance(ir, Transpose):
            sole = fold.sole and len(node.users) == 1
            self.foldable[out] = _Foldable(fold.syn, ir.perm.index(fold.axis), sole)
        return out

    # ------------------------------------------------------------- views
    def _transpose(self: Any, node: fx.Node, x: Any, dims: tuple) -> str:
        src = self._tensor(self._value(x), node)
        rank = len(self.shapes[src])
        if len(dims) != 2:
            raise SltUnsupportedError(f"'{node.name}': transpose needs two dims")
        a, b = (self._dim(node, d, rank) for d in dims)
        perm = list(range(rank))
        perm[a], perm[b] = perm[b], perm[a]
        if a == b:
            return src
        return self._view(node, Transpose(self._name(node.name), perm=tuple(perm)), src)

    def _permute(self: Any, node: fx.Node, x: Any, dims: tuple) -> str:
        src = self._tensor(self._value(x), node)
        rank = len(self.shapes[src])
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else tuple(dims)
        if len(dims) != rank + 1 or self._value(dims[0]) not in (0, -rank - 1):
            raise SltUnsupportedError(f"'{node.name}': permute must keep the batch axis first")
        perm = tuple(self._dim(node, d, rank) for d in dims[1:])
        return self._view(node, Transpose(self._name(node.name), perm=perm), src)

    def _reshape(self: Any, node: fx.Node, x: Any, sizes: tuple) -> str:
        src = self._tensor(self._value(x), node)
        sizes = tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else tuple(sizes)
        vals = [self._value(s) for s in sizes]
        if not vals or not (isinstance(vals[0], Batch) or vals[0] == -1):
            raise SltUnsupportedError(f"'{node.name}': reshape must keep the batch axis first (x.shape[0] or -1)")
        rest = vals[1:]
        if not all(isinstance(v, int) and (v > 0 or v == -1) for v in rest) or rest.count(-1) > (vals[0] != -1):
            raise SltUnsupportedError(f"'{node.name}': reshape sizes must be constants (at most one -1), got {vals}")
        total = math.prod(self.shapes[src])
        if -1 in rest:
            known = math.prod(v for v in rest if v != -1)
            rest = [total // known if v == -1 else v for v in rest]
        return self._view(node, Reshape(self._name(node.name), shape=tuple(rest) or (1,)), src)

    def _flatten_dims(self: Any, node: fx.Node, x: Any, args: tuple, kwargs: dict) -> Any:
        start = self._value(args[0]) if args else kwargs.get("start_dim", 0)
        end = self._value(args[1]) if len(args) > 1 else kwargs.get("end_dim", -1)
        if start == 1 and end == -1:
            return _PASS  # the per-sample Flatten
        src = self._tensor(self._value(x), node)
        shape = self.shapes[src]
        a, b = self._dim(node, start, len(shape)), self._dim(node, end, len(shape))
        new = shape[:a] + (math.prod(shape[a:b + 1]),) + shape[b + 1:]
        return self._view(node, Reshape(self._name(node.name), shape=new), src)

    def token_attr(self: Any, node: fx.Node) -> Any:
        """A 1-D integer buffer read by ``forward`` (token indices for ``index_select``), else :data:`_PASS`."""
        try:
            value = self.root.get_buffer(str(node.target))
        except (AttributeError, TypeError):
            return _PASS
        if value.ndim != 1 or value.dtype not in (torch.int64, torch.int32):
            return _PASS
        return value.detach().cpu().numpy().astype(np.int64)

    def _select(self: Any, node: fx.Node, x: Any, dim: Any, index: Any) -> str:
        """``x.index_select(dim, kept)`` with constant, strictly increasing ``kept``: a token mask (Select)."""
        src = self._tensor(self._value(x), node)
        idx = self._value(index)
        if not isinstance(idx, np.ndarray):
            raise SltUnsupportedError(f"'{node.name}': index_select needs a constant index buffer of the module")
        axis = self._dim(node, dim, len(self.shapes[src]))
        return self._emit(Select(self._name(node.name), axis=axis, indices=tuple(int(i) for i in idx)), [src])

    # ------------------------------------------------------------- arithmetic
    def _matmul(self: Any, node: fx.Node, a: Any, b: Any) -> str:
        ins = [self._tensor(self._value(v), node) for v in (a, b)]
        return self._emit(MatMul(self._name(node.name)), ins)

    def _mul(self: Any, node: fx.Node, a: Any, b: Any) -> str:
        va, vb = self._value(a), self._value(b)
        if isinstance(va, str) and isinstance(vb, str):
            return self._emit(Mul(self._name(node.name)), [va, vb])
        tensor, const, fx_src = (va, vb, a) if isinstance(va, str) else (vb, va, b)
        i = next((k for k, n in enumerate(self.nodes) if getattr(n, "name", None) == tensor), None)
        prior = self.nodes[i] if i is not None else None
        if not isinstance(const, (int, float)) or not isinstance(prior, MatMul) or len(fx_src.users) != 1:
            raise SltUnsupportedError(f"'{node.name}': multiplying by a constant is only supported right after a "
                                      "matmul used only there (the attention scale)")
        m, e = math.frexp(float(const) * prior.scale) if const > 0 else (0.0, 0)
        if m != 0.5:
            raise SltUnsupportedError(f"'{node.name}': the attention scale {const!r} must be a power of two "
                                      "(exact in float32), e.g. 0.125")
        self.nodes[i] = dataclasses.replace(prior, scale=float(const) * prior.scale)
        return tensor

    def _reduce(self: Any, node: fx.Node, x: Any, op: str, args: tuple, kwargs: dict) -> str:
        src = self._tensor(self._value(x), node)
        dim = args[0] if args else kwargs.get("dim")
        keep = self._value(args[1]) if len(args) > 1 else kwargs.get("keepdim", False)
        if dim is None or isinstance(dim, (tuple, list)) or "dtype" in kwargs:
            raise SltUnsupportedError(f"'{node.name}': {op} must reduce one given dim (no dtype)")
        axis = self._dim(node, dim, len(self.shapes[src]))
        return self._emit(Reduce(self._name(node.name), axis=axis, op=op, keepdims=bool(keep)), [src])

    # ------------------------------------------------------------- token synapses
    def _token_linear(self: Any, m: nn.Linear, path: str, src: str, fx_node: fx.Node) -> str:
        """nn.Linear on (..., D): Transpose -> Reshape (D, M, 1) -> Conv2d 1x1 -> Reshape -> Transpose."""
        shape = self.shapes[src]
        rank, others = len(shape), shape[:-1]
        d, o, mm = shape[-1], m.out_features, math.prod(shape[:-1])
        front = self._emit(Transpose(self._name(path + ".tokens_in"), perm=(rank - 1, *range(rank - 1))), [src])
        flat = self._emit(Reshape(self._name(path + ".as_conv"), shape=(d, mm, 1)), [front])
        syn_name = self._synapse(m, path, flat, fx_node, as_conv1x1=True)
        syn = self.synapses[syn_name]
        back = self._emit(Reshape(self._name(path + ".channels"), shape=(o, *others)), [syn_name])
        out = self._emit(Transpose(self._name(path + ".tokens_out"), perm=(*range(1, rank), 0)), [back])
        sole = len(fx_node.users) == 1
        self.foldable[back] = _Foldable(syn, 0, sole)
        self.foldable[out] = _Foldable(syn, rank - 1, sole)
        return out

    def _token_batchnorm(self: Any, m: nn.Module, path: str, src: str) -> str | None:
        """BatchNorm1d over the channels (axis 0 of a (C, L) value) of a token synapse: folded; else None."""
        fold = self.foldable.get(src)
        if fold is None or not isinstance(m, nn.BatchNorm1d) or len(self.shapes[src]) != 2:
            return None
        if fold.axis != 0 or not fold.sole or fold.syn.folded:
            raise SltUnsupportedError(f"BatchNorm '{path}' is not over the channels of '{fold.syn.path}' alone "
                                      "(a transpose of it, used only by the BatchNorm); it cannot be folded")
        fold.syn.scale, fold.syn.shift = bn_affine(m, path, fold.syn.values.shape[0], fold.syn.path)
        fold.syn.folded = path
        return src


def token_rank(shape: tuple[int, ...]) -> bool:
    """True when a Linear's input is a token array (more than one per-sample axis)."""
    return len(shape) >= 2


def select_tokens(name: str, axis: int, keep: np.ndarray) -> Select:
    """A token mask keeping the (sorted) indices ``keep`` along ``axis``."""
    return Select(name, axis=axis, indices=tuple(int(i) for i in np.sort(np.asarray(keep))))


__all__ = ["Batch", "ShapeOf", "TokenOps", "is_token_graph", "select_tokens", "token_rank"]

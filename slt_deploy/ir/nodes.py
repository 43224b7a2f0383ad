"""Graph nodes of the Ticket IR: one small frozen dataclass per primitive.

Shapes are per sample (no batch axis). Every node knows how to compute its output shape
from its input shapes and raises :class:`SltValidationError` naming itself when they do
not fit. Equations of the neuron layers live in :mod:`slt_deploy.ir.neurons`.

Synapse layers (the only nodes with weights)::

    Linear:  y[o]        = S(W, x)[o] + b[o]                  x: (in,)      W: (out, in)
    Conv2d:  y[o, i, j]  = S(W, patch(x, i, j))[o] + b[o]    x: (C, H, W)  W: (C_out, C_in/g, kH, kW)

where ``S`` is the exact synaptic sum of :mod:`slt_deploy.ir.weights`. Conv2d pads with
zeros; ``H_out = floor((H + 2·pad − dil·(k − 1) − 1) / stride) + 1``.

Pools (2-D, per channel, zero padding for Sum/Avg, −inf padding for Max)::

    SumPool2d: y = Σ window       AvgPool2d: y = (Σ window) / (kH·kW)       MaxPool2d: y = max window

Flatten maps ``(C, H, W)`` to ``(C·H·W,)`` in C order. Add sums its inputs in edge order:
``y = ((x0 + x1) + x2) + …``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SltValidationError
from .weights import FloatWeights, Weights, frozen_array

Shape = tuple[int, ...]
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def pair(v: int | tuple[int, int] | list[int], what: str, node: str, minimum: int) -> tuple[int, int]:
    """Normalise an int or a pair to a pair of ints >= ``minimum``."""
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or not all(isinstance(a, (int, np.integer)) for a in t):
        raise SltValidationError(f"node '{node}': {what} must be an int or a pair of ints, got {v!r}")
    if min(t) < minimum:
        raise SltValidationError(f"node '{node}': {what} must be >= {minimum}, got {v!r}")
    return (int(t[0]), int(t[1]))


def window_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


NODE_KINDS: dict[str, type[Node]] = {}
"""Every concrete node kind of the IR: ``kind`` string -> class, filled as classes are defined.

A class is a concrete kind when it sets its own ``kind`` class attribute. Backends dispatch
on this string through :class:`slt_deploy.dispatch.HandlerTable`, and one test walks this
table against every registered backend (tests/test_node_kinds.py).
"""


@dataclass(frozen=True, eq=False)
class Node:
    """Base class: a named graph node."""

    name: str
    kind: ClassVar[str] = "node"
    arity: ClassVar[tuple[int, int | None]] = (1, 1)  # (min, max) number of inputs

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            if cls.kind in NODE_KINDS and NODE_KINDS[cls.kind].__qualname__ != cls.__qualname__:
                raise TypeError(f"node kind {cls.kind!r} is defined twice ({NODE_KINDS[cls.kind].__name__}, "
                                f"{cls.__name__})")
            NODE_KINDS[cls.kind] = cls

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SltValidationError(
                f"invalid node name {self.name!r}: use 1-128 characters from letters, digits, '_', '.', '-'"
            )

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def _one(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) != 1:
            raise SltValidationError(f"node '{self.name}' ({self.kind}) takes exactly one input, got {len(in_shapes)}")
        return in_shapes[0]


@dataclass(frozen=True, eq=False)
class Input(Node):
    """The network input, ``shape`` per sample: features for direct/rate encoding, spikes otherwise."""

    shape: Shape = ()
    kind: ClassVar[str] = "input"
    arity: ClassVar[tuple[int, int | None]] = (0, 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        shape = tuple(int(s) for s in self.shape)
        if not shape or min(shape) < 1:
            raise SltValidationError(f"input '{self.name}' needs a non-empty shape of positive sizes, got {self.shape}")
        object.__setattr__(self, "shape", shape)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False)
class Output(Node):
    """Marks the node whose per-step output is the network output."""

    kind: ClassVar[str] = "output"

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        return self._one(in_shapes)


def _bias(bias: np.ndarray | None, n: int, node: str) -> np.ndarray | None:
    if bias is None:
        return None
    b = np.asarray(bias, dtype=np.float32).reshape(-1)
    if b.shape != (n,):
        raise SltValidationError(f"node '{node}': bias has {b.size} values, expected {n} (one per output channel)")
    if not np.all(np.isfinite(b)):
        raise SltValidationError(f"node '{node}': bias contains NaN or inf")
    return frozen_array(b, np.float32, "bias")


@dataclass(frozen=True, eq=False)
class Linear(Node):
    """Fully connected synapses, weights ``(out, in)``."""

    weights: Weights = None  # type: ignore[assignment]
    bias: np.ndarray | None = None
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights is None or self.weights.mask.ndim != 2:
            raise SltValidationError(f"node '{self.name}': Linear weights must be 2-D (out, in)")
        object.__setattr__(self, "bias", _bias(self.bias, self.weights.mask.shape[0], self.name))

    @property
    def in_features(self) -> int:
        return int(self.weights.mask.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weights.mask.shape[0])

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        if shape != (self.in_features,):
            raise SltValidationError(
                f"node '{self.name}': Linear expects input shape ({self.in_features},), got {shape}; "
                "insert a Flatten or fix the weight shape"
            )
        return (self.out_features,)


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """2-D convolution (cross-correlation as in PyTorch), weights ``(C_out, C_in/groups, kH, kW)``."""

    weights: Weights = None  # type: ignore[assignment]
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    kind: ClassVar[str] = "conv2d"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weights is None or self.weights.mask.ndim != 4:
            raise SltValidationError(f"node '{self.name}': Conv2d weights must be 4-D (C_out, C_in/groups, kH, kW)")
        object.__setattr__(self, "stride", pair(self.stride, "stride", self.name, 1))
        object.__setattr__(self, "padding", pair(self.padding, "padding", self.name, 0))
        object.__setattr__(self, "dilation", pair(self.dilation, "dilation", self.name, 1))
        groups = self.groups
        if not isinstance(groups, (int, np.integer)) or groups < 1 or self.weights.mask.shape[0] % groups:
            raise SltValidationError(f"node '{self.name}': groups={self.groups} must be >= 1 and divide C_out")
        object.__setattr__(self, "groups", int(self.groups))
        object.__setattr__(self, "bias", _bias(self.bias, self.weights.mask.shape[0], self.name))

    @property
    def kernel_size(self) -> tuple[int, int]:
        return (int(self.weights.mask.shape[2]), int(self.weights.mask.shape[3]))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        c_out, c_in_g, kh, kw = self.weights.mask.shape
        if len(shape) != 3 or shape[0] != c_in_g * self.groups:
            raise SltValidationError(
                f"node '{self.name}': Conv2d expects input (C={c_in_g * self.groups}, H, W), got {shape}"
            )
        h = window_out(shape[1], kh, self.stride[0], self.padding[0], self.dilation[0])
        w = window_out(shape[2], kw, self.stride[1], self.padding[1], self.dilation[1])
        if h < 1 or w < 1:
            raise SltValidationError(f"node '{self.name}': input {shape} is smaller than the kernel ({kh}x{kw})")
        return (int(c_out), h, w)


@dataclass(frozen=True, eq=False)
class _Pool2d(Node):
    kernel_size: tuple[int, int] = (2, 2)
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        k = pair(self.kernel_size, "kernel_size", self.name, 1)
        object.__setattr__(self, "kernel_size", k)
        object.__setattr__(self, "stride", pair(k if self.stride is None else self.stride, "stride", self.name, 1))
        pad = pair(self.padding, "padding", self.name, 0)
        if pad[0] > k[0] // 2 or pad[1] > k[1] // 2:
            raise SltValidationError(f"node '{self.name}': padding {pad} must be at most half the kernel {k}")
        object.__setattr__(self, "padding", pad)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        if len(shape) != 3:
            raise SltValidationError(f"node '{self.name}': {self.kind} expects input (C, H, W), got {shape}")
        h = window_out(shape[1], self.kernel_size[0], self.stride[0], self.padding[0])
        w = window_out(shape[2], self.kernel_size[1], self.stride[1], self.padding[1])
        if h < 1 or w < 1:
            raise SltValidationError(f"node '{self.name}': input {shape} is smaller than the window {self.kernel_size}")
        return (shape[0], h, w)


@dataclass(frozen=True, eq=False)
class SumPool2d(_Pool2d):
    """Sum over each window (zero padding)."""

    kind: ClassVar[str] = "sumpool2d"


@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool2d):
    """Window sum divided by kH·kW (zero padding counted, as PyTorch's default)."""

    kind: ClassVar[str] = "avgpool2d"


@dataclass(frozen=True, eq=False)
class MaxPool2d(_Pool2d):
    """Maximum over each window (padding never wins)."""

    kind: ClassVar[str] = "maxpool2d"


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Per-sample flatten to one axis, C order."""

    kind: ClassVar[str] = "flatten"

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        return (math.prod(self._one(in_shapes)),)


@dataclass(frozen=True, eq=False)
class Add(Node):
    """Element-wise sum of two or more inputs of one shape, in edge order (residual joins)."""

    kind: ClassVar[str] = "add"
    arity: ClassVar[tuple[int, int | None]] = (2, None)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) < 2:
            raise SltValidationError(f"node '{self.name}': Add needs at least two inputs, got {len(in_shapes)}")
        if any(s != in_shapes[0] for s in in_shapes):
            raise SltValidationError(f"node '{self.name}': Add inputs disagree in shape: {in_shapes}")
        return in_shapes[0]


def float_linear(name: str, w: np.ndarray, bias: np.ndarray | None = None) -> Linear:
    """Convenience: a Linear whose mask is the nonzero pattern of ``w``."""
    w = np.asarray(w, dtype=np.float32)
    return Linear(name, FloatWeights(w != 0, w), bias)

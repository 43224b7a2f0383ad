"""Token and attention node kinds: what a spiking transformer (Spikformer, Spike-driven
Transformer) needs besides synapses and neurons.

Shapes are per sample (no batch axis); ``axis`` attributes count per-sample axes from 0.
Every node validates its input shapes and raises :class:`SltValidationError` naming itself.

Views (no arithmetic, exact everywhere)::

    Reshape:    y = reshape(x, shape)                   C order, prod(shape) = prod(x.shape)
    Transpose:  y = transpose(x, perm)                  y[i_perm[0], ...] = x[i_0, ...]
    Select:     y = take(x, indices, axis)              token/patch mask: keeps the listed tokens

Arithmetic (each rounds once to the working precision)::

    MatMul:     y[..., m, n] = float32(Σ_k a[..., m, k] · b[..., k, n]) · s      s = 2^e, |e| <= 24
    Mul:        y = float32(a · b)                      numpy broadcasting of equal-rank shapes
    Reduce:     y = float32(Σ_axis x)            (op "sum")
                y = float32(Σ_axis x) / n        (op "mean", n = x.shape[axis], one float32 division)

Exactness rule: the sums of MatMul and Reduce are exact and rounded once (as synaptic sums,
:mod:`slt_deploy.exact`). With spike (0/1) operands every term of a MatMul is 0 or 1, so
``Σ_k`` is an integer count of coincidences: any target that adds in float32 in any order is
exact while the count stays below 2^24 (k < 2^24 suffices), and the power-of-two scale ``s``
is exact as long as the result stays a normal float32. A product of two spikes is a spike
(logical AND), so Mul of spike operands is exact in any arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import SltValidationError
from .nodes import Node, Shape

MAX_SCALE_EXPONENT = 24
REDUCE_OPS = ("sum", "mean")


def _ints(v: object, what: str, node: str, minimum: int) -> tuple[int, ...]:
    """A tuple of ints >= ``minimum`` from a sequence; SltValidationError naming the node otherwise."""
    try:
        t = tuple(v)  # type: ignore[arg-type]
    except TypeError:
        raise SltValidationError(f"node '{node}': {what} must be a sequence of ints, got {v!r}") from None
    if not t or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in t):
        raise SltValidationError(f"node '{node}': {what} must be a non-empty sequence of ints, got {v!r}")
    if min(t) < minimum:
        raise SltValidationError(f"node '{node}': {what} must be >= {minimum}, got {v!r}")
    return tuple(int(a) for a in t)


def _axis(axis: object, rank: int, node: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not 0 <= axis < rank:
        raise SltValidationError(f"node '{node}': axis {axis!r} outside the input's {rank} per-sample axes")
    return int(axis)


@dataclass(frozen=True, eq=False)
class Reshape(Node):
    """Per-sample reshape to ``shape`` in C order (a tokens view of a feature map, heads split)."""

    shape: Shape = ()
    kind: ClassVar[str] = "reshape"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "shape", _ints(self.shape, "shape", self.name, 1))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        if math.prod(shape) != math.prod(self.shape):
            raise SltValidationError(f"node '{self.name}': cannot reshape {shape} ({math.prod(shape)} values) "
                                     f"to {self.shape} ({math.prod(self.shape)} values)")
        return self.shape


@dataclass(frozen=True, eq=False)
class Transpose(Node):
    """Per-sample axis permutation: output axis ``j`` is input axis ``perm[j]``."""

    perm: tuple[int, ...] = ()
    kind: ClassVar[str] = "transpose"

    def __post_init__(self) -> None:
        super().__post_init__()
        perm = _ints(self.perm, "perm", self.name, 0)
        if sorted(perm) != list(range(len(perm))):
            raise SltValidationError(f"node '{self.name}': perm {perm} is not a permutation of 0..{len(perm) - 1}")
        object.__setattr__(self, "perm", perm)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        if len(shape) != len(self.perm):
            raise SltValidationError(f"node '{self.name}': perm {self.perm} does not fit input rank {len(shape)}")
        return tuple(shape[p] for p in self.perm)


@dataclass(frozen=True, eq=False)
class Select(Node):
    """Token (patch) mask: keeps ``indices`` (strictly increasing) along ``axis``, drops the rest."""

    axis: int = 0
    indices: tuple[int, ...] = ()
    kind: ClassVar[str] = "select"

    def __post_init__(self) -> None:
        super().__post_init__()
        idx = _ints(self.indices, "indices", self.name, 0)
        if any(b <= a for a, b in zip(idx, idx[1:], strict=False)):
            raise SltValidationError(f"node '{self.name}': indices must be strictly increasing, got {idx}")
        object.__setattr__(self, "indices", idx)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        axis = _axis(self.axis, len(shape), self.name)
        if self.indices[-1] >= shape[axis]:
            raise SltValidationError(f"node '{self.name}': index {self.indices[-1]} outside axis {axis} "
                                     f"of size {shape[axis]}")
        return shape[:axis] + (len(self.indices),) + shape[axis + 1:]


@dataclass(frozen=True, eq=False)
class MatMul(Node):
    """Activation x activation product ``a @ b`` over the last two axes, times ``scale`` = 2^e.

    Inputs in edge order: ``a (..., m, k)`` and ``b (..., k, n)`` with equal leading axes.
    """

    scale: float = 1.0
    kind: ClassVar[str] = "matmul"
    arity: ClassVar[tuple[int, int | None]] = (2, 2)

    def __post_init__(self) -> None:
        super().__post_init__()
        s = self.scale
        ok = isinstance(s, (int, float, np.floating, np.integer)) and not isinstance(s, bool) and float(s) > 0
        mant, exp = math.frexp(float(s)) if ok else (0.0, 0)
        if not ok or mant != 0.5 or abs(exp - 1) > MAX_SCALE_EXPONENT:
            raise SltValidationError(f"node '{self.name}': scale must be a power of two 2^e with |e| <= "
                                     f"{MAX_SCALE_EXPONENT} (exact in float32), got {s!r}")
        object.__setattr__(self, "scale", float(s))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) != 2:
            raise SltValidationError(f"node '{self.name}': MatMul takes two inputs, got {len(in_shapes)}")
        a, b = in_shapes
        if len(a) < 2 or len(a) != len(b) or a[:-2] != b[:-2] or a[-1] != b[-2]:
            raise SltValidationError(f"node '{self.name}': cannot multiply {a} by {b}; expected (..., m, k) and "
                                     "(..., k, n) with equal leading axes")
        return a[:-1] + (b[-1],)


@dataclass(frozen=True, eq=False)
class Mul(Node):
    """Element-wise product of two inputs of equal rank; axes of size 1 broadcast (numpy rules)."""

    kind: ClassVar[str] = "mul"
    arity: ClassVar[tuple[int, int | None]] = (2, 2)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        if len(in_shapes) != 2:
            raise SltValidationError(f"node '{self.name}': Mul takes two inputs, got {len(in_shapes)}")
        a, b = in_shapes
        if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
            raise SltValidationError(f"node '{self.name}': shapes {a} and {b} do not broadcast "
                                     "(equal rank, each axis equal or 1)")
        return tuple(max(x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, eq=False)
class Reduce(Node):
    """Exact sum (``op="sum"``) or mean (``op="mean"``) over one per-sample axis (e.g. the tokens)."""

    axis: int = 0
    op: str = "mean"
    keepdims: bool = False
    kind: ClassVar[str] = "reduce"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.op not in REDUCE_OPS:
            raise SltValidationError(f"node '{self.name}': op must be one of {REDUCE_OPS}, got {self.op!r}")
        if not isinstance(self.keepdims, (bool, np.bool_)):
            raise SltValidationError(f"node '{self.name}': keepdims must be true or false, got {self.keepdims!r}")
        object.__setattr__(self, "keepdims", bool(self.keepdims))

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        shape = self._one(in_shapes)
        axis = _axis(self.axis, len(shape), self.name)
        if self.keepdims:
            return shape[:axis] + (1,) + shape[axis + 1:]
        out = shape[:axis] + shape[axis + 1:]
        if not out:
            raise SltValidationError(f"node '{self.name}': reducing the only axis needs keepdims=True")
        return out


TOKEN_KINDS: tuple[type[Node], ...] = (Reshape, Transpose, Select, MatMul, Mul, Reduce)
"""The kinds of this module (they need .slt format version 2)."""
